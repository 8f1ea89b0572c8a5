"""The synthetic world next to real series: grassland NDVI, coherence and backscatter.

``python benchmarks/synth_vs_real.py --demo-home HOME [--clean-home HOME2]
[--data ../shared/data/mowing_gmd_dev] [--workdir DIR] [--out docs/synthetic-vs-real.png]``
measures, on the same definitions, the real Slovak grassland plots of ``mowing_gmd_dev``
(checked plots, field-checked cuts, 2021-2023) and the grassland parcels of a demo workspace
(``capmon demo``: its MDB, its L4B product's parcels and the world's true mowings), and prints
a Markdown table of quantiles (10 %, median, 90 %) and writes histograms side by side;
``--clean-home`` adds the columns of a second demo workspace (e.g. one made before the
calibration, or with the ``clean`` realism profile). Why: the synthetic world is the only test
bed of L4C, bare soil, heterogeneity and multi-annual, and a method tuned on it failed on real
plots (issue 16): this says by how much it differs, figure by figure; the generator's
``capmon.synth.realism.CALIBRATED`` profile is calibrated on these figures.

Figures (period March to November, each parcel's own observations):

* ``clear NDVI observations``: per parcel-season;
* ``NDVI noise``: robust spread (1.4826 MAD) of the parcel's successive NDVI differences;
* ``cut: NDVI drop``: the highest NDVI of the 30 days before a cut minus the first one within
  10 days after it; ``cut: regrowth``: the highest NDVI 15-35 days after minus that first one;
* ``coherence noise``: robust spread of the parcel's successive VH coherences (one orbit);
  ``summer coherence``: the parcel's median VH coherence in June-August (same orbit);
* ``VH noise``: robust spread of the parcel's successive VH backscatters (dB, one orbit);
* ``cut: coherence change``: the first VH pair starting on or after the cut minus the median of
  the pairs ending in the 40 days before; ``cut: VH change``: the first VH backscatter after the
  cut minus the median of the 24 days before (dB, as stored in the MDB);
* ``autumn fall``: the parcel's highest NDVI in July-August minus its mean in October-November;
* ``dates all parcels drop``: share of dates where the median change of the parcels observed
  that day (from their previous observation) is below -0.1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from capmon.mdb.query import MarkersDatabase

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / ".." / "shared" / "data" / "mowing_gmd_dev"
FIGURES = ("clear NDVI observations", "NDVI noise", "cut: NDVI drop", "cut: regrowth",
           "coherence noise", "summer coherence", "cut: coherence change", "VH noise",
           "cut: VH change", "autumn fall", "dates all parcels drop")  # fmt: skip


def _l4b_real() -> object:
    """``benchmarks/l4b_real.py``, whose GMD import and reference events this script reuses
    (its folder is on the path when run as a script, not when a test loads this module)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return importlib.import_module("l4b_real")


def _spread(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    if values.size < 4:
        return float("nan")
    return float(1.4826 * np.median(np.abs(np.diff(values))))


def measure(rows: pd.DataFrame, cuts: pd.DataFrame, year: int) -> dict[str, list[float]]:
    """The figures of one season: ``rows`` long MDB rows (NDVI, COHE_VH, AMP_VH) of the
    grassland parcels, ``cuts`` (parcel_id, date) their true mowings."""
    out: dict[str, list[float]] = {name: [] for name in FIGURES}
    rows = rows.assign(day=pd.to_datetime(rows["date"]).dt.normalize())
    first, last = pd.Timestamp(f"{year}-03-01"), pd.Timestamp(f"{year}-11-30")
    ndvi = rows[(rows["signal"] == "NDVI") & (rows["mean"] >= 0.1)]
    ndvi = ndvi.sort_values(["parcel_id", "day", "count"], ascending=[True, True, False])
    ndvi = ndvi.drop_duplicates(["parcel_id", "day"])
    coherence = rows[rows["signal"] == "COHE_VH"]
    if not coherence.empty:  # one orbit: the one with most rows
        main = coherence["orbit"].fillna(-1).value_counts().index[0]
        coherence = coherence[coherence["orbit"].fillna(-1) == main]
    coherence = coherence.drop_duplicates(["parcel_id", "day"]).sort_values(["parcel_id", "day"])
    backscatter = rows[rows["signal"] == "AMP_VH"].sort_values(["parcel_id", "day"])
    if not backscatter.empty:  # one orbit for the noise: the one with most rows
        busiest = backscatter["orbit"].fillna(-1).value_counts().index[0]
        one_orbit = backscatter[backscatter["orbit"].fillna(-1) == busiest]
        in_season = one_orbit[(one_orbit["day"] >= first) & (one_orbit["day"] <= last)]
        for _pid, own in in_season.groupby("parcel_id"):
            out["VH noise"].append(_spread(own["mean"].to_numpy()))
    season = ndvi[(ndvi["day"] >= first) & (ndvi["day"] <= last)]
    for _pid, own in season.groupby("parcel_id"):
        out["clear NDVI observations"].append(float(len(own)))
        out["NDVI noise"].append(_spread(own["mean"].to_numpy()))
        summer = own[own["day"].dt.month.isin([7, 8])]["mean"]
        autumn = own[own["day"].dt.month.isin([10, 11])]["mean"]
        if len(summer) and len(autumn):
            out["autumn fall"].append(float(summer.max() - autumn.mean()))
    for _pid, own in coherence[(coherence["day"] >= first) & (coherence["day"] <= last)].groupby(
        "parcel_id"
    ):
        out["coherence noise"].append(_spread(own["mean"].to_numpy()))
        summer = own[own["day"].dt.month.isin([6, 7, 8])]["mean"]
        if len(summer):
            out["summer coherence"].append(float(summer.median()))
    by_parcel = {int(k): g for k, g in ndvi.groupby("parcel_id")}
    coh_by = {int(k): g for k, g in coherence.groupby("parcel_id")}
    vh_by = {int(k): g for k, g in backscatter.groupby("parcel_id")}
    for pid, when in zip(cuts["parcel_id"], pd.to_datetime(cuts["date"]), strict=True):
        own = by_parcel.get(int(pid))
        if own is not None:
            before = own[(own["day"] >= when - pd.Timedelta(days=30)) & (own["day"] < when)]
            after = own[(own["day"] > when) & (own["day"] <= when + pd.Timedelta(days=10))]
            later = own[(own["day"] >= when + pd.Timedelta(days=15))
                        & (own["day"] <= when + pd.Timedelta(days=35))]  # fmt: skip
            if len(before) and len(after):
                low = float(after["mean"].iloc[0])
                out["cut: NDVI drop"].append(float(before["mean"].max()) - low)
                if len(later):
                    out["cut: regrowth"].append(float(later["mean"].max()) - low)
        pairs = coh_by.get(int(pid))
        if pairs is not None and "date_first" in pairs:
            starts = pd.to_datetime(pairs["date_first"])
            after = pairs[starts >= when]
            before = pairs[(pairs["day"] < when) & (pairs["day"] >= when - pd.Timedelta(days=40))]
            if len(after) and len(before):
                out["cut: coherence change"].append(
                    float(after["mean"].iloc[0]) - float(before["mean"].median())
                )
        amp = vh_by.get(int(pid))
        if amp is not None:
            after = amp[amp["day"] > when]
            before = amp[(amp["day"] < when) & (amp["day"] >= when - pd.Timedelta(days=24))]
            if len(after) and len(before):
                out["cut: VH change"].append(
                    float(after["mean"].iloc[0]) - float(before["mean"].median())
                )
    changes = season.assign(change=season.groupby("parcel_id")["mean"].diff()).dropna(
        subset=["change"]
    )
    per_date = changes.groupby("day")["change"].agg(["median", "size"])
    per_date = per_date[per_date["size"] >= 5]
    if len(per_date):
        out["dates all parcels drop"].append(float((per_date["median"] < -0.1).mean()))
    return out


def _merge(parts: Iterable[dict[str, list[float]]]) -> dict[str, np.ndarray]:
    merged: dict[str, list[float]] = {name: [] for name in FIGURES}
    for part in parts:
        for name, values in part.items():
            merged[name] += values
    return {k: np.array([v for v in vs if np.isfinite(v)]) for k, vs in merged.items()}


def real_figures(data: Path, folder: Path) -> dict[str, np.ndarray]:
    """The figures of the checked GMD plots, 2021-2023, both regions."""
    bench = _l4b_real()
    parts = []
    for region in ("LR", "NB"):
        for year in (2021, 2022, 2023):
            mdb_path, _plots = bench.import_region_year(data, region, year, folder)  # type: ignore[attr-defined]
            reference = bench.reference_events(data, region, year)  # type: ignore[attr-defined]
            ids = pd.read_csv(mdb_path / "parcel_ids.csv", dtype={"original_id": str})
            id_map = dict(zip(ids["original_id"], ids["parcel_id"], strict=True))
            checked = [id_map[r] for r in set(reference["ref_id"]) if r in id_map]
            dated = reference.dropna(subset=["date"])
            cuts = dated.assign(parcel_id=dated["ref_id"].map(id_map)).dropna(subset=["parcel_id"])
            rows = MarkersDatabase(mdb_path).timeseries(
                checked, ["NDVI", "COHE_VH", "AMP_VH"], f"{year}-01-15", f"{year}-11-30"
            )
            parts.append(measure(rows, cuts, year))
    return _merge(parts)


def synthetic_figures(home: Path) -> dict[str, np.ndarray]:
    """The figures of a demo workspace's grassland parcels (its L4B product's parcels)."""
    from capmon.processors.l4b.outputs import read_product
    from capmon.synth import SynthWorld

    products = sorted(home.glob("products/*/l4b/SEN4CAP_L4B_*"))
    site = products[-1].parents[1].name if products else ""
    manifests = sorted(home.glob(f"mdb/{site}/*/*/mdb.json")) if site else []
    if not products or not manifests:
        raise SystemExit(f"{home}: no L4B product or MDB (run `capmon --home {home} demo`)")
    parcels, _events = read_product(products[-1])
    mdb = MarkersDatabase(manifests[-1].parent)
    world = SynthWorld.load(home / "synthetic-world")
    truth = pd.read_csv(world.truth_events, dtype={"parcel_id": str})
    truth = truth[(truth["event"] == "mowing") & (truth["part"] == "main")]
    id_map = dict(zip(parcels["Ori_id"].astype(str), parcels["NewID"].astype(int), strict=True))
    parts = []
    for year, cuts in truth.groupby("year"):
        cuts = cuts.assign(parcel_id=cuts["parcel_id"].map(id_map)).dropna(subset=["parcel_id"])
        ids = parcels["NewID"].astype(int).tolist()
        rows = mdb.timeseries(ids, ["NDVI", "COHE_VH", "AMP_VH"], f"{year}-01-15",
                              f"{year}-11-30")  # fmt: skip
        if not rows.empty:
            parts.append(measure(rows, cuts, int(str(year))))
    return _merge(parts)


def table(
    real: dict[str, np.ndarray],
    synthetic: dict[str, np.ndarray],
    clean: dict[str, np.ndarray] | None = None,
) -> str:
    """Markdown table: real, synthetic (and the clean/earlier synthetic world) quantiles."""
    header = "| figure | real: n | real: 10 % / median / 90 % | synthetic: n | " \
             "synthetic: 10 % / median / 90 % |"  # fmt: skip
    rule = "|---|---|---|---|---|"
    if clean is not None:
        header += " clean synthetic: 10 % / median / 90 % |"
        rule += "---|"
    lines = [header, rule]

    def q(values: np.ndarray) -> str:
        if values.size == 0:
            return "-"
        a, b, c = np.quantile(values, [0.1, 0.5, 0.9])
        return f"{a:.3g} / {b:.3g} / {c:.3g}"

    for name in FIGURES:
        line = f"| {name} | {real[name].size} | {q(real[name])} | " \
               f"{synthetic[name].size} | {q(synthetic[name])} |"  # fmt: skip
        if clean is not None:
            line += f" {q(clean[name])} |"
        lines.append(line)
    return "\n".join(lines)


def plot(
    real: dict[str, np.ndarray],
    synthetic: dict[str, np.ndarray],
    out: Path,
    clean: dict[str, np.ndarray] | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in FIGURES if n != "dates all parcels drop"]
    fig, axes = plt.subplots(2, 5, figsize=(20, 7))
    for ax, name in zip(axes.ravel(), names, strict=False):
        extra = [clean[name]] if clean is not None else []
        both = np.concatenate([real[name], synthetic[name], *extra])
        if both.size == 0:
            continue
        bins = np.linspace(np.quantile(both, 0.01), np.quantile(both, 0.99), 30)
        ax.hist(real[name], bins=bins, alpha=0.6, density=True, label="real (GMD, Slovakia)")
        ax.hist(synthetic[name], bins=bins, alpha=0.6, density=True, label="synthetic (demo)")
        if clean is not None and clean[name].size:
            ax.hist(clean[name], bins=bins, density=True, histtype="step", color="black",
                    label="clean synthetic (before calibration)")  # fmt: skip
        ax.set_title(name)
    axes.ravel()[0].legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-home", type=Path, required=True)
    parser.add_argument("--clean-home", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("synthetic-vs-real.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="synth_vs_real_") as scratch:
        folder = args.workdir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        real = real_figures(args.data, folder)
    synthetic = synthetic_figures(args.demo_home)
    clean = synthetic_figures(args.clean_home) if args.clean_home else None
    print(table(real, synthetic, clean))
    plot(real, synthetic, args.out, clean)
    print(f"\nhistograms: {args.out}")


if __name__ == "__main__":
    main()
