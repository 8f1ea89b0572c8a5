// Jobs: the job list polled every 2 s (status, progress bars, messages), a job's log, pause /
// resume / cancel / dismiss, and "Run a processor" with a parameter form generated from the
// processor's OGC process description.

import { ApiError, api, path, query, request } from "../api";
import { canWrite, loadMe, loadSite, loadSites, select, selection, type Me, type SiteInfo } from "../context";
import { processInputs, schemaForm, type SchemaForm } from "../components/schemaForm";
import { field, formatDate, h, isRecord, listOf, message, replace, str } from "../dom";
import { setParams } from "../nav";
import type { Page } from "../page";

const POLL_MS = 2000;
const FINAL = new Set(["successful", "failed", "dismissed", "cancelled", "canceled", "error", "finished"]);
const STATUS_LABEL: Record<string, string> = {
  accepted: "queued",
  running: "running",
  paused: "paused",
  successful: "successful",
  failed: "failed",
  dismissed: "cancelled",
  cancelled: "cancelled",
};

interface JobView {
  id: string;
  processor: string;
  site: string;
  season: string;
  status: string;
  progress: number | null;
  message: string;
  created: string;
  started: string;
  finished: string;
  raw: Record<string, unknown>;
}

function jobOf(raw: Record<string, unknown>): JobView {
  const progress = typeof raw.progress === "number" ? raw.progress : null;
  return {
    id: str(raw.jobID ?? raw.id),
    processor: str(raw.processID ?? raw.processor ?? raw.process),
    site: str(raw["x-capmon-site"] ?? raw.site),
    season: str(raw["x-capmon-season"] ?? raw.season),
    // OGC folds "paused" into "running"; capmon's own status tells them apart.
    status: str(raw["x-capmon-status"]).toLowerCase() === "paused" ? "paused" : str(raw.status).toLowerCase(),
    progress: progress === null ? null : progress <= 1 && !Number.isInteger(progress) ? progress * 100 : progress,
    message: str(raw.message),
    created: str(raw.created),
    started: str(raw.started),
    finished: str(raw.finished),
    raw,
  };
}

function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.describe();
  return err instanceof Error ? err.message : String(err);
}

function statusBadge(status: string): HTMLElement {
  return h("span", { class: `badge status-${status}` }, STATUS_LABEL[status] ?? status);
}

function progressBar(job: JobView): HTMLElement {
  const value = job.progress ?? (job.status === "successful" ? 100 : 0);
  const label = `${job.processor} job ${job.id} progress`;
  return h(
    "div",
    { class: "progress-cell" },
    h("progress", { max: 100, value: Math.round(value), "aria-label": label }),
    h("span", { class: "pct" }, `${Math.round(value)} %`),
  );
}

// ---- run a processor ---------------------------------------------------------------------------

const PROCESS_ORDER = ["mdb", "l4a", "l4b", "l4c", "baresoil", "heterogeneity", "multiannual"];

function processRank(id: string): number {
  const at = PROCESS_ORDER.indexOf(id);
  return at >= 0 ? at : id === "acquire" ? PROCESS_ORDER.length + 1 : PROCESS_ORDER.length;
}

async function runForm(user: Me, onStarted: (jobId: string) => void): Promise<HTMLElement> {
  const box = h("section", { class: "run card", "aria-labelledby": "run-h" }, h("h2", { id: "run-h" }, "Run a processor"));
  let processes: Record<string, unknown>[] = [];
  let sites: SiteInfo[] = [];
  try {
    processes = listOf(await api<unknown>("/processes"), "processes");
    sites = (await loadSites()).filter((s) => canWrite(user, s.name));
  } catch (err) {
    box.append(message("error", `Could not list the processors: ${errorText(err)}`));
    return box;
  }
  if (!sites.length) {
    box.append(message("info", "Your role cannot run processors on any site."));
    return box;
  }
  const chosen = selection();
  // In the order a season runs them; acquisition (which downloads) last, never the default.
  const ordered = [...processes].sort((a, b) => processRank(str(a.id)) - processRank(str(b.id)));
  const processSelect = h(
    "select",
    { name: "process" },
    ordered.map((p) => h("option", { value: str(p.id) }, `${str(p.title, str(p.id))} (${str(p.id)})`)),
  );
  const siteSelect = h(
    "select",
    { name: "site" },
    sites.map((s) => h("option", { value: s.name, selected: s.name === chosen.site }, s.name)),
  );
  const seasonSelect = h("select", { name: "season" });
  const description = h("p", { class: "process-description" });
  const formBox = h("div", { class: "process-form" });
  const out = h("div", { "aria-live": "polite" });
  const button = h("button", { type: "submit" }, "Run");
  let generated: SchemaForm | null = null;
  let descriptionDoc: Record<string, unknown> = {};

  const loadSeasons = async (): Promise<void> => {
    try {
      const site = await loadSite(siteSelect.value);
      const wanted = selection().season;
      replace(
        seasonSelect,
        site.seasons.map((s) => h("option", { value: s.name, selected: s.name === wanted }, s.name)),
      );
      if (!seasonSelect.value && site.seasons.length) seasonSelect.value = site.seasons.at(-1)!.name;
    } catch (err) {
      replace(out, message("error", errorText(err)));
    }
  };
  const loadProcess = async (): Promise<void> => {
    replace(formBox, message("info", "Loading the process description…"));
    try {
      descriptionDoc = await api<Record<string, unknown>>(path("processes", processSelect.value));
      description.textContent = str(descriptionDoc.description);
      const inputs = processInputs(descriptionDoc).filter((i) => i.name !== "site" && i.name !== "season");
      generated = schemaForm(inputs);
      replace(formBox, generated.element);
    } catch (err) {
      generated = null;
      replace(formBox, message("error", `Could not read the process description: ${errorText(err)}`));
    }
  };
  processSelect.addEventListener("change", () => void loadProcess());
  siteSelect.addEventListener("change", () => {
    select({ site: siteSelect.value });
    void loadSeasons();
  });
  seasonSelect.addEventListener("change", () => select({ season: seasonSelect.value }));

  const form = h(
    "form",
    { class: "form-grid" },
    field("Processor", processSelect),
    description,
    h("div", { class: "row" }, field("Site", siteSelect), field("Season", seasonSelect)),
    formBox,
    h("div", { class: "actions" }, button),
    out,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!generated) return;
    let inputs: Record<string, unknown>;
    try {
      inputs = generated.values();
    } catch (err) {
      replace(out, message("error", errorText(err)));
      return;
    }
    const names = new Set(processInputs(descriptionDoc).map((i) => i.name));
    if (names.has("site") || !names.size) inputs.site = siteSelect.value;
    if ((names.has("season") || !names.size) && seasonSelect.value) inputs.season = seasonSelect.value;
    button.disabled = true;
    replace(out, message("info", "Submitting…"));
    try {
      const answer = await request(path("processes", processSelect.value, "execution"), {
        method: "POST",
        json: { inputs },
      });
      const doc = isRecord(answer.body) ? answer.body : {};
      const location = answer.headers.get("Location") ?? "";
      const jobId = str(doc.jobID ?? doc.id) || location.split("/").filter(Boolean).at(-1) || "";
      replace(out, message("success", `Started job ${jobId} (${processSelect.value} on ${siteSelect.value}).`));
      onStarted(jobId);
    } catch (err) {
      replace(out, message("error", `Not started: ${errorText(err)}`));
    } finally {
      button.disabled = false;
    }
  });
  box.append(form);
  await Promise.all([loadSeasons(), loadProcess()]);
  return box;
}

// ---- the job list ------------------------------------------------------------------------------

class JobList {
  readonly element: HTMLElement;
  private readonly body: HTMLTableSectionElement;
  private readonly rows = new Map<string, { row: HTMLTableRowElement; key: string }>();
  private readonly announcer: HTMLElement;
  private readonly errorBox: HTMLElement;
  private readonly statuses = new Map<string, string>();
  private readonly siteFilter: HTMLSelectElement;
  private readonly statusFilter: HTMLSelectElement;
  private timer = 0;
  private stopped = false;
  selected = "";

  constructor(
    sites: string[],
    private readonly user: Me,
    private readonly onSelect: (job: JobView) => void,
  ) {
    this.body = h("tbody");
    this.announcer = h("div", { class: "sr-only", "aria-live": "polite", role: "status" });
    this.errorBox = h("div", { "aria-live": "assertive" });
    this.siteFilter = h(
      "select",
      { name: "site-filter", onchange: () => void this.refresh() },
      h("option", { value: "" }, "all sites"),
      sites.map((s) => h("option", { value: s }, s)),
    );
    this.statusFilter = h(
      "select",
      { name: "status-filter", onchange: () => void this.refresh() },
      [["", "any status"], ["running", "running"], ["accepted", "queued"], ["paused", "paused"], ["successful", "successful"], ["failed", "failed"], ["dismissed", "cancelled"]].map(
        ([v, l]) => h("option", { value: v! }, l!),
      ),
    );
    this.element = h(
      "section",
      { class: "job-list", "aria-labelledby": "jobs-h" },
      h(
        "div",
        { class: "section-head" },
        h("h2", { id: "jobs-h" }, "Jobs"),
        h("div", { class: "filters" }, field("Site", this.siteFilter), field("Status", this.statusFilter)),
      ),
      this.announcer,
      this.errorBox,
      h(
        "table",
        { class: "data jobs-table" },
        h("caption", { class: "sr-only" }, "Jobs, newest first; refreshed every 2 seconds"),
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            ["job", "processor", "site / season", "status", "progress", "message", "started", "finished", "actions"].map((l) =>
              h("th", { scope: "col" }, l),
            ),
          ),
        ),
        this.body,
      ),
    );
  }

  start(): void {
    const tick = async (): Promise<void> => {
      await this.refresh();
      if (!this.stopped) this.timer = window.setTimeout(() => void tick(), POLL_MS);
    };
    void tick();
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.timer);
  }

  async refresh(): Promise<void> {
    try {
      const answer = await api<unknown>(
        `/jobs${query({ site: this.siteFilter.value, status: this.statusFilter.value, limit: 100 })}`,
      );
      const jobs = listOf(answer, "jobs").map(jobOf);
      this.render(jobs);
      replace(this.errorBox);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) {
        replace(this.errorBox, message("error", `Could not refresh the jobs: ${errorText(err)}`));
      }
    }
  }

  private render(jobs: JobView[]): void {
    const seen = new Set<string>();
    const active = document.activeElement;
    const focusedAction =
      active instanceof HTMLElement && this.body.contains(active)
        ? { job: active.closest("tr")?.dataset.job ?? "", action: active.dataset.action ?? "" }
        : null;
    let previous: HTMLTableRowElement | null = null;
    for (const job of jobs) {
      seen.add(job.id);
      const key = JSON.stringify([job.status, job.progress, job.message, job.finished, job.started, this.selected === job.id]);
      let entry = this.rows.get(job.id);
      if (!entry || entry.key !== key) {
        const row = this.row(job);
        if (entry) entry.row.replaceWith(row);
        entry = { row, key };
        this.rows.set(job.id, entry);
      }
      const expected: ChildNode | null = previous ? previous.nextSibling : this.body.firstChild;
      if (expected !== entry.row) this.body.insertBefore(entry.row, expected);
      previous = entry.row;
      const before = this.statuses.get(job.id);
      if (before !== undefined && before !== job.status) {
        this.announcer.textContent = `Job ${job.id} (${job.processor}) is ${STATUS_LABEL[job.status] ?? job.status}.`;
      }
      this.statuses.set(job.id, job.status);
      if (job.id === this.selected) this.onSelect(job);
    }
    for (const [id, entry] of this.rows) {
      if (!seen.has(id)) {
        entry.row.remove();
        this.rows.delete(id);
      }
    }
    if (!jobs.length && !this.body.firstChild) {
      this.body.append(h("tr", { class: "empty" }, h("td", { colspan: 9 }, "No job.")));
    } else if (jobs.length) {
      this.body.querySelectorAll("tr.empty").forEach((r) => r.remove());
    }
    if (focusedAction) {
      const target = this.body.querySelector<HTMLElement>(
        `tr[data-job="${CSS.escape(focusedAction.job)}"] [data-action="${CSS.escape(focusedAction.action)}"]`,
      );
      target?.focus();
    }
  }

  private action(job: JobView, action: string, label: string, kind = "secondary"): HTMLButtonElement {
    return h(
      "button",
      {
        type: "button",
        class: `small ${kind}`,
        dataset: { action },
        "aria-label": `${label} job ${job.id}`,
        onclick: async () => {
          try {
            if (action === "dismiss") {
              if (!confirm(`Dismiss job ${job.id}?`)) return;
              await api(path("jobs", job.id), { method: "DELETE" });
            } else if (action === "logs") {
              this.selected = job.id;
              this.onSelect(job);
              await this.refresh();
              return;
            } else {
              await api(path("jobs", job.id, action), { method: "POST" });
            }
            this.announcer.textContent = `${label} requested for job ${job.id}.`;
            await this.refresh();
          } catch (err) {
            replace(this.errorBox, message("error", `${label} job ${job.id}: ${errorText(err)}`));
          }
        },
      },
      label,
    );
  }

  private row(job: JobView): HTMLTableRowElement {
    const writable = canWrite(this.user, job.site || undefined);
    const actions: HTMLElement[] = [this.action(job, "logs", "Log")];
    if (writable) {
      if (job.status === "running" || job.status === "accepted") {
        actions.push(this.action(job, "pause", "Pause"), this.action(job, "cancel", "Cancel", "danger"));
      } else if (job.status === "paused") {
        actions.push(this.action(job, "resume", "Resume"), this.action(job, "cancel", "Cancel", "danger"));
      } else if (FINAL.has(job.status)) {
        actions.push(this.action(job, "dismiss", "Dismiss"));
      }
    }
    return h(
      "tr",
      { dataset: { job: job.id, status: job.status }, class: this.selected === job.id ? "selected" : undefined },
      h("th", { scope: "row" }, job.id),
      h("td", null, job.processor),
      h("td", null, [job.site, job.season].filter(Boolean).join(" / ")),
      h("td", { class: "status" }, statusBadge(job.status)),
      h("td", null, progressBar(job)),
      h("td", { class: "job-message", title: job.message || undefined }, h("span", { class: "clamp" }, job.message)),
      h("td", null, formatDate(job.started || job.created)),
      h("td", null, formatDate(job.finished)),
      h("td", { class: "row-actions" }, actions),
    );
  }
}

// ---- a job's detail: log and results -----------------------------------------------------------

class JobDetail {
  readonly element: HTMLElement;
  private readonly title: HTMLElement;
  private readonly facts: HTMLElement;
  private readonly log: HTMLElement;
  private readonly results: HTMLElement;
  private jobId = "";
  private lastStatus = "";
  private loading = false;

  constructor() {
    this.title = h("h2", { id: "job-detail-h" }, "Job log");
    this.facts = h("div");
    this.log = h("pre", { class: "log", tabindex: "0", "aria-label": "Job log" }, "Choose a job's Log button to see its log.");
    this.results = h("div");
    this.element = h(
      "section",
      { class: "job-detail card", "aria-labelledby": "job-detail-h" },
      this.title,
      this.facts,
      this.log,
      this.results,
    );
  }

  async show(job: JobView): Promise<void> {
    const changed = job.id !== this.jobId;
    const running = !FINAL.has(job.status);
    if (!changed && !running && this.lastStatus === job.status) return;
    if (this.loading) return;
    this.loading = true;
    this.jobId = job.id;
    this.lastStatus = job.status;
    this.title.textContent = `Job ${job.id}: ${job.processor}`;
    replace(
      this.facts,
      h(
        "dl",
        { class: "facts" },
        h("dt", null, "status"),
        h("dd", null, statusBadge(job.status)),
        h("dt", null, "created"),
        h("dd", null, formatDate(job.created)),
        h("dt", null, "message"),
        h("dd", null, job.message || "—"),
      ),
    );
    try {
      const answer = await request(path("jobs", job.id, "logs"), { headers: { Accept: "text/plain, application/json" } });
      const body = answer.body;
      let text: string;
      if (typeof body === "string") text = body;
      else if (isRecord(body) && Array.isArray(body.lines)) text = body.lines.map((l) => (isRecord(l) ? str(l.message ?? l.text ?? JSON.stringify(l)) : str(l))).join("\n");
      else if (isRecord(body) && typeof (body.log ?? body.text) === "string") text = str(body.log ?? body.text);
      else text = JSON.stringify(body, null, 2);
      const atBottom = this.log.scrollTop + this.log.clientHeight >= this.log.scrollHeight - 8;
      this.log.textContent = text || "(empty log)";
      if (atBottom || changed) this.log.scrollTop = this.log.scrollHeight;
    } catch (err) {
      this.log.textContent = `Could not read the log: ${errorText(err)}`;
    }
    if (job.status === "successful") {
      try {
        const results = await api<unknown>(path("jobs", job.id, "results"));
        const entries = isRecord(results) ? Object.entries(results).filter(([, v]) => isRecord(v)) : [];
        replace(
          this.results,
          h("h3", null, "Results"),
          entries.length
            ? h(
                "ul",
                { class: "results" },
                entries.map(([output, value]) => {
                  const link = value as Record<string, unknown>;
                  const href = str(link.href);
                  const collection = /\/collections\/([^/]+)/.exec(href)?.[1] ?? "";
                  const item = link.rel === "item" ? decodeURIComponent(href.split("/items/")[1] ?? "") : "";
                  const params = new URLSearchParams({ collection: decodeURIComponent(collection), ...(item ? { q: item } : {}) });
                  return h(
                    "li",
                    null,
                    h("strong", null, output),
                    ": ",
                    h("a", { href: `#/products?${params.toString()}` }, str(link.title, item || collection)),
                  );
                }),
              )
            : h("p", { class: "muted" }, "This job registered no product."),
        );
      } catch {
        replace(this.results);
      }
    } else {
      replace(this.results);
    }
    this.loading = false;
  }
}

export const jobsPage: Page = {
  title: "Jobs",
  async mount(root, params) {
    const user = await loadMe();
    const sites = (await loadSites()).map((s) => s.name);
    const detail = new JobDetail();
    const list = new JobList(sites, user, (job) => void detail.show(job));
    list.selected = params.get("job") ?? "";
    const runBox = h("div", { class: "run-box" }, message("info", "Loading processors…"));
    replace(
      root,
      h("h1", null, "Jobs"),
      h("div", { class: "jobs-layout" }, h("div", { class: "jobs-main" }, list.element, detail.element), runBox),
    );
    list.start();
    const form = await runForm(user, (jobId) => {
      list.selected = jobId;
      setParams("jobs", { job: jobId });
      void list.refresh();
    });
    replace(runBox, form);
    return () => list.stop();
  },
};
