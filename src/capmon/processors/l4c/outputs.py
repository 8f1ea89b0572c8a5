"""L4C product files, named and laid out as Sen4CAP's (sen4cap-system.md 7.6, 3.2).

``<folder>/`` holds

* ``Sen4CAP_L4C_<PRACTICE>_<COUNTRY>_<YEAR>_CSV.csv``: one row per parcel, ``;``-separated,
  Sen4CAP's header (``FIELD_ID;ORIG_ID;COUNTRY;YEAR;MAIN_CROP;...;C_INDEX;...``);
* ``Sen4CAP_L4C_<PRACTICE>_<COUNTRY>_<YEAR>_ContinousProduct.csv`` (Sen4CAP's spelling):
  ``FIELD_ID;ORIG_ID;WEEK;M1;M2;M3;M4;M5`` per parcel and week (ISO week number), then
  capmon's ``HARVEST_EST`` (TRUE in the week of the harvest estimate, FALSE in the others, NR
  without a confirmed harvest);
* ``Capmon_L4C_<PRACTICE>_<COUNTRY>_<YEAR>_HarvestEstimate.csv``: capmon's harvest estimate
  per parcel (``analysis.ESTIMATE_COLUMNS``; not a Sen4CAP file, so Sen4CAP's CSV and its
  ``H_WEEK`` stay as Sen4CAP writes them);
* ``Sen4CAP_L4C_<PRACTICE>_<COUNTRY>_<YEAR>.gpkg``: the CSV rows joined with the parcels'
  geometries, the crop LUT (``LC``, ``CTnum``, ``CT``) and the harvest estimate columns;
* ``SEN4CAP_MDB3_<PRACTICE>_<COUNTRY>_<YEAR>.ipc`` (+ ``.idx``): the MDB3 marker export, one
  row per parcel (``NewID`` int32), columns ``<YYYYMMDD>_M1`` ... ``_M5`` per week start as
  int8 (TRUE 1, FALSE 0, NA -1, NA1 -2, NR -3; a week without data is NA);
* ``l4c.json``: settings, counts (with the harvest estimate's), the mean shift between
  ``H_WEEK`` and the estimate, and notes.

The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc

from capmon.errors import InputError
from capmon.processors.l4c.analysis import ESTIMATE_COLUMNS, L4CResult
from capmon.processors.l4c.config import PRACTICE_NAMES
from capmon.processors.l4c.harvest import MARKER_TEXT, NA
from capmon.workspace import atomic_path

IPC_BATCH_ROWS = 10_000


def product_files(result: L4CResult, mdb3: bool = True) -> dict[str, str]:
    """The file name of each output of ``result``."""
    stem = f"{PRACTICE_NAMES[result.practice]}_{result.country}_{result.year}"
    names = {
        "csv": f"Sen4CAP_L4C_{stem}_CSV.csv",
        "continuous": f"Sen4CAP_L4C_{stem}_ContinousProduct.csv",
        "harvest_estimate": f"Capmon_L4C_{stem}_HarvestEstimate.csv",
        "gpkg": f"Sen4CAP_L4C_{stem}.gpkg",
        "mdb3": f"SEN4CAP_MDB3_{stem}.ipc",
        "mdb3_index": f"SEN4CAP_MDB3_{stem}.idx",
        "report": "l4c.json",
    }
    if not mdb3:
        del names["mdb3"], names["mdb3_index"]
    return names


def estimate_summary(result: L4CResult) -> dict[str, Any]:
    """capmon's harvest estimate in figures: how many, how confident, how far from H_WEEK."""
    estimates = result.estimates
    found = estimates[estimates["HARVEST_W_EST_START"] != "NR"]
    shift = (
        pd.to_datetime(found["H_W_START"]) - pd.to_datetime(found["HARVEST_W_EST_START"])
    ).dt.days / 7.0
    return {
        "definition": (
            "HARVEST_WEEK_EST: week of the coherence step behind the confirmed harvest "
            "(between the first acquisitions of the last decorrelated and the first coherent "
            "pair); not Sen4CAP's H_WEEK (its confirmation week)"
        ),
        "parcels_confirmed": len(found),
        "high_confidence": int((found["HARVEST_EST_CONF"] == "HIGH").sum()),
        "from_coherence": int((found["HARVEST_EST_SOURCE"] == "COHERENCE").sum()),
        "from_amplitude": int((found["HARVEST_EST_SOURCE"] == "AMPLITUDE").sum()),
        "h_week_minus_estimate_weeks": {
            f"{k:+.0f}": int(v) for k, v in shift.value_counts().sort_index().items()
        },
        "h_week_minus_estimate_mean_weeks": round(float(shift.mean()), 3) if len(shift) else None,
    }


def report(result: L4CResult, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the run did, for ``l4c.json`` and the catalogue's product properties."""
    return {
        "practice": PRACTICE_NAMES[result.practice],
        "country": result.country,
        "year": result.year,
        "first_s1_date": str(result.first_date) if result.first_date else None,
        "last_s1_date": str(result.last_date) if result.last_date else None,
        "counts": result.counts,
        "harvest_estimate": estimate_summary(result),
        "notes": list(result.notes),
        "settings": settings or {},
    }


def continuous_product(result: L4CResult) -> pd.DataFrame:
    """``FIELD_ID;ORIG_ID;WEEK;M1..M5`` rows (marker text, ISO week numbers)."""
    weekly = result.weekly
    frame = pd.DataFrame(
        {
            "FIELD_ID": weekly["NewID"].astype("int64"),
            "ORIG_ID": weekly["ORIG_ID"].astype(str),
            "WEEK": [day.isocalendar()[1] for day in weekly["week_start"]],
        }
    )
    for k in range(1, 6):
        frame[f"M{k}"] = [MARKER_TEXT[int(v)] for v in weekly[f"M{k}"]]
    frame["HARVEST_EST"] = [MARKER_TEXT[int(v)] for v in weekly["HARVEST_EST"]]
    return frame


def mdb3_table(result: L4CResult) -> pa.Table:
    """The MDB3 wide table: ``NewID`` int32 and ``<YYYYMMDD>_M<k>`` int8 columns."""
    weekly = result.weekly
    ids = np.sort(weekly["NewID"].astype("int64").unique())
    columns: dict[str, Any] = {"NewID": pa.array(ids.astype(np.int32), type=pa.int32())}
    if len(weekly):
        keys = weekly["week_start"].map(lambda d: d.strftime("%Y%m%d"))
        for day in sorted(keys.unique()):
            rows = weekly[keys == day]
            for k in range(1, 6):
                values = np.full(len(ids), NA, dtype=np.int8)
                positions = np.searchsorted(ids, rows["NewID"].to_numpy(np.int64))
                values[positions] = rows[f"M{k}"].to_numpy(np.int8)
                columns[f"{day}_M{k}"] = pa.array(values, type=pa.int8())
    return pa.table(columns)


def _write_ipc(table: pa.Table, path: Path, index_path: Path) -> None:
    batches = table.to_batches(max_chunksize=IPC_BATCH_ROWS)
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    index_path.write_bytes(
        b"".join(
            struct.pack(">iii", i, int(b.column(0)[0].as_py()), int(b.column(0)[-1].as_py()))
            for i, b in enumerate(batches)
            if b.num_rows
        )
    )


def _geopackage(
    rows: pd.DataFrame,
    estimates: pd.DataFrame,
    parcels: gpd.GeoDataFrame,
    lut: pd.DataFrame | None,
    path: Path,
) -> None:
    shapes = parcels[["NewID", "ori_crop", "geometry"]].copy()
    shapes["NewID"] = shapes["NewID"].astype("int64")
    layer = shapes.merge(rows, left_on="NewID", right_on="FIELD_ID", how="inner")
    extra = estimates[["FIELD_ID", *ESTIMATE_COLUMNS[4:]]].drop_duplicates("FIELD_ID")
    layer = layer.merge(extra, on="FIELD_ID", how="left")
    if lut is not None and {"ori_crop", "ctnum", "ct", "lc"} <= set(lut.columns):
        codes = lut[["ori_crop", "lc", "ctnum", "ct"]].copy()
        codes["ori_crop"] = codes["ori_crop"].astype(str)
        codes = codes.rename(columns={"lc": "LC", "ctnum": "CTnum", "ct": "CT"})
        layer["ori_crop"] = layer["ori_crop"].astype(str)
        layer = layer.merge(codes.drop_duplicates("ori_crop"), on="ori_crop", how="left")
    frame = gpd.GeoDataFrame(layer, geometry="geometry", crs=parcels.crs)
    for column in frame.columns:
        if column != "geometry" and frame[column].dtype == object:
            frame[column] = frame[column].astype(str)
        elif column != "geometry" and isinstance(frame[column].dtype, pd.StringDtype):
            frame[column] = frame[column].astype(object)
    frame.to_file(path, layer=path.stem, driver="GPKG")


def write_csv(rows: pd.DataFrame, path: Path) -> None:
    """A Sen4CAP ``;``-separated CSV with Unix line ends."""
    rows.to_csv(path, sep=";", index=False, lineterminator="\n")


def write_l4c_product(
    result: L4CResult,
    folder: Path,
    *,
    parcels: gpd.GeoDataFrame | None = None,
    lut: pd.DataFrame | None = None,
    mdb3: bool = True,
    settings: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write every file of the product into ``folder`` (which must not exist), atomically.

    Without ``parcels`` the GeoPackage is left out.
    """
    if folder.exists():
        raise InputError(f"the L4C product folder {folder} already exists")
    names = product_files(result, mdb3)
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        write_csv(result.rows, tmp / names["csv"])
        write_csv(continuous_product(result), tmp / names["continuous"])
        write_csv(result.estimates, tmp / names["harvest_estimate"])
        if parcels is not None:
            _geopackage(result.rows, result.estimates, parcels, lut, tmp / names["gpkg"])
        else:
            del names["gpkg"]
        if mdb3:
            _write_ipc(mdb3_table(result), tmp / names["mdb3"], tmp / names["mdb3_index"])
        (tmp / names["report"]).write_text(
            json.dumps(report(result, settings), indent=2, default=str) + "\n", encoding="utf-8"
        )
    return {key: folder / name for key, name in names.items()}
