"""MDB exports: Sen4CAP's wide layout (Arrow IPC + CSV, MDB1 and MDB2 columns) and long tables.

Sen4CAP's column names (sen4cap-system.md 3.2) are
``<YYYYMMDD>_<stat>_<fileType>[_<pol>][_<orbit>][_<band>]``: ``20190507_mean_NDVI``,
``20190507_stdev_AMP_VH_124``, ``20190509_mean_COHE_VV_124``, ``20190507_mean_L2A_B8A``.
MDB2 adds ``..._AMP_VVVH_<orbit>`` = VV dB - VH dB for every mean and stdev column pair.
Rows are parcels (``NewID``, int32); values are float32. The ``.idx`` sidecar holds big-endian
int32 triplets (record batch, first NewID, last NewID) for random access, as Sen4CAP's.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc

from capmon.errors import InputError
from capmon.mdb.query import MarkersDatabase
from capmon.mdb.store import STATISTIC_COLUMNS
from capmon.workspace import atomic_path

SEN4CAP_FILE_TYPES = {"NDVI", "LAI", "FAPAR", "FCOVER", "NDWI", "BRIGHTNESS"}
_BAND = re.compile(r"^B(0?)(\d{1,2}|8A)$")
_S1 = re.compile(r"^(AMP|COHE)_(VV|VH)$")
IPC_BATCH_ROWS = 10_000


@dataclass(frozen=True)
class Sen4capExport:
    """Files written by :func:`export_sen4cap`."""

    ipc: Path
    index: Path
    csv: Path
    columns: int
    parcels: int


def sen4cap_column(signal: str, statistic: str, day: str, orbit: int | None) -> str | None:
    """Sen4CAP's name of a column, or None for signals Sen4CAP has no name for."""
    s1 = _S1.match(signal)
    if s1:
        if orbit is None:
            raise InputError(f"S1 signal {signal} on {day} has no relative orbit")
        return f"{day}_{statistic}_{s1.group(1)}_{s1.group(2)}_{orbit:03d}"
    band = _BAND.match(signal)
    if band:
        return f"{day}_{statistic}_L2A_B{band.group(2)}"
    if signal in SEN4CAP_FILE_TYPES:
        return f"{day}_{statistic}_{signal}"
    return None


def wide_table(
    mdb: MarkersDatabase,
    *,
    statistics: Sequence[str] = ("mean", "stdev"),
    signals: Sequence[str] | None = None,
    mdb2: bool = True,
) -> pa.Table:
    """One row per parcel, one column per (date, statistic, signal[, pol, orbit])."""
    unknown = [s for s in statistics if s not in STATISTIC_COLUMNS]
    if unknown:
        raise InputError(f"unknown statistics {unknown}; known: {list(STATISTIC_COLUMNS)}")
    rows = mdb.timeseries(signals=signals)
    if rows.empty:
        raise InputError(f"the MDB at {mdb.root} has no rows to export")
    rows["day"] = pd.to_datetime(rows["date"]).dt.strftime("%Y%m%d")
    orbits = rows["orbit"].astype("Int64")
    pieces: dict[str, pd.Series] = {}
    for statistic in statistics:
        names = [
            sen4cap_column(signal, statistic, day, None if pd.isna(orbit) else int(orbit))
            for signal, day, orbit in zip(rows["signal"], rows["day"], orbits, strict=True)
        ]
        frame = pd.DataFrame(
            {"NewID": rows["parcel_id"], "column": names, "value": rows[statistic]}
        ).dropna(subset=["column"])
        duplicated = frame.duplicated(["NewID", "column"])
        if duplicated.any():
            example = frame[duplicated].iloc[0]
            raise InputError(
                f"parcel {example['NewID']} has two values for {example['column']} "
                "(the same acquisition from two products); deduplicate the products first"
            )
        wide = frame.pivot(index="NewID", columns="column", values="value")
        for column in wide.columns:
            pieces[str(column)] = wide[column]
    if mdb2:  # added to ``pieces`` (one frame built at once: inserting columns fragments it)
        for column in list(pieces):
            if "_AMP_VV_" in column:
                vh = column.replace("_AMP_VV_", "_AMP_VH_")
                if vh in pieces:
                    pieces[column.replace("_AMP_VV_", "_AMP_VVVH_")] = pieces[column] - pieces[vh]
    table = pd.DataFrame(pieces)
    ordered = sorted(table.columns, key=_column_order)
    table = table[ordered].sort_index()
    arrays = [pa.array(table.index.to_numpy().astype(np.int32), type=pa.int32())]
    arrays += [
        pa.array(table[c].to_numpy(dtype=np.float32), type=pa.float32(), from_pandas=True)
        for c in ordered
    ]
    return pa.Table.from_arrays(arrays, names=["NewID", *ordered])


def _column_order(column: str) -> tuple[str, str]:
    day, _, rest = column.partition("_")
    return (day, rest)


def export_sen4cap(
    mdb: MarkersDatabase,
    out_dir: Path,
    stem: str,
    *,
    statistics: Sequence[str] = ("mean", "stdev"),
    signals: Sequence[str] | None = None,
    mdb2: bool = True,
) -> Sen4capExport:
    """Write ``<stem>.ipc`` (+ ``.idx``) and ``<stem>.csv`` in Sen4CAP's wide layout."""
    table = wide_table(mdb, statistics=statistics, signals=signals, mdb2=mdb2)
    out_dir.mkdir(parents=True, exist_ok=True)
    ipc_path, idx_path, csv_path = (out_dir / f"{stem}{ext}" for ext in (".ipc", ".idx", ".csv"))
    batches = table.to_batches(max_chunksize=IPC_BATCH_ROWS)
    with (
        atomic_path(ipc_path) as tmp,
        pa.OSFile(str(tmp), "wb") as sink,
        ipc.new_file(sink, table.schema) as writer,
    ):
        for batch in batches:
            writer.write_batch(batch)
    index = b"".join(
        struct.pack(">iii", i, int(b.column(0)[0].as_py()), int(b.column(0)[-1].as_py()))
        for i, b in enumerate(batches)
        if b.num_rows
    )
    with atomic_path(idx_path) as tmp:
        tmp.write_bytes(index)
    with atomic_path(csv_path) as tmp:
        pacsv.write_csv(table, tmp)
    return Sen4capExport(ipc_path, idx_path, csv_path, table.num_columns - 1, table.num_rows)


def export_long(mdb: MarkersDatabase, path: Path, file_format: str) -> int:
    """All rows in the MDB's long layout as CSV or Parquet; returns the row count."""
    relation = mdb.duckdb()
    table = relation.order("parcel_id, signal, date").to_arrow_table()
    if table is None:
        raise InputError(f"the MDB at {mdb.root} cannot be read")
    with atomic_path(path) as tmp:
        if file_format == "csv":
            pacsv.write_csv(table, tmp)
        elif file_format == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, tmp, compression="zstd")
        else:
            raise InputError(f"unknown export format {file_format!r}: use sen4cap, csv or parquet")
    return int(table.num_rows)
