"""The ``l4b`` processor: grassland mowing events of a site's season, as a product.

``capmon run l4b SITE SEASON [--config FILE] [--method capmon|rules|sen4cap] [--model FILE]``
reads the season's MDB, the newest declarations and crop LUT (``--mdb``, ``--parcels``,
``--lut`` replace them), keeps
the parcels whose LUT ``ctnum`` is in the config's ``CTNUM_FILTER`` (without a config: the LUT's
permanent and temporary grassland classes), detects the mowings from ``--start`` (default: the
season start) to ``--until`` (default: the season end), reading ``--lookback-days`` (45) before
``--start`` as context only, and writes the product
``<home>/products/<site>/l4b/<name>/`` (see :mod:`capmon.processors.l4b.outputs`) with a
``product`` row of type ``s4c_l4b``.

Near-real-time: a run continues from the newest earlier L4B product of the same season, method,
sensors and parcels whose period ended before ``--until`` (``--no-incremental`` starts over).
It keeps that product's detections and adds those revealed by acquisitions after its last date.
Scheduled as Sen4CAP's: monthly, the first run 31 days after the season start. On files
(``--mdb --parcels --out``, no site, see :mod:`capmon.processors.files`) a run starts over,
and without ``--lut`` every given parcel is analysed as grassland.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

import geopandas as gpd
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from capmon.catalog.models import Product, Site
from capmon.errors import InputError
from capmon.mdb.query import MarkersDatabase
from capmon.processors.files import product_folder, record_product
from capmon.processors.l4b import capmon_method, learned, sen4cap
from capmon.processors.l4b.compliance import compliance_code
from capmon.processors.l4b.config import L4BConfig, default_l4b_config, read_l4b_config
from capmon.processors.l4b.fusion import MAX_EVENTS, MowingEvent, events_by_parcel, events_frame
from capmon.processors.l4b.outputs import (
    CANDIDATES,
    EVENTS_STATE,
    product_layer,
    write_l4b_product,
)
from capmon.processors.l4b.series import ParcelSeries, SeriesMatrix, read_series
from capmon.processors.l4b.stored import latest_l4b_config
from capmon.processors.registry import (
    Processor,
    ProcessorInput,
    ProcessorOutput,
    RunContext,
    RunResult,
    Schedule,
    register,
)
from capmon.workspace import Workspace

PRODUCT_TYPE = "s4c_l4b"
Sensors = Literal["S1_S2", "S1", "S2"]


class L4BParameters(BaseModel):
    """Parameters of the L4B grassland mowing processor."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["capmon", "rules", "sen4cap"] = Field(
        default="capmon",
        description="capmon (NDVI drops scored by a model trained on real reference mowings, "
        "S1 evidence on request; see docs/l4b.md), rules (capmon's earlier hand-set rules) "
        "or sen4cap (Sen4CAP's method, unchanged).",
    )
    model: Path | None = Field(
        default=None,
        description="A model from `capmon train l4b` for method capmon [default: the shipped "
        "models, trained on real Slovak plots].",
    )
    s1_evidence: bool | None = Field(
        default=None,
        description="Method capmon with sensors S1_S2: score NDVI drops that have S1 pairs "
        "around them with an S1+S2 model. Default: only when --model is an S1+S2 model; the "
        "shipped S1+S2 model did not beat the S2 model on the unseen region of the real "
        "development plots (docs/l4b.md).",
    )
    config: Path | None = Field(
        default=None,
        description=(
            "A Sen4CAP L4B .cfg (CTNUM_FILTER, thresholds, compliancy) [default: the newest "
            "config uploaded for the season's year, else defaults from the LUT]."
        ),
    )
    sensors: Sensors = Field(
        default="S1_S2", description="Sensors used: S1_S2, S1 or S2 (Sen4CAP's sub_steps)."
    )
    start: date | None = Field(
        default=None, description="Mowing start date, YYYY-MM-DD (default: the season start)."
    )
    until: date | None = Field(
        default=None,
        description="Last acquisition date used, YYYY-MM-DD (default: the season end).",
    )
    lookback_days: int = Field(
        default=45,
        ge=0,
        le=366,
        description="Days before --start read for context (an April cut needs the March NDVI); "
        "events are reported only from --start.",
    )
    incremental: bool = Field(
        default=True, description="Continue from the previous L4B product of the season (NRT)."
    )
    mdb: Path | None = Field(
        default=None,
        description="An MDB folder instead of the season's MDB (on files: required).",
    )
    parcels: Path | None = Field(
        default=None,
        description="A parcels table (GeoParquet of an import) instead of the stored one; on files "
        "(with --out) any vector file, ids in --parcel-id-col.",
    )
    lut: Path | None = Field(
        default=None, description="A Sen4CAP LUT CSV instead of the stored one."
    )

    @model_validator(mode="after")
    def _period(self) -> L4BParameters:
        if self.start is not None and self.until is not None and self.until < self.start:
            raise ValueError("until must not be before start")
        if self.method == "capmon" and self.sensors == "S1":
            raise ValueError("method capmon scores Sentinel-2 NDVI drops: with sensors S1 use "
                             "method rules or sen4cap")  # fmt: skip
        if self.model is not None and self.method != "capmon":
            raise ValueError("model is for method capmon")
        if self.s1_evidence and (self.method != "capmon" or self.sensors != "S1_S2"):
            raise ValueError("s1_evidence is for method capmon with sensors S1_S2")
        return self


@dataclass
class L4BResult:
    """What a run found, before it is written."""

    layer: gpd.GeoDataFrame
    events: dict[int, list[MowingEvent]]
    candidates: pd.DataFrame
    first_date: date | None
    last_date: date | None
    notes: list[str] = field(default_factory=list)


def grassland_classes(lut: pd.DataFrame) -> list[int]:
    """``ctnum`` of the LUT's permanent or temporary grassland rows."""
    flags = np.zeros(len(lut), dtype=bool)
    for column in ("pgrass", "tgrass"):
        if column in lut.columns:
            flags |= lut[column].fillna(False).astype(bool).to_numpy()
    return sorted({int(c) for c in lut.loc[flags, "ctnum"]})


def grassland_parcels(
    parcels: gpd.GeoDataFrame, lut: pd.DataFrame, config: L4BConfig
) -> gpd.GeoDataFrame:
    """Sen4CAP's generated input shapefile: declarations joined with the LUT, filtered by
    ``CTNUM_FILTER`` (an empty filter keeps every parcel, as Sen4CAP)."""
    codes = lut[["ori_crop", "ctnum"]].dropna().copy()
    codes["key"] = codes["ori_crop"].astype(str).str.strip()
    ctnum = dict(zip(codes["key"], codes["ctnum"].astype(int), strict=False))
    table = parcels.copy()
    table["CTnum"] = table["ori_crop"].astype(str).str.strip().map(ctnum)
    if config.ctnum_filter:
        table = table[table["CTnum"].isin(config.ctnum_filter)]
    table = table.assign(
        CTnum=table["CTnum"].fillna(-1).astype("int64"),
        Ori_hold=table["ori_hold"], Ori_id=table["ori_id"], Ori_crop=table["ori_crop"],
        Area_meter=table["Area_meters"],
    )  # fmt: skip
    return table.sort_values("NewID").reset_index(drop=True)


def _observed(matrix: SeriesMatrix, since: np.datetime64 | None) -> np.ndarray:
    """Parcels with a value in ``matrix`` on or after ``since`` (the look-back does not count)."""
    values = matrix.values if since is None else matrix.values[:, matrix.dates >= since]
    return np.asarray(np.isfinite(values).any(axis=1), dtype=bool)


def _processed(
    series: ParcelSeries, use_s1: bool, use_s2: bool, since: np.datetime64 | None = None
) -> np.ndarray:
    mask = np.zeros(len(series.parcel_ids), dtype=bool)
    if use_s2 and series.optical is not None and not series.optical.empty:
        mask |= _observed(series.optical, since)
    if use_s1:
        for matrices in series.coherence.values():
            for m in matrices:
                mask |= _observed(m, since)
    return mask


def _dates(series: ParcelSeries) -> Iterator[np.datetime64]:
    if series.optical is not None:
        yield from series.optical.dates
    for matrices in (*series.coherence.values(), *series.amplitude.values()):
        for m in matrices:
            yield from m.dates


def _merge_frozen(
    frozen: list[MowingEvent], new: list[MowingEvent], gap_days: float
) -> list[MowingEvent]:
    """Previous events stay; new ones are added unless closer than ``gap_days`` to one."""
    kept = list(frozen)
    for event in sorted(new, key=lambda e: (-e.confidence, e.end)):
        if all(abs((event.end - k.end) / timedelta(days=1)) >= gap_days for k in kept):
            kept.append(event)
    best = sorted(kept, key=lambda e: (-e.confidence, e.end))[:MAX_EVENTS]
    return sorted(best, key=lambda e: e.start)


def detect_mowing(
    mdb: MarkersDatabase,
    parcels: gpd.GeoDataFrame,
    config: L4BConfig,
    *,
    method: Literal["capmon", "rules", "sen4cap"] = "capmon",
    sensors: Sensors = "S1_S2",
    start: date | None = None,
    until: date | None = None,
    previous: tuple[date, pd.DataFrame, pd.DataFrame] | None = None,
    progress: Any = None,
    lookback_days: int = 45,
    model: learned.MowingModel | None = None,
    s1_evidence: bool | None = None,
) -> L4BResult:
    """Mowing events of ``parcels`` (the grassland selection, see :func:`grassland_parcels`).

    Observations from ``lookback_days`` before ``start`` are read as context (the value before
    a cut), but only events ending on or after ``start`` are reported. ``previous`` is (last
    date, candidates, events) of an earlier run of the same period. ``s1_evidence``: whether
    the learned method scores candidates with S1 around them by an S1+S2 model
    (:func:`learned.uses_s1_evidence`; by default only with such a ``model``).
    """
    use_s1, use_s2 = sensors in ("S1_S2", "S1"), sensors in ("S1_S2", "S2")
    ids = parcels["NewID"].astype("int64").to_numpy()
    cutoff = pd.Timestamp(previous[0]) + pd.Timedelta(days=1) if previous else None
    old_candidates = previous[1] if previous else sen4cap.empty_candidates()
    old_events = events_by_parcel(previous[2]) if previous else {}
    events: dict[int, list[MowingEvent]] = {}
    processed: dict[int, bool] = {}
    kept_candidates: list[pd.DataFrame] = []
    first: np.datetime64 | None = None
    last: np.datetime64 | None = None
    any_s1 = any_s2 = False
    total = max(1, len(ids))
    done = 0
    read_from = start - timedelta(days=lookback_days) if start is not None else None
    reported = np.datetime64(start, "D") if start is not None else None
    if method == "capmon" and sensors == "S1":
        raise InputError("method capmon scores Sentinel-2 NDVI drops: with sensors S1 use "
                         "method rules or sen4cap")  # fmt: skip
    learned_sensors: learned.Sensors = "S1_S2" if sensors == "S1_S2" else "S2"
    models: dict[str, learned.MowingModel] = {}
    if method == "capmon":
        models = learned.models_for(learned_sensors, model, s1_evidence)
        if "S1_S2" not in models:
            learned_sensors = "S2"
    last_day = datetime.combine(until, datetime.min.time()) if until is not None else None
    for series in read_series(mdb, ids, read_from, until, config.s2.signal):
        any_s1 |= bool(_processed(series, True, False, reported).any())
        any_s2 |= bool(_processed(series, False, True, reported).any())
        for day in _dates(series):
            if reported is not None and day < reported:
                continue  # look-back context, not part of the reported period
            first = day if first is None or day < first else first
            last = day if last is None or day > last else last
        # the learned method detects on NDVI: a parcel with S1 only was not analysed
        judged_by_s1 = use_s1 and method != "capmon"
        for pid, flag in zip(series.parcel_ids, _processed(series, judged_by_s1, use_s2, reported),
                             strict=True):  # fmt: skip
            processed[int(pid)] = bool(flag)
        if method == "sen4cap":
            found = sen4cap.detect_candidates(series, config, use_s1, use_s2)
        elif method == "capmon":
            found = learned.scored_candidates(series, learned_sensors, models, last_day)
        else:
            found = capmon_method.detect_candidates(series, config, None, use_s1, use_s2)
        if start is not None and not found.empty:
            found = found[found["end"] >= pd.Timestamp(start)]
        if cutoff is not None and not found.empty:
            found = found[found["detected_on"] >= cutoff]
        chunk_ids = set(series.parcel_ids.tolist())
        if method == "sen4cap":
            old = old_candidates[old_candidates["parcel_id"].isin(chunk_ids)]
            merged = pd.concat([p for p in (old, found) if not p.empty], ignore_index=True) \
                if not (old.empty and found.empty) else sen4cap.empty_candidates()  # fmt: skip
            kept_candidates.append(merged)
            for key, group in merged.groupby("parcel_id"):
                chosen = sen4cap.select_events(group, config)
                if chosen:
                    events[int(cast(int, key))] = chosen
        else:
            kept_candidates.append(found)
            if method == "capmon":
                new = learned.select_events(found)
                interval = learned.LearnedSettings().min_interval_days
            else:
                new = capmon_method.select_all(found, series, None, use_s1)
                interval = capmon_method.CapmonSettings().min_interval_days
            for pid in chunk_ids:
                merged_events = _merge_frozen(old_events.get(pid, []), new.get(pid, []), interval)
                if merged_events:
                    events[pid] = merged_events
        done += len(series.parcel_ids)
        if progress is not None:
            progress(done / total, f"{done} of {len(ids)} parcels")
    notes: list[str] = []
    if use_s1 and not any_s1:
        notes.append("no Sentinel-1 coherence in the period: S1 not run (NR), S2-only results")
    if use_s2 and not any_s2:
        notes.append(f"no Sentinel-2 {config.s2.signal} in the period: S2 not run (NR)")
    unprocessed = sum(1 for v in processed.values() if not v)
    if unprocessed:
        notes.append(f"{unprocessed} parcels without observations (proc = 0)")
    compliance = {
        int(pid): compliance_code(crop, events.get(int(pid), []), processed.get(int(pid), False),
                                  config)
        for pid, crop in zip(parcels["NewID"], parcels["Ori_crop"], strict=True)
    }  # fmt: skip
    layer = product_layer(parcels, events, processed, compliance)
    candidates = [c for c in kept_candidates if not c.empty]
    if method != "sen4cap" and not old_candidates.empty:
        candidates.insert(0, old_candidates)
    return L4BResult(
        layer=layer,
        events=events,
        candidates=(
            pd.concat(candidates, ignore_index=True) if candidates else sen4cap.empty_candidates()
        ),
        first_date=_as_date(first),
        last_date=_as_date(last),
        notes=notes,
    )


def _as_date(day: np.datetime64 | None) -> date | None:
    return None if day is None else pd.Timestamp(day).date()


def _previous(
    workspace: Workspace, site: Site, key: dict[str, Any], until: date
) -> tuple[date, pd.DataFrame, pd.DataFrame, str] | None:
    """The newest earlier product of the same season, method, sensors and parcels."""
    best: tuple[date, str] | None = None
    with workspace.session() as session:
        rows = session.scalars(
            select(Product).where(Product.site_id == site.id, Product.product_type == PRODUCT_TYPE)
        ).all()
        for row in rows:
            props = row.properties or {}
            if any(props.get(k) != v for k, v in key.items()) or not props.get("until"):
                continue
            ended = date.fromisoformat(str(props["until"]))
            if ended < until and (best is None or ended > best[0]):
                best = (ended, row.path)
    if best is None:
        return None
    folder = Path(best[1])
    try:
        candidates = pd.read_parquet(folder / CANDIDATES)
        events = pd.read_parquet(folder / EVENTS_STATE)
    except OSError:
        return None  # the previous product's files are gone: start over
    return best[0], candidates, events, folder.name


def figures(result: L4BResult) -> dict[str, Any]:
    """Counts of parcels, events and compliance codes."""
    layer = result.layer
    counts = layer["compl"].value_counts().to_dict()
    missions = pd.Series([e.mission for ev in result.events.values() for e in ev]).value_counts()
    return {
        "parcels": len(layer),
        "processed": int(layer["proc"].sum()),
        "parcels_mown": int((layer["mow_n"] > 0).sum()),
        "events": int(layer["mow_n"].sum()),
        "events_by_sensors": {str(k): int(v) for k, v in missions.items()},
        "compliance": {str(k): int(counts.get(k, 0)) for k in (-1, 0, 1, 2, 3)},
        "first_acquisition": str(result.first_date),
        "last_acquisition": str(result.last_date),
        "notes": list(result.notes),
    }


def run(context: RunContext, parameters: L4BParameters) -> RunResult:
    """Detect the season's mowings, write the product and register it (on files: write it to
    ``--out``; without ``--lut`` every parcel is taken as grassland)."""
    from capmon.processors.files import run_lut, run_parcels, run_season_and_mdb

    context.progress(0.0, "reading the inputs")
    season, mdb = run_season_and_mdb(context, parameters.mdb, "L4B")
    year = season.year
    start = parameters.start or season.start_date
    until = parameters.until or season.end_date
    if until < start:
        raise InputError(f"--until {until} is before the mowing start {start}")
    parcels = run_parcels(context, parameters.parcels, year, mdb)
    parcels_key = str(Path(parameters.parcels).resolve()) if parameters.parcels else ""
    parcels_key = parcels_key or (str(parameters.mdb) if parameters.mdb else mdb.root.name)
    lut = run_lut(context, parameters.lut, year)
    notes: list[str] = []
    config_path = parameters.config
    if config_path is None and not context.on_files:
        config_path = latest_l4b_config(context.workspace, context.site, year)
    config = (
        read_l4b_config(config_path)
        if config_path is not None
        else default_l4b_config(grassland_classes(lut) if lut is not None else [])
    )
    if lut is None:
        if config.ctnum_filter:
            raise InputError(
                f"the L4B config's CTNUM_FILTER {list(config.ctnum_filter)} selects parcels by "
                "crop class: pass --lut FILE and --crop-code-col COLUMN"
            )
        lut = pd.DataFrame({"ori_crop": pd.Series(dtype="string"), "ctnum": []})
        notes.append("no crop LUT: every parcel is analysed as grassland (CTnum -1)")
    selection = grassland_parcels(parcels, lut, config)
    if selection.empty:
        where = repr(context.site.name) if not context.on_files else str(parameters.parcels)
        raise InputError(
            f"no parcel of {where} {year} has a grassland class "
            f"(CTNUM_FILTER {list(config.ctnum_filter) or 'empty'})"
        )
    model = learned.MowingModel.load(parameters.model) if parameters.model else None
    key = {"season": season.name, "method": parameters.method, "sensors": parameters.sensors,
           "model": str(parameters.model.resolve()) if parameters.model else None,
           "s1_evidence": parameters.s1_evidence,
           "parcels_key": parcels_key, "start": start.isoformat(),
           "lookback_days": parameters.lookback_days,
           "config": str(config_path.resolve()) if config_path else None}  # fmt: skip
    previous = (
        _previous(context.workspace, context.site, key, until)
        if parameters.incremental and not context.on_files
        else None
    )

    def progress(fraction: float, message: str) -> None:
        context.progress(0.05 + 0.85 * fraction, message)

    result = detect_mowing(
        mdb, selection, config, method=parameters.method, sensors=parameters.sensors,
        start=start, until=until, previous=previous[:3] if previous else None, progress=progress,
        lookback_days=parameters.lookback_days, model=model, s1_evidence=parameters.s1_evidence,
    )  # fmt: skip
    result.notes[:0] = notes
    if previous is not None:
        result.notes.insert(0, f"continued from {previous[3]} (acquisitions after {previous[0]})")
    folder = product_folder(context, "l4b", "L4B", result.first_date, result.last_date)
    report = key | {"until": until.isoformat(), "parameters": parameters.model_dump(mode="json"),
                    "config_source": str(config.source) if config.source else "default",
                    "ctnum_filter": list(config.ctnum_filter), **figures(result)}  # fmt: skip
    context.progress(0.92, "writing the product")
    files = write_l4b_product(
        folder, result.layer, result.events, result.candidates, events_frame(result.events),
        report, parameters.sensors,
    )  # fmt: skip
    record_product(context, folder, PRODUCT_TYPE, result.first_date, result.last_date, report)
    context.progress(1.0, "done")
    numbers = figures(result)
    return RunResult(
        summary=(
            f"{numbers['events']} mowing events on {numbers['parcels_mown']} of "
            f"{numbers['parcels']} grassland parcels ({parameters.method} method, "
            f"{parameters.sensors}); {numbers['processed']} processed"
        ),
        figures=numbers,
        outputs={"product": str(folder)} | {k: str(v) for k, v in files.items()},
    )


L4B = register(
    Processor(
        id="l4b",
        title="L4B grassland mowing",
        version="1.0",
        description=(
            "Mowing events of grassland parcels from Sentinel-1 coherence and amplitude and "
            "Sentinel-2 NDVI, with Sen4CAP's .cfg, product fields and compliance codes; "
            "method capmon (default: a model trained on real reference mowings, retrained with "
            "`capmon train l4b`), rules or sen4cap; near-real-time runs continue the previous one."
        ),
        parameters=L4BParameters,
        inputs=(
            ProcessorInput("mdb", "mdb", "The season's markers database."),
            ProcessorInput("parcels", "parcels", "The newest declarations of the season's year."),
            ProcessorInput("lut", "lut", "The crop LUT (ctnum of the grassland classes)."),
            ProcessorInput("config", "config", "A Sen4CAP L4B .cfg file.", required=False),
        ),
        outputs=(
            ProcessorOutput(
                "l4b",
                PRODUCT_TYPE,
                "Mowing GeoPackage and shapefile (Sen4CAP fields) and the long events table.",
                "application/geopackage+sqlite3",
            ),
        ),
        schedule=Schedule(kind="monthly", first="start", offset_days=31),
        run=run,
        runs_on_files=True,
    )
)
