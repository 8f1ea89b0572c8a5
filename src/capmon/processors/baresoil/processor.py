"""The ``baresoil`` processor: bare soil / vegetation / no data per parcel and 10-day period.

Reads the season's MDB (NDVI, NDTILL, BSI; with ``--use-s1`` also AMP_VH and COHE_VV) and the
newest declarations of the season's year, and writes ``<home>/products/<site>/baresoil/<name>/``:

* ``status.parquet``: per parcel and dekad: status (BARE, VEG, NO_DATA), confidence, P(bare),
  number of optical observations, mean indices;
* ``observations.parquet``: per parcel and optical acquisition: indices and P(bare);
* ``periods.csv``: bare-soil periods (start, end, days);
* ``compliance.csv``: per parcel and soil-cover window: COMPLIANT, NOT_COMPLIANT or NO_DATA;
* ``report.json``: parameters, model, counts, notes;

and a catalogue product of type ``s4c_baresoil`` (on files, ``--mdb --parcels --out``: the
folder ``--out`` and no catalogue row, see :mod:`capmon.processors.files`).
"""

from __future__ import annotations

import functools
import json
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from capmon.errors import InputError
from capmon.mdb.query import open_mdb
from capmon.processors.baresoil.detect import (
    BARE,
    NO_DATA,
    NOT_COMPLIANT,
    RADAR_SIGNALS,
    VEG,
    detect_bare_soil,
)
from capmon.processors.baresoil.model import FEATURES
from capmon.processors.baresoil.parameters import BareSoilParameters
from capmon.processors.baresoil.products import (
    TableAppender,
)
from capmon.processors.chunks import chunked, map_chunks
from capmon.processors.files import product_folder, record_product
from capmon.processors.registry import (
    Processor,
    ProcessorInput,
    ProcessorOutput,
    RunContext,
    RunResult,
    Schedule,
    register,
)
from capmon.workspace import atomic_path

PRODUCT_TYPE = "s4c_baresoil"
PROCESSOR_ID = "baresoil"


def _detect_chunk(
    chunk: list[int],
    *,
    mdb_root: str,
    signals: list[str],
    start: date,
    end: date,
    model: Any,
    window: Any,
    radar: Any,
    max_gap: int,
) -> Any:
    """Bare-soil detection of one chunk of parcels (a Dask task when run on a cluster)."""
    rows = open_mdb(mdb_root).timeseries(chunk, signals, start, end)
    return detect_bare_soil(
        rows, chunk, start, end, model=model, window=window, radar_model=radar, max_gap=max_gap
    )


def run(context: RunContext, parameters: BareSoilParameters) -> RunResult:
    """Classify every parcel and dekad of the season, write the product and register it (on
    files: write it to ``--out``)."""
    from capmon.processors.files import run_parcels, run_season_and_mdb

    season, mdb = run_season_and_mdb(context, parameters.mdb, "baresoil")
    year = season.year
    start = parameters.start or season.start_date
    end = parameters.end or season.end_date
    if end < start:
        raise InputError(f"--end {end} is before --start {start}")
    parcels = run_parcels(context, parameters.parcels, year, mdb)
    model = parameters.bare_soil_model()
    radar = parameters.radar_model()
    window = parameters.cover_window()
    signals = [*FEATURES, *(RADAR_SIGNALS if radar is not None else ())]
    original = dict(
        zip(parcels["NewID"].astype(np.int64), parcels["ori_id"].astype(str), strict=True)
    )
    ids = np.sort(parcels["NewID"].to_numpy(np.int64))

    folder = product_folder(context, PROCESSOR_ID, "BARESOIL", start, end)
    totals: dict[str, int] = {}
    notes: list[str] = []
    first_seen: date | None = None
    last_seen: date | None = None
    non_compliant: set[int] = set()
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        tables = TableAppender(tmp)
        try:
            chunks = chunked(ids.tolist(), parameters.chunk_parcels)
            detect = functools.partial(
                _detect_chunk, mdb_root=str(mdb.root), signals=signals, start=start, end=end,
                model=model, window=window, radar=radar, max_gap=parameters.max_gap,
            )  # fmt: skip
            for n, result in enumerate(map_chunks(detect, chunks)):
                context.progress(n / len(chunks), f"parcels chunk {n + 1}/{len(chunks)}")
                for key, value in result.counts.items():
                    if key != "parcels_not_compliant":
                        totals[key] = totals.get(key, 0) + value
                non_compliant |= set(
                    result.compliance.loc[
                        result.compliance["compliance"] == NOT_COMPLIANT, "parcel_id"
                    ].tolist()
                )
                notes.extend(f"chunk {n + 1}: {note}" for note in result.notes)
                if not result.observations.empty:
                    dates = pd.to_datetime(result.observations["date"])
                    lo, hi = dates.min().date(), dates.max().date()
                    first_seen = lo if first_seen is None else min(first_seen, lo)
                    last_seen = hi if last_seen is None else max(last_seen, hi)
                tables.append("status.parquet", _with_ori(result.status, original))
                tables.append("observations.parquet", _with_ori(result.observations, original))
                tables.append("periods.csv", _dates_as_text(_with_ori(result.periods, original)))
                tables.append(
                    "compliance.csv", _dates_as_text(_with_ori(result.compliance, original))
                )
        finally:
            tables.close()
        if first_seen is None:
            raise InputError(
                f"the MDB {mdb.root} has no NDVI/NDTILL/BSI observation of these parcels "
                f"between {start} and {end}: nothing to classify"
            )
        totals["parcels_not_compliant"] = len(non_compliant)
        report = {
            "parameters": parameters.model_dump(mode="json"),
            "model": model.model_dump(mode="json"),
            "radar": radar.model_dump(mode="json") if radar is not None else None,
            "analysed": [str(start), str(end)],
            "first_observation": str(first_seen),
            "last_observation": str(last_seen),
            "parcels": len(ids),
            "counts": totals,
            "notes": notes,
        }
        (tmp / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    record_product(context, folder, PRODUCT_TYPE, start, end, report)
    context.progress(1.0, "done")
    observed = totals.get("dekads_bare", 0) + totals.get("dekads_veg", 0)
    summary = (
        f"{len(ids)} parcels, {observed} observed dekads: {totals.get('dekads_bare', 0)} bare, "
        f"{totals.get('dekads_veg', 0)} vegetated, {totals.get('dekads_no_data', 0)} without "
        f"data; {totals.get('bare_periods', 0)} bare-soil periods; "
        f"{len(non_compliant)} parcels not compliant with the {parameters.cover_start}.."
        f"{parameters.cover_end} soil-cover window"
    )
    names = (
        "status.parquet",
        "observations.parquet",
        "periods.csv",
        "compliance.csv",
        "report.json",
    )
    return RunResult(
        summary=summary,
        figures={"parcels": len(ids), **totals},
        outputs={"product": str(folder)}
        | {name.split(".")[0]: str(folder / name) for name in names},
    )


def _with_ori(table: pd.DataFrame, original: dict[int, str]) -> pd.DataFrame:
    out = table.copy()
    out.insert(1, "ori_id", out["parcel_id"].map(original).astype("string"))
    return out


def _dates_as_text(table: pd.DataFrame) -> pd.DataFrame:
    out = table.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime("%Y-%m-%d")
    return out


BARESOIL = register(
    Processor(
        id=PROCESSOR_ID,
        title="Bare soil detection",
        version="1.0",
        description=(
            "Per parcel and 10-day period: bare soil, vegetation or no data with a confidence, "
            "from S2 NDVI, NDTILL and BSI (optionally S1 VH and coherence); bare-soil periods "
            f"and compliance with a minimum soil-cover window. Statuses {BARE}, {VEG}, {NO_DATA}."
        ),
        parameters=BareSoilParameters,
        inputs=(
            ProcessorInput("mdb", "mdb", "The season's markers database (NDVI, NDTILL, BSI)."),
            ProcessorInput("parcels", "parcels", "The newest declarations of the season's year."),
        ),
        outputs=(
            ProcessorOutput(
                "baresoil",
                PRODUCT_TYPE,
                "Per parcel and dekad status, bare-soil periods, soil-cover compliance.",
                "application/vnd.apache.parquet",
            ),
        ),
        schedule=Schedule(kind="every", first="start", offset_days=10, every_days=10),
        run=run,
        runs_on_files=True,
    )
)
