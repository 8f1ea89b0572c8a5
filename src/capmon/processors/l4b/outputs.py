"""L4B product files (sen4cap-system.md 6.1).

``<folder>/`` holds:

* ``SEN4CAP_L4B_<S1_S2|S2|S1>_MowingDetection.gpkg`` and ``.shp`` (+ ``.dbf``, ``.shx``,
  ``.prj``, ``.cpg``): one feature per grassland parcel with Sen4CAP's fields ``NewID, CTnum,
  Ori_hold, Ori_id, Ori_crop, Area_meter, mow_n, m1_dstart .. m4_dstart, m1_dend .. m4_dend,
  m1_conf .., m1_mis .., proc, compl``. Dates are ``%Y-%m-%d %H:%M:%S`` text; an empty slot
  keeps Sen4CAP's default ``"0"`` (conf 0.0), as in ``generate_grassland_mowing_input_shp.py``.
* ``mowing_events.csv``: the long table, one row per event: ``NewID, Ori_id, event, start,
  end, confidence, sensors, detected_on`` (``detected_on``: the acquisition that revealed it).
* ``candidates.parquet`` and ``events.parquet``: the run's state for the next near-real-time
  run (the raw detections and the events).
* ``l4b.json``: method, sensors, period, configuration, counts and notes.

The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from capmon.errors import InputError, NotFoundError
from capmon.processors.l4b.fusion import MAX_EVENTS, MowingEvent
from capmon.workspace import atomic_path

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
EMPTY = "0"
BASE_FIELDS = ("NewID", "CTnum", "Ori_hold", "Ori_id", "Ori_crop", "Area_meter")
EVENTS_CSV = "mowing_events.csv"
CANDIDATES = "candidates.parquet"
EVENTS_STATE = "events.parquet"
REPORT = "l4b.json"


def result_fields() -> list[str]:
    """Sen4CAP's result fields, in order."""
    fields = ["mow_n"]
    for k in range(1, MAX_EVENTS + 1):
        fields += [f"m{k}_dstart", f"m{k}_dend", f"m{k}_conf", f"m{k}_mis"]
    return [*fields, "proc", "compl"]


def layer_name(sensors: str) -> str:
    """``SEN4CAP_L4B_S1_S2_MowingDetection`` (or ``_S2_``/``_S1_``)."""
    return f"SEN4CAP_L4B_{sensors}_MowingDetection"


def product_layer(
    parcels: gpd.GeoDataFrame,
    events: Mapping[int, list[MowingEvent]],
    processed: Mapping[int, bool],
    compliance: Mapping[int, int],
) -> gpd.GeoDataFrame:
    """The product's features: ``parcels`` (with ``BASE_FIELDS`` and geometry) and results."""
    table = parcels[[*BASE_FIELDS, "geometry"]].copy()
    ids = table["NewID"].astype(int).tolist()
    table["mow_n"] = [len(events.get(i, [])) for i in ids]
    for k in range(MAX_EVENTS):
        slot = [events.get(i, [])[k] if len(events.get(i, [])) > k else None for i in ids]
        table[f"m{k + 1}_dstart"] = [e.start.strftime(DATE_FORMAT) if e else EMPTY for e in slot]
        table[f"m{k + 1}_dend"] = [e.end.strftime(DATE_FORMAT) if e else EMPTY for e in slot]
        table[f"m{k + 1}_conf"] = [round(e.confidence, 4) if e else 0.0 for e in slot]
        table[f"m{k + 1}_mis"] = [e.mission if e else EMPTY for e in slot]
    table["proc"] = [int(processed.get(i, False)) for i in ids]
    table["compl"] = [int(compliance.get(i, -1)) for i in ids]
    table = table[[*BASE_FIELDS, *result_fields(), "geometry"]]
    for column in ("Ori_hold", "Ori_id", "Ori_crop"):
        table[column] = table[column].astype(object).where(table[column].notna(), None)
        table[column] = [None if v is None else str(v) for v in table[column]]
    table["NewID"] = table["NewID"].astype("int64")
    table["CTnum"] = table["CTnum"].astype("int64")
    table["Area_meter"] = table["Area_meter"].astype("float64")
    return gpd.GeoDataFrame(table, geometry="geometry", crs=parcels.crs)


def events_table(layer: pd.DataFrame, events: Mapping[int, list[MowingEvent]]) -> pd.DataFrame:
    """The long events table (one row per parcel and event)."""
    ori = dict(zip(layer["NewID"].astype(int), layer["Ori_id"], strict=True))
    rows = [
        {
            "NewID": parcel_id,
            "Ori_id": ori.get(parcel_id),
            "event": k + 1,
            "start": e.start.strftime(DATE_FORMAT),
            "end": e.end.strftime(DATE_FORMAT),
            "confidence": round(e.confidence, 4),
            "sensors": e.mission,
            "detected_on": e.detected_on.strftime(DATE_FORMAT),
        }
        for parcel_id in sorted(events)
        for k, e in enumerate(events[parcel_id])
    ]
    columns = ["NewID", "Ori_id", "event", "start", "end", "confidence", "sensors", "detected_on"]
    return pd.DataFrame(rows, columns=columns)


def write_l4b_product(
    folder: Path,
    layer: gpd.GeoDataFrame,
    events: Mapping[int, list[MowingEvent]],
    candidates: pd.DataFrame,
    state_events: pd.DataFrame,
    report: Mapping[str, Any],
    sensors: str,
) -> dict[str, Path]:
    """Write every file of the product into ``folder`` (which must not exist), atomically."""
    if folder.exists():
        raise InputError(f"the L4B product folder {folder} already exists")
    name = layer_name(sensors)
    files = {
        "gpkg": f"{name}.gpkg",
        "shapefile": f"{name}.shp",
        "events": EVENTS_CSV,
        "candidates": CANDIDATES,
        "state": EVENTS_STATE,
        "report": REPORT,
    }
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        pyogrio.write_dataframe(layer, tmp / files["gpkg"], layer=name, driver="GPKG")
        pyogrio.write_dataframe(
            layer, tmp / files["shapefile"], driver="ESRI Shapefile", encoding="UTF-8"
        )
        events_table(layer, events).to_csv(tmp / files["events"], index=False)
        candidates.to_parquet(tmp / files["candidates"], index=False)
        state_events.to_parquet(tmp / files["state"], index=False)
        (tmp / files["report"]).write_text(
            json.dumps(dict(report), indent=2, default=str), encoding="utf-8"
        )
    return {key: folder / value for key, value in files.items()}


def read_product(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(parcels: NewID, Ori_id, proc, compl; events: NewID, start, end, confidence, sensors,
    detected_on) of an L4B product folder."""
    if not folder.is_dir():
        raise NotFoundError(f"L4B product folder {folder} not found")
    packages = sorted(folder.glob("SEN4CAP_L4B_*_MowingDetection.gpkg"))
    if not packages:
        raise NotFoundError(f"{folder} is not an L4B product (no *_MowingDetection.gpkg)")
    layer = pyogrio.read_dataframe(packages[0], read_geometry=False)
    parcels = pd.DataFrame(
        {
            "NewID": layer["NewID"].astype("int64"),
            "Ori_id": layer["Ori_id"].astype(str),
            "proc": layer["proc"].astype("int64"),
            "compl": layer["compl"].astype("int64"),
        }
    )
    csv = folder / EVENTS_CSV
    # a product without the long table: rebuild it from the m1..m4 fields
    events = pd.read_csv(csv, dtype={"Ori_id": str}) if csv.exists() else _events_from_layer(layer)
    for column in ("start", "end", "detected_on"):
        if column in events.columns:
            events[column] = pd.to_datetime(events[column], format=DATE_FORMAT)
    return parcels, events


def _events_from_layer(layer: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for values in layer.to_dict("records"):
        for k in range(1, MAX_EVENTS + 1):
            end = values.get(f"m{k}_dend")
            if end in (None, EMPTY, "") or (isinstance(end, float) and np.isnan(end)):
                continue
            rows.append(
                {"NewID": int(values["NewID"]), "start": values[f"m{k}_dstart"], "end": end,
                 "confidence": values[f"m{k}_conf"], "sensors": values[f"m{k}_mis"]}
            )  # fmt: skip
    return pd.DataFrame(rows, columns=["NewID", "start", "end", "confidence", "sensors"])
