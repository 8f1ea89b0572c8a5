"""The MDB on disk: one Parquet file per (input product, parcel set), written atomically.

Layout of an MDB folder (one per site and parcel-set version, see docs/mdb.md)::

    <mdb>/mdb.json                          what the MDB was extracted for (parcel set, buffers...)
    <mdb>/observations/<product>.parquet    rows of one input product, sorted by parcel and signal
    <mdb>/derived/<signal>.parquet          signals derived from stored statistics (add_signal)

A product's file appears complete or not at all (temporary name, then rename), so a crash never
leaves a half-written partition and a rerun skips exactly the products whose file exists.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from capmon.errors import InputError, StorageError
from capmon.mdb.stats import ParcelStatistics
from capmon.workspace import atomic_path

STATISTIC_COLUMNS = ("mean", "stdev", "min", "max", "median", "p25", "p75")
MDB_SCHEMA = pa.schema(
    [
        pa.field("parcel_id", pa.int64(), nullable=False),
        pa.field("signal", pa.string(), nullable=False),
        pa.field("sensor", pa.string(), nullable=False),
        pa.field("date", pa.date32(), nullable=False),
        pa.field("date_first", pa.date32()),
        pa.field("orbit", pa.int16()),
        pa.field("orbit_direction", pa.string()),
        pa.field("tile", pa.string()),
        pa.field("product_id", pa.string(), nullable=False),
        pa.field("count", pa.int32(), nullable=False),
        pa.field("pixels", pa.int32(), nullable=False),
        *(pa.field(name, pa.float32()) for name in STATISTIC_COLUMNS),
    ]
)
MANIFEST = "mdb.json"
OBSERVATIONS = "observations"
DERIVED = "derived"
ROW_GROUP_ROWS = 32_768
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Acquisition:
    """What the rows of one input product share: the product and its acquisition."""

    product_id: str
    sensor: str
    date: dt.date
    tile: str | None = None
    date_first: dt.date | None = None
    orbit: int | None = None
    orbit_direction: str | None = None


@dataclass(frozen=True)
class MdbManifest:
    """What an MDB folder was extracted for; rows of different parcel sets never mix."""

    site: str
    parcel_set: str
    declaration_set_id: int | None
    optical_buffer_m: float
    sar_buffer_m: float
    min_count: int
    min_valid_fraction: float
    engine_version: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def statistics_table(
    acquisition: Acquisition,
    signal: str,
    statistics: ParcelStatistics,
    keep: np.ndarray | None = None,
) -> pa.Table:
    """The MDB rows of one signal of one acquisition (only parcels where ``keep`` is true)."""
    rows = np.ones(len(statistics.parcel_ids), dtype=bool) if keep is None else keep
    n = int(rows.sum())

    def repeated(value: object, kind: pa.DataType) -> pa.Array:
        return pa.array([value] * n, type=kind)

    columns: dict[str, pa.Array] = {
        "parcel_id": pa.array(statistics.parcel_ids[rows], type=pa.int64()),
        "signal": repeated(signal, pa.string()),
        "sensor": repeated(acquisition.sensor, pa.string()),
        "date": repeated(acquisition.date, pa.date32()),
        "date_first": repeated(acquisition.date_first, pa.date32()),
        "orbit": repeated(acquisition.orbit, pa.int16()),
        "orbit_direction": repeated(acquisition.orbit_direction, pa.string()),
        "tile": repeated(acquisition.tile, pa.string()),
        "product_id": repeated(acquisition.product_id, pa.string()),
        "count": pa.array(statistics.count[rows], type=pa.int32()),
        "pixels": pa.array(statistics.pixels[rows], type=pa.int32()),
    }
    for name in STATISTIC_COLUMNS:
        values = getattr(statistics, name)[rows].astype(np.float32)
        columns[name] = pa.array(values, type=pa.float32(), from_pandas=True)
    return pa.Table.from_pydict(columns, schema=MDB_SCHEMA)


def product_file_name(product_id: str) -> str:
    """The file name of a product's rows (the product name, made safe for file systems)."""
    return _SAFE_NAME.sub("_", product_id) + ".parquet"


class MdbStore:
    """Writes and lists the per-product files of one MDB folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def observations(self) -> Path:
        return self.root / OBSERVATIONS

    def initialise(self, manifest: MdbManifest) -> None:
        """Create the folder, or check that an existing one was made for the same parcel set."""
        path = self.root / MANIFEST
        if path.exists():
            stored = read_manifest(self.root)
            if stored != manifest:
                raise InputError(
                    f"{self.root} holds an MDB extracted with other settings "
                    f"({_differences(stored, manifest)}); use another folder"
                )
            return
        self.observations.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True))

    def product_path(self, product_id: str) -> Path:
        return self.observations / product_file_name(product_id)

    def has_product(self, product_id: str) -> bool:
        """True when the product's rows are stored (its file is complete by construction)."""
        return self.product_path(product_id).exists()

    def products(self) -> list[str]:
        """The stems of the stored product files."""
        if not self.observations.exists():
            return []
        return sorted(p.stem for p in self.observations.glob("*.parquet"))

    def write_product(self, product_id: str, tables: Iterable[pa.Table]) -> Path:
        """Store the rows of one product atomically (sorted by parcel, signal, date)."""
        parts = [t for t in tables if t.num_rows]
        table = pa.concat_tables(parts) if parts else MDB_SCHEMA.empty_table()
        table = table.sort_by(
            [("parcel_id", "ascending"), ("signal", "ascending"), ("date", "ascending")]
        )
        path = self.product_path(product_id)
        try:
            with atomic_path(path) as tmp:
                write_mdb_table(table, tmp)
        except OSError as exc:
            raise StorageError(
                f"cannot write the MDB rows of {product_id} to {path}: {exc}"
            ) from exc
        return path


def write_mdb_table(table: pa.Table, path: Path) -> None:
    """Parquet with the MDB's encodings: dictionary strings, byte-stream-split floats, zstd."""
    pq.write_table(
        table,
        path,
        compression="zstd",
        compression_level=6,
        row_group_size=ROW_GROUP_ROWS,
        use_dictionary=["signal", "sensor", "orbit_direction", "tile", "product_id"],
        use_byte_stream_split=list(STATISTIC_COLUMNS),
        write_statistics=True,
    )


def read_manifest(root: Path) -> MdbManifest:
    path = root / MANIFEST
    try:
        payload: Mapping[str, Any] = json.loads(path.read_text())
        return MdbManifest(**payload)
    except FileNotFoundError as exc:
        raise InputError(f"{root} is not an MDB folder (no {MANIFEST})") from exc
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path} is not a valid MDB manifest: {exc}") from exc


def _differences(stored: MdbManifest, wanted: MdbManifest) -> str:
    a, b = stored.to_json(), wanted.to_json()
    return ", ".join(f"{k}: {a[k]!r} != {b[k]!r}" for k in a if a[k] != b[k])
