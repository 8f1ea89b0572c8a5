// Moving between pages: the hash holds the page and its parameters (`#/map?site=demo`).

export function navigate(name: string, params: Record<string, string> = {}): void {
  const search = new URLSearchParams(params).toString();
  location.hash = `#/${name}${search ? `?${search}` : ""}`;
}

/** Replaces the current parameters without a new history entry when `replaceHistory`. */
export function setParams(name: string, params: Record<string, string>, replaceHistory = true): void {
  const search = new URLSearchParams(
    Object.entries(params).filter(([, v]) => v !== "" && v !== undefined),
  ).toString();
  const hash = `#/${name}${search ? `?${search}` : ""}`;
  if (replaceHistory) {
    history.replaceState(null, "", hash);
  } else if (location.hash !== hash) {
    location.hash = hash;
  }
}
