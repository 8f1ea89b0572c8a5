"""The MDB on disk: one Parquet file per (input product, parcel set), written atomically.

Layout of an MDB folder (one per site and parcel-set version, see docs/mdb.md)::

    <mdb>/mdb.json                          what the MDB was extracted for (parcel set, buffers...)
    <mdb>/observations/<product>.parquet    rows of one input product, sorted by parcel and signal
    <mdb>/compacted.json                    which products the compacted files hold (optional)
    <mdb>/compacted/g<N>/bucket-<k>.parquet rows of those products, one file per parcel bucket
    <mdb>/derived/<signal>.parquet          signals derived from stored statistics (add_signal)

A product's file appears complete or not at all (temporary name, then rename), so a crash never
leaves a half-written partition and a rerun skips exactly the products whose file exists.

Compaction (:meth:`MdbStore.compact`) rewrites the products' rows into parcel-sorted files, one
per bucket of ``bucket_parcels`` consecutive parcel ids, so that a one-parcel query opens one
small file instead of one file per acquisition. ``compacted.json`` is the commit point: it is
replaced atomically after the new generation's files are complete, and only then are the
per-product files it covers and the previous generation removed. Readers use the compacted
files listed there plus the per-product files of products it does not list, so every state a
crash can leave shows each row exactly once.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
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
        pa.field("backscatter", pa.string()),
        pa.field("product_id", pa.string(), nullable=False),
        pa.field("count", pa.int32(), nullable=False),
        pa.field("pixels", pa.int32(), nullable=False),
        *(pa.field(name, pa.float32()) for name in STATISTIC_COLUMNS),
    ]
)
MANIFEST = "mdb.json"
OBSERVATIONS = "observations"
DERIVED = "derived"
COMPACTED = "compacted"
COMPACTION_MANIFEST = "compacted.json"
BUCKET_PARCELS = 2048
ROW_GROUP_ROWS = 32_768
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_DICTIONARY_COLUMNS = ("signal", "sensor", "orbit_direction", "tile", "backscatter", "product_id")


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
    backscatter: str | None = None
    """``sigma0`` or ``gamma0`` for Sentinel-1 backscatter rows (what their dB values are the
    logarithm of), None for optical and coherence rows."""


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
        "backscatter": repeated(acquisition.backscatter, pa.string()),
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


def parquet_files(folder: Path) -> list[Path]:
    """The complete Parquet files of ``folder``, sorted: temporary files of interrupted writes
    (``.<name>.<uuid>.tmp.parquet``, see :func:`capmon.workspace.atomic_path`) are not rows."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))


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
        """True when the product's rows are stored (its own file, or the compacted files)."""
        stem = product_file_name(product_id).removesuffix(".parquet")
        return self.product_path(product_id).exists() or stem in read_compaction(self.root).products

    def products(self) -> list[str]:
        """The stems of the stored products' files, compacted ones included."""
        own = {p.stem for p in parquet_files(self.observations)}
        return sorted(own | set(read_compaction(self.root).products))

    def compact(self, bucket_parcels: int = BUCKET_PARCELS) -> Compaction:
        """Rewrite every product's rows into parcel-bucketed, parcel-sorted files.

        Products added later go to their own files again until the next compaction, which
        merges them in. See the module docstring for why every intermediate state is safe.
        """
        import duckdb

        if bucket_parcels < 1:
            raise InputError(f"bucket_parcels must be >= 1, not {bucket_parcels}")
        previous = read_compaction(self.root)
        pending = [p for p in parquet_files(self.observations) if p.stem not in previous.products]
        if not pending and previous.bucket_parcels == bucket_parcels:
            return previous
        sources = [self.root / f for f in previous.files] + pending
        generation = previous.generation + 1
        folder = self.root / COMPACTED / f"g{generation}"
        shutil.rmtree(folder, ignore_errors=True)  # a crashed earlier attempt at this generation
        folder.mkdir(parents=True)
        connection = duckdb.connect()
        files: list[str] = []
        try:
            if sources:
                scan = f"read_parquet({[str(s) for s in sources]!r}, union_by_name = true)"
                bounds = connection.sql(
                    f"SELECT min(parcel_id), max(parcel_id) FROM {scan}"
                ).fetchall()
                low, high = bounds[0] if bounds else (None, None)
                if low is not None and high is not None:
                    for bucket in range(
                        int(low) // bucket_parcels, int(high) // bucket_parcels + 1
                    ):
                        start, stop = bucket * bucket_parcels, (bucket + 1) * bucket_parcels
                        table = connection.sql(
                            f"SELECT * FROM {scan} WHERE parcel_id >= ? AND parcel_id < ? "
                            "ORDER BY parcel_id, signal, date, sensor, orbit, tile",
                            params=[start, stop],
                        ).to_arrow_table()
                        if table is None or table.num_rows == 0:
                            continue
                        name = f"bucket-{bucket:07d}.parquet"
                        write_mdb_table(conform(table), folder / name)
                        files.append(f"{COMPACTED}/g{generation}/{name}")
        finally:
            connection.close()
        compaction = Compaction(
            generation=generation,
            bucket_parcels=bucket_parcels,
            files=tuple(files),
            products=tuple(sorted(set(previous.products) | {p.stem for p in pending})),
        )
        with atomic_path(self.root / COMPACTION_MANIFEST) as tmp:
            tmp.write_text(json.dumps(compaction.to_json(), indent=1))
        for path in pending:
            path.unlink(missing_ok=True)
        for old in (self.root / COMPACTED).iterdir():
            if old.name != f"g{generation}":
                shutil.rmtree(old, ignore_errors=True)
        return compaction

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


@dataclass(frozen=True)
class Compaction:
    """What ``compacted.json`` says: the compacted files and the products they hold."""

    generation: int = 0
    bucket_parcels: int = BUCKET_PARCELS
    files: tuple[str, ...] = ()
    products: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "bucket_parcels": self.bucket_parcels,
            "files": list(self.files),
            "products": list(self.products),
        }

    def bucket_files(self, root: Path, parcel_ids: Iterable[int]) -> list[Path]:
        """The compacted files that can hold rows of ``parcel_ids``."""
        wanted = {f"bucket-{int(i) // self.bucket_parcels:07d}.parquet" for i in parcel_ids}
        return [root / f for f in self.files if Path(f).name in wanted]


def read_compaction(root: Path) -> Compaction:
    """The compaction manifest of an MDB folder (empty when it was never compacted)."""
    path = root / COMPACTION_MANIFEST
    if not path.exists():
        return Compaction()
    try:
        payload = json.loads(path.read_text())
        return Compaction(
            generation=int(payload["generation"]),
            bucket_parcels=int(payload["bucket_parcels"]),
            files=tuple(payload["files"]),
            products=tuple(payload["products"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a valid compaction manifest: {exc}") from exc


def conform(table: pa.Table) -> pa.Table:
    """``table`` with the columns of :data:`MDB_SCHEMA`, in order; columns that files written
    before a column existed lack (``backscatter``) are null."""
    columns = [
        table.column(field.name).cast(field.type)
        if field.name in table.column_names
        else pa.nulls(table.num_rows, field.type)
        for field in MDB_SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=MDB_SCHEMA)


def write_mdb_table(table: pa.Table, path: Path) -> None:
    """Parquet with the MDB's encodings: dictionary strings, byte-stream-split floats, zstd."""
    pq.write_table(
        table,
        path,
        compression="zstd",
        compression_level=6,
        row_group_size=ROW_GROUP_ROWS,
        use_dictionary=list(_DICTIONARY_COLUMNS),
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
