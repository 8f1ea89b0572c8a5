"""The inputs of ``capmon run l4a`` on a WorldCereal monthly extraction (``*_month.parquet``),
so the command line runs what ``benchmarks/l4a.py --real`` measures, on any country's file.

``python benchmarks/worldcereal_inputs.py EXTRACTION OUT_DIR [--min-samples 10]`` writes:

- ``samples.gpkg``: one point per sample (``sample_id``, ``crop`` = its ``ewoc_code``) of the
  classes with at least ``--min-samples`` samples (the protocol of issue 17);
- ``lut.csv``: a Sen4CAP LUT with one L4A class per code (land cover 1, flags 0);
- ``attributes.csv``: each sample's mean elevation, slope, precipitation and temperature
  (those the file has; 65535 is missing), keyed by ``ori_id``, for ``--attributes-file``;
  not written when the file has none of them.

Then (docs/l4a.md)::

    capmon mdb import EXTRACTION --mdb OUT_DIR/mdb --spec worldcereal-month
    capmon run l4a --mdb OUT_DIR/mdb --parcels OUT_DIR/samples.gpkg --parcel-id-col sample_id \\
        --crop-code-col crop --lut OUT_DIR/lut.csv --out OUT_DIR/l4a --min-s2-pix 0 \\
        --best-s2-pix 0 --min-s1-pix 0 --sample-ratio-l 1 --attributes-file OUT_DIR/attributes.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

# the per-sample terrain and weather of the extractions: the DEM's elevation and slope, AgERA5's
# monthly precipitation and mean temperature (units as in the source, x100)
ANCILLARY = {
    "elevation": "elevation",
    "slope": "slope",
    "AGERA5-PRECIP": "precipitation",
    "AGERA5-TMEAN": "temperature",
}
FLAGS = ("eaa", "al", "pgrass", "tgrass", "fallow", "cwater")


def write_inputs(extraction: Path, out: Path, min_samples: int = 10) -> dict[str, Path]:
    """Write the samples, LUT and attributes of ``extraction`` into ``out``; their paths."""
    raw = pd.read_parquet(extraction)
    needed = {"sample_id", "ewoc_code", "lon", "lat"}
    if not needed <= set(raw.columns):
        missing = ", ".join(sorted(needed - set(raw.columns)))
        raise SystemExit(f"{extraction}: not a WorldCereal extraction (no column {missing})")
    samples = raw.groupby("sample_id").agg(
        crop=("ewoc_code", "first"), lon=("lon", "first"), lat=("lat", "first")
    )
    sizes = samples["crop"].value_counts()
    kept = sizes[sizes >= min_samples].index
    if not len(kept):
        raise SystemExit(f"{extraction}: no class has {min_samples} samples")
    samples = samples[samples["crop"].isin(kept)].reset_index()
    out.mkdir(parents=True, exist_ok=True)
    paths = {n: out / n for n in ("samples.gpkg", "lut.csv", "attributes.csv")}
    points = gpd.points_from_xy(samples["lon"], samples["lat"])
    gpd.GeoDataFrame(samples[["sample_id", "crop"]], geometry=points, crs=4326).to_file(
        paths["samples.gpkg"]
    )
    codes = sorted(kept)
    numbers = np.arange(1, len(codes) + 1)
    names = [str(c) for c in codes]
    lut = pd.DataFrame(
        {"ori_crop": codes, "ctnum": numbers, "ct": names, "lc": 1, "ctnuml4a": numbers,
         "ctl4a": names, "ctnumdiv": numbers} | {flag: 0 for flag in FLAGS}
    )  # fmt: skip
    lut.to_csv(paths["lut.csv"], index=False)
    ancillary = ancillary_means(raw)
    if ancillary.columns.empty:  # nothing to give --attributes-file
        del paths["attributes.csv"]
        return paths
    ancillary.reindex(samples["sample_id"]).rename_axis("ori_id").to_csv(paths["attributes.csv"])
    return paths


def ancillary_means(raw: pd.DataFrame) -> pd.DataFrame:
    """Each sample's mean of the :data:`ANCILLARY` columns the extraction has (65535 is
    missing), named as attributes (``elevation``, ..., ``temperature``), by ``sample_id``."""
    present = {c: n for c, n in ANCILLARY.items() if c in raw.columns}
    columns = raw[list(present)].astype("float64")
    means = columns.where(columns != 65535).groupby(raw["sample_id"]).mean()
    return means.rename(columns=present)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("extraction", type=Path, help="a WorldCereal *_month.parquet")
    parser.add_argument("out", type=Path, help="the folder to write into")
    parser.add_argument("--min-samples", type=int, default=10, help="smallest class kept")
    args = parser.parse_args()
    for name, path in write_inputs(args.extraction, args.out, args.min_samples).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
