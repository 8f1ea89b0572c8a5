"""The L4C time-series analysis of a practice table: per parcel markers, harvest, C_INDEX.

:func:`analyse_practices` reads the MDB in chunks of parcels, builds the weekly series
(:mod:`.weekly`), runs the harvest markers (:mod:`.harvest`), the practice markers and
compliance (:mod:`.efa`) and optionally tillage (:mod:`.tillage`), and returns the rows of
Sen4CAP's CSV and the weekly M1-M5 of every parcel (the continuous product and MDB3).

Parcels with fewer than ``s1pix_threshold`` S1 pixels get NA1 markers; parcels with
``min_coherence`` coherence values or fewer (Sen4CAP: more than 15 are required), or without
any S1 week, get NR markers and C_INDEX NR, never an error. A practice window that ends after
the last coherence date gives C_INDEX NR (the practice cannot be judged yet).

Next to Sen4CAP's rows it returns capmon's harvest estimate of every parcel whose harvest is
confirmed (:mod:`.estimate`, ``ESTIMATE_COLUMNS``; "NR" without a confirmed harvest) and marks
the estimated week in the weekly table (``HARVEST_EST``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from capmon.errors import InputError
from capmon.mdb.query import MarkersDatabase
from capmon.processors.chunks import chunked, map_chunks
from capmon.processors.l4c.config import PRACTICE_NAMES, PracticeCode, TsaParameters
from capmon.processors.l4c.efa import (
    EfaMarkers,
    all_markers,
    catch_crop_compliance,
    catch_crop_window,
    fallow_compliance,
    nfc_compliance,
    not_relevant,
)
from capmon.processors.l4c.estimate import HarvestEstimate, estimate_harvest
from capmon.processors.l4c.harvest import (
    FALSE,
    MARKER_TEXT,
    NA1,
    NR,
    TRUE,
    HarvestResult,
    HarvestWindow,
    harvest_markers,
    no_data_result,
)
from capmon.processors.l4c.practices import PracticeTable
from capmon.processors.l4c.tillage import detect_tillage
from capmon.processors.l4c.weekly import (
    AMPLITUDE_INPUTS,
    COHERENCE_SIGNAL,
    NDVI_SIGNAL,
    ParcelWeeks,
    empty_weeks,
    iso_week,
    s1_gaps,
    week_start,
    weekly_series,
)

CSV_COLUMNS = (
    "FIELD_ID", "ORIG_ID", "COUNTRY", "YEAR", "MAIN_CROP", "VEG_START", "H_START", "H_END",
    "PRACTICE", "P_TYPE", "P_START", "P_END", "L_WEEK", "M1", "M2", "M3", "M4", "M5", "H_WEEK",
    "H_W_START", "H_W_END", "H_W_S1", "M6", "M7", "M8", "M9", "M10", "C_INDEX", "S1PIX",
    "S1GAPS", "H_S1GAPS", "P_S1GAPS", "H_W_S1GAPS", "H_QUALITY", "C_QUALITY",
)  # fmt: skip
TILLAGE_COLUMNS = ("TL_WEEK", "TL_W_START", "TL_W_END")
ESTIMATE_COLUMNS = (
    "FIELD_ID", "ORIG_ID", "H_WEEK", "H_W_START", "HARVEST_WEEK_EST", "HARVEST_W_EST_START",
    "HARVEST_W_EST_END", "HARVEST_DATE_EST", "HARVEST_EST_FROM", "HARVEST_EST_TO",
    "HARVEST_EST_SOURCE", "HARVEST_EST_CONF", "HARVEST_EST_COH_STEP",
)  # fmt: skip
"""capmon's harvest estimate per parcel (not in Sen4CAP's CSV; see :mod:`.estimate`)."""
NO_HARVEST = "NO-HARVEST"
NR_TEXT = "NR"
MIN_COHERENCE_VALUES = 15


@dataclass(frozen=True)
class AnalysisSettings:
    """How the analysis runs (Sen4CAP's processor settings; defaults are its defaults)."""

    country: str
    year: int
    season_start: date
    season_end: date
    season_mid: date | None = None
    amplitude: str = "amp"
    s1pix_threshold: int = 1
    min_coherence: int = MIN_COHERENCE_VALUES
    tillage: bool = False
    chunk_size: int = 2000


@dataclass
class L4CResult:
    """The analysis of one practice table."""

    practice: PracticeCode
    country: str
    year: int
    rows: pd.DataFrame
    weekly: pd.DataFrame
    tillage: bool
    first_date: date | None
    last_date: date | None
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    estimates: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(ESTIMATE_COLUMNS))
    )
    """capmon's harvest estimate per parcel (``ESTIMATE_COLUMNS``)."""

    def figures(self) -> dict[str, Any]:
        """Counts per C_INDEX and harvest status, for the run's figures."""
        return dict(self.counts)


def _text(code: int) -> str:
    return MARKER_TEXT[int(code)]


def _iso(day: date | None) -> str:
    return day.isoformat() if day is not None else "NA"


def _week_day(weeks: np.ndarray, index: int) -> date:
    return date.fromisoformat(str(weeks[index].astype("datetime64[D]")))


def _read_rows(
    mdb: MarkersDatabase, ids: Sequence[int], settings: AnalysisSettings
) -> pd.DataFrame:
    source = AMPLITUDE_INPUTS[settings.amplitude]
    signals = [NDVI_SIGNAL, source.vv, source.vh, COHERENCE_SIGNAL]
    return mdb.timeseries(ids, signals, settings.season_start, settings.season_end)


def _s1_limits(mdb: MarkersDatabase, settings: AnalysisSettings) -> tuple[date | None, date | None]:
    """The first and last S1 dates of the MDB within the season (None: no S1 data)."""
    source = AMPLITUDE_INPUTS[settings.amplitude]
    relation = mdb.duckdb().filter(
        f"signal IN ('{source.vv}', '{source.vh}', '{COHERENCE_SIGNAL}') "
        f"AND date >= DATE '{settings.season_start}' AND date <= DATE '{settings.season_end}'"
    )
    found = relation.aggregate("min(date), max(date)").fetchall()
    if not found:
        return None, None
    first, last = found[0]
    return first, last


def analyse_practices(
    mdb: MarkersDatabase,
    parcels: pd.DataFrame,
    table: PracticeTable,
    parameters: TsaParameters,
    settings: AnalysisSettings,
    progress: Callable[[float, str], None] | None = None,
) -> L4CResult:
    """Markers, harvest week and C_INDEX of every matched row of ``table`` (see the module
    docstring). ``parcels`` needs ``NewID``, ``ori_id`` and ``S1Pix``."""
    if settings.amplitude not in AMPLITUDE_INPUTS:
        known = ", ".join(AMPLITUDE_INPUTS)
        raise InputError(f"unknown amplitude input {settings.amplitude!r} (known: {known})")
    rows = table.rows[table.rows["NewID"].notna()] if "NewID" in table.rows else None
    if rows is None or rows.empty:
        raise InputError(f"{table.source}: no practice row matches a parcel of the declarations")
    s1pix = dict(zip(parcels["NewID"].astype("int64"), parcels["S1Pix"].astype("int64"),
                     strict=True))  # fmt: skip
    ori_ids = dict(zip(parcels["NewID"].astype("int64"), parcels["ori_id"].astype(str),
                       strict=True))  # fmt: skip
    first_s1, last_s1 = _s1_limits(mdb, settings)
    notes: list[str] = []
    if last_s1 is None:
        notes.append(
            "no Sentinel-1 amplitude/coherence data in the season: every marker and C_INDEX is NR"
        )
    limit = min(last_s1, settings.season_end) if last_s1 is not None else settings.season_end
    out_rows: list[dict[str, Any]] = []
    estimate_rows: list[dict[str, Any]] = []
    weekly_parts: list[dict[str, Any]] = []
    ids = [int(i) for i in rows["NewID"].drop_duplicates()]
    counts = {"few_s1_pixels": 0, "few_coherence_values": 0}
    # each chunk carries its own rows, with the parcel's S1Pix and original id, so that a chunk
    # sent to another Dask worker holds nothing of the other parcels
    chunks = []
    for chunk_ids in chunked(ids, settings.chunk_size):
        records = rows[rows["NewID"].isin(chunk_ids)].to_dict("records")
        for record in records:
            new_id = int(record["NewID"])
            record[_S1PIX] = s1pix.get(new_id, 0)
            record[_ORI_ID] = ori_ids.get(new_id, str(record["FIELD_ID"]))
        chunks.append(records)
    analyse = functools.partial(
        _analyse_chunk, mdb_root=str(mdb.root), practice=table.practice, parameters=parameters,
        settings=settings, limit=limit, with_s1=last_s1 is not None,
    )  # fmt: skip
    done = 0
    for part in map_chunks(analyse, chunks):
        out_rows.extend(part.rows)
        estimate_rows.extend(part.estimates)
        weekly_parts.extend(part.weekly)
        for key, value in part.counts.items():
            counts[key] += value
        done += part.parcels
        if progress is not None:
            progress(min(1.0, done / len(ids)), f"{done} parcels")
    columns = list(CSV_COLUMNS) + (list(TILLAGE_COLUMNS) if settings.tillage else [])
    result_rows = pd.DataFrame(out_rows, columns=columns)
    weekly_all = (
        _weekly_table(weekly_parts)
        if weekly_parts
        else pd.DataFrame(
            {
                "NewID": pd.Series(dtype="int64"),
                "ORIG_ID": pd.Series(dtype=object),
                "week_start": pd.Series(dtype=object),
                **{f"M{k}": pd.Series(dtype="int8") for k in range(1, 6)},
                "HARVEST_EST": pd.Series(dtype="int8"),
            }
        )
    )
    if counts["few_s1_pixels"]:
        notes.append(
            f"{counts['few_s1_pixels']} parcel(s) with S1Pix < {settings.s1pix_threshold}: "
            "markers NA1"
        )
    if counts["few_coherence_values"]:
        notes.append(
            f"{counts['few_coherence_values']} parcel(s) with {settings.min_coherence} coherence "
            "values or fewer (or no S1 week): markers NR"
        )
    if table.unknown_ids:
        notes.append(
            f"{len(table.unknown_ids)} practice FIELD_ID(s) not in the declarations were skipped"
        )
    estimates = pd.DataFrame(estimate_rows, columns=list(ESTIMATE_COLUMNS))
    figures = (
        _counts(result_rows)
        | _estimate_counts(estimates)
        | counts
        | {"unknown_ids": len(table.unknown_ids)}
    )
    return L4CResult(
        table.practice, settings.country, settings.year, result_rows, weekly_all,
        settings.tillage, first_s1, last_s1, notes, figures, estimates,
    )  # fmt: skip


def _counts(rows: pd.DataFrame) -> dict[str, int]:
    out = {"parcels": len(rows)}
    for value, count in rows["C_INDEX"].value_counts().items():
        out[f"c_index_{str(value).lower()}"] = int(count)
    harvested = rows["H_WEEK"].astype(str).str.isdigit()
    out["harvest_detected"] = int(harvested.sum())
    out["no_harvest"] = int((rows["H_WEEK"] == NO_HARVEST).sum())
    return out


def _weekly_table(parts: list[dict[str, Any]]) -> pd.DataFrame:
    """The weekly markers of every parcel, one concatenation (not a frame per parcel)."""
    columns = list(parts[0])
    return pd.DataFrame(
        {
            column: (
                [day for part in parts for day in part[column]]
                if column == "week_start"
                else np.concatenate([part[column] for part in parts])
            )
            for column in columns
        }
    )


def _estimate_counts(estimates: pd.DataFrame) -> dict[str, int]:
    found = estimates["HARVEST_WEEK_EST"] != NR_TEXT
    return {
        "harvest_estimated": int(found.sum()),
        "harvest_estimate_high": int((estimates["HARVEST_EST_CONF"] == "HIGH").sum()),
        "harvest_estimate_coherence": int((estimates["HARVEST_EST_SOURCE"] == "COHERENCE").sum()),
        "harvest_estimate_amplitude": int((estimates["HARVEST_EST_SOURCE"] == "AMPLITUDE").sum()),
    }


def _estimate_row(
    new_id: int, ori_id: str, h_week: str, h_w_start: str, estimate: HarvestEstimate | None
) -> dict[str, Any]:
    row: dict[str, Any] = {"FIELD_ID": new_id, "ORIG_ID": ori_id, "H_WEEK": h_week,
                           "H_W_START": h_w_start}  # fmt: skip
    if estimate is None:
        return row | {column: NR_TEXT for column in ESTIMATE_COLUMNS[4:]}
    step = estimate.coherence_step
    return row | {
        "HARVEST_WEEK_EST": str(estimate.iso_week),
        "HARVEST_W_EST_START": estimate.week_start.isoformat(),
        "HARVEST_W_EST_END": (estimate.week_start + timedelta(days=6)).isoformat(),
        "HARVEST_DATE_EST": estimate.day.isoformat(),
        "HARVEST_EST_FROM": estimate.earliest.isoformat(),
        "HARVEST_EST_TO": estimate.latest.isoformat(),
        "HARVEST_EST_SOURCE": estimate.source,
        "HARVEST_EST_CONF": estimate.confidence,
        "HARVEST_EST_COH_STEP": f"{step:.3f}" if step is not None else NR_TEXT,
    }


_S1PIX = "__capmon_s1pix"
_ORI_ID = "__capmon_ori_id"


@dataclass
class _ChunkResult:
    rows: list[dict[str, Any]]
    estimates: list[dict[str, Any]]
    weekly: list[dict[str, Any]]
    counts: dict[str, int]
    parcels: int


def _analyse_chunk(
    records: list[dict[str, Any]],
    *,
    mdb_root: str,
    practice: PracticeCode,
    parameters: TsaParameters,
    settings: AnalysisSettings,
    limit: date,
    with_s1: bool,
) -> _ChunkResult:
    """The practice rows of one chunk of parcels (a Dask task when run on a cluster)."""
    from capmon.mdb.query import open_mdb

    chunk_ids = list(dict.fromkeys(int(r["NewID"]) for r in records))
    series = (
        weekly_series(_read_rows(open_mdb(mdb_root), chunk_ids, settings), settings.amplitude)
        if with_s1
        else {}
    )
    result = _ChunkResult([], [], [], {"few_s1_pixels": 0, "few_coherence_values": 0}, 0)
    result.parcels = len(chunk_ids)
    for record in records:
        new_id = int(record["NewID"])
        fields = {str(k): v for k, v in record.items() if k not in (_S1PIX, _ORI_ID)}
        row, estimate, weekly, status = _analyse_parcel(
            fields, new_id, str(record[_ORI_ID]), int(record[_S1PIX]),
            series.get(new_id, empty_weeks()), practice, parameters, settings, limit,
        )  # fmt: skip
        if status:
            result.counts[status] += 1
        result.rows.append(row)
        result.estimates.append(estimate)
        if weekly is not None:
            result.weekly.append(weekly)
    return result


def _analyse_parcel(
    record: dict[str, Any],
    new_id: int,
    ori_id: str,
    s1_pixels: int,
    series: ParcelWeeks,
    practice: PracticeCode,
    parameters: TsaParameters,
    settings: AnalysisSettings,
    limit: date,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None, str | None]:
    veg_start = record["VEG_START"] or settings.season_start
    h_start = record["H_START"] or settings.season_mid or settings.season_start
    h_end = record["H_END"] or settings.season_end
    window = HarvestWindow(veg_start, h_start, h_end)
    status: str | None = None
    if s1_pixels < settings.s1pix_threshold:
        harvest = no_data_result(series.size, NA1)
        status = "few_s1_pixels"
    elif series.size == 0 or series.coherence_count <= settings.min_coherence:
        harvest = no_data_result(series.size, NR)
        status = "few_coherence_values"
    else:
        harvest = harvest_markers(series, window, parameters)
    weeks = series.weeks
    harvest_day = _week_day(weeks, harvest.harvest) if harvest.harvest is not None else None

    p_start: date | None = record["P_START"]
    p_end: date | None = record["P_END"]
    markers: EfaMarkers
    c_index = "NR"
    if practice == "NA" or p_start is None:
        markers = not_relevant()
    elif status is not None:
        markers = all_markers(NA1 if status == "few_s1_pixels" else NR)
    else:
        if practice == "CC" and p_end is None:
            p_start, p_end = catch_crop_window(series, harvest, p_start, parameters)
        assert p_end is not None
        p_type = str(record["P_TYPE"]).strip()
        if weeks[-1] <= np.datetime64(week_start(p_start), "D"):
            markers = all_markers(NR)  # the practice window has not started (Sen4CAP)
        else:
            if practice == "CC":
                main = {parameters.catchmain.strip(), parameters.catchcropismain.strip()} - {""}
                compliance = catch_crop_compliance(
                    series, harvest, harvest_day, veg_start, p_start, p_end, parameters,
                    p_type in main,
                )  # fmt: skip
            elif practice == "NFC":
                compliance = nfc_compliance(
                    series, harvest_day, veg_start, p_start, p_end, settings.country, parameters
                )
            else:
                compliance = fallow_compliance(
                    series, harvest_day, p_start, p_end, p_type, settings.country, parameters
                )
            markers = compliance.markers
            complete = series.last_coherence is not None and p_end <= series.last_coherence
            c_index = compliance.c_index if complete else "NR"
            if not compliance.harvest_relevant:
                harvest_day = None  # LTU black fallow: Sen4CAP resets the harvest week

    shown = harvest.reported_index()
    marker_values = (
        [_text(m[shown]) for m in harvest.markers()]
        if shown is not None
        else [_text(NA1 if status == "few_s1_pixels" else NR)] * 5
    )
    if harvest_day is not None:
        h_week: str = str(iso_week(harvest_day))
        h_w_start, h_w_end = harvest_day.isoformat(), (harvest_day + timedelta(days=6)).isoformat()
    else:
        h_week = h_w_start = h_w_end = NO_HARVEST
    h_w_s1 = (
        _week_day(weeks, harvest.harvest_s1).isoformat()
        if harvest.harvest_s1 is not None
        else NO_HARVEST
    )
    has_window = p_start is not None and p_end is not None and practice != "NA"
    gaps = s1_gaps(
        series.week_dates(), settings.year, limit, (h_start, h_end),
        (p_start, p_end) if has_window and p_start and p_end else None, harvest_day,
    )  # fmt: skip
    before = gaps.before_harvest if harvest_day is not None else None
    hw_gaps = str(before) if before is not None else "NR"
    h_quality = "1" if before is not None and before >= 2 else ""
    c_quality = "1" if gaps.practice >= 2 else ""
    row: dict[str, Any] = {
        "FIELD_ID": new_id,
        "ORIG_ID": ori_id,
        "COUNTRY": settings.country,
        "YEAR": settings.year,
        "MAIN_CROP": record["MAIN_CROP"],
        "VEG_START": _iso(record["VEG_START"]),
        "H_START": _iso(record["H_START"]),
        "H_END": _iso(record["H_END"]),
        "PRACTICE": PRACTICE_NAMES[practice],
        "P_TYPE": record["P_TYPE"],
        "P_START": _iso(p_start),
        "P_END": _iso(p_end),
        "L_WEEK": _week_day(weeks, series.size - 1).isoformat() if series.size else "NR",
        **{f"M{k}": value for k, value in enumerate(marker_values, start=1)},
        "H_WEEK": h_week,
        "H_W_START": h_w_start,
        "H_W_END": h_w_end,
        "H_W_S1": h_w_s1,
        **{f"M{k}": _text(code) for k, code in enumerate(markers.as_tuple(), start=6)},
        "C_INDEX": c_index,
        "S1PIX": s1_pixels,
        "S1GAPS": gaps.season,
        "H_S1GAPS": gaps.harvest,
        "P_S1GAPS": gaps.practice,
        "H_W_S1GAPS": hw_gaps,
        "H_QUALITY": h_quality,
        "C_QUALITY": c_quality,
    }
    if settings.tillage:
        row |= _tillage_columns(series, harvest, parameters, status is None)
    estimate = (
        estimate_harvest(series, harvest, parameters)
        if status is None and harvest_day is not None
        else None
    )
    estimate_row = _estimate_row(new_id, ori_id, h_week, h_w_start, estimate)
    weekly = None
    if series.size:
        estimated_week = np.full(series.size, NR, dtype=np.int8)
        if estimate is not None:
            estimated_week[:] = FALSE
            estimated_week[weeks == np.datetime64(estimate.week_start, "D")] = TRUE
        weekly = {
            "NewID": np.full(series.size, new_id, dtype=np.int64),
            "ORIG_ID": np.full(series.size, ori_id, dtype=object),
            "week_start": series.week_dates(),
            **{f"M{k}": m for k, m in enumerate(harvest.markers(), start=1)},
            "HARVEST_EST": estimated_week,
        }
    return row, estimate_row, weekly, status


def _tillage_columns(
    series: ParcelWeeks, harvest: HarvestResult, parameters: TsaParameters, analysed: bool
) -> dict[str, str]:
    if not analysed:
        return {"TL_WEEK": "NR", "TL_W_START": "NR", "TL_W_END": "NR"}
    found = detect_tillage(series, harvest, parameters)
    if found.week is None:
        return {"TL_WEEK": found.status, "TL_W_START": "NR", "TL_W_END": "NR"}
    day = _week_day(series.weeks, found.week)
    return {
        "TL_WEEK": str(iso_week(day)),
        "TL_W_START": day.isoformat(),
        "TL_W_END": (day + timedelta(days=6)).isoformat(),
    }
