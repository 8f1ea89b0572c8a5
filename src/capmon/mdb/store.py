"""The MDB on disk: one Parquet file per (input product, parcel set), written atomically.

Layout of an MDB folder (one per site and parcel-set version, see docs/mdb.md)::

    <mdb>/mdb.json                          what the MDB was extracted for (parcel set, buffers...)
    <mdb>/observations/<product>.parquet    rows of one input product, sorted by parcel and signal
    <mdb>/compacted.json                    which products the compacted files hold (optional)
    <mdb>/compacted/g<N>/bucket-<k>.parquet rows of those products, one file per parcel bucket
    <mdb>/derived/<signal>.parquet          signals derived from stored statistics (add_signal)

A product's file appears complete or not at all (temporary name, then rename), so a crash never
leaves a half-written partition. Each file is a *part* of a product and says, in its Parquet
metadata (:class:`ProductPart`), which signals were extracted into it, which signals the product
cannot give, whether its optical values were masked, and which stored copies of the same
acquisition it replaces: a product is "in the MDB" only for the signals its parts hold, and a
rerun that asks for more signals adds a part with just those (``<product>~<hash>.parquet``).

One row per parcel, signal and acquisition: readers never show the rows of a product that a
visible part replaces (a better copy of the same acquisition, written later), and when two rows
share a parcel, signal, sensor, date, first date and orbit (a parcel in the overlap of two tiles
or two slices of one pass), the one of the parcel's preferred tile (``tile_rank``: 0 = home
tile) is shown, then the one with the most pixels. Compaction applies both rules for good.

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
import hashlib
import json
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
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
        pa.field("tile_rank", pa.int16()),
    ]
)
"""``tile_rank``: the tile's place in the parcel's order of preference among the site's tiles
(0 = its home tile: the first, in name order, that contains it whole, else its centroid, else
that meets it); null for products without a tile and rows written before the column existed."""
ROW_KEY = ("parcel_id", "signal", "sensor", "date", "date_first", "orbit")
"""What makes two rows the same observation (the rows of one acquisition on two tiles)."""
PART_METADATA = b"capmon.part"
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

    mask: Mapping[str, Any] | None = None
    """The validity masks of the optical products (MaskConfig as JSON); None: not recorded."""
    optical_resolution: float | None = None
    s1_tile_grids: bool | None = None
    signals: tuple[str, ...] = ()
    """Every signal asked for so far (a rerun that asks for more adds them)."""

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["signals"] = list(self.signals)
        return payload

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> MdbManifest:
        values = dict(payload)
        values["signals"] = tuple(values.get("signals") or ())
        return cls(**values)

    def conflicts(self, wanted: MdbManifest) -> list[str]:
        """The settings of ``wanted`` that differ from this MDB's (signals may be added; a
        setting this MDB did not record is not a conflict)."""
        a, b = self.to_json(), wanted.to_json()
        return [
            f"{key}: stored {a[key]!r}, asked {b[key]!r}"
            for key in a
            if key != "signals" and a[key] is not None and b[key] is not None and a[key] != b[key]
        ]

    def merged(self, wanted: MdbManifest) -> MdbManifest:
        """This manifest with the settings it did not record and the new signals of ``wanted``."""
        a, b = self.to_json(), wanted.to_json()
        values = {key: a[key] if a[key] is not None else b[key] for key in a}
        added = [name for name in wanted.signals if name not in self.signals]
        values["signals"] = [*self.signals, *added]
        return MdbManifest.from_json(values)


@dataclass(frozen=True)
class ProductPart:
    """What one stored file of a product holds (its Parquet metadata, see the module doc)."""

    product_id: str
    signals: tuple[str, ...]
    """The signals extracted into this file (a parcel without a valid pixel has no row)."""
    unavailable: tuple[tuple[str, str], ...] = ()
    """Signals asked for that the product cannot give, with the reason (a missing band)."""
    masked: bool = True
    """False when optical values were extracted without a validity mask (``allow_unmasked``)."""
    replaces: tuple[str, ...] = ()
    """Stored copies of the same acquisition whose rows this part's product supersedes."""

    def to_json(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "signals": list(self.signals),
            "unavailable": dict(self.unavailable),
            "masked": self.masked,
            "replaces": list(self.replaces),
        }

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> ProductPart:
        return cls(
            product_id=str(payload["product_id"]),
            signals=tuple(payload.get("signals", ())),
            unavailable=tuple(sorted(dict(payload.get("unavailable", {})).items())),
            masked=bool(payload.get("masked", True)),
            replaces=tuple(payload.get("replaces", ())),
        )

    @property
    def covered(self) -> frozenset[str]:
        """The signals a rerun need not extract again from this product."""
        return frozenset(self.signals) | {name for name, _reason in self.unavailable}


@dataclass(frozen=True)
class Coverage:
    """What the MDB holds of one product, over all its parts."""

    signals: frozenset[str]
    unavailable: Mapping[str, str]
    masked: bool

    @property
    def covered(self) -> frozenset[str]:
        return self.signals | frozenset(self.unavailable)

    def holds(self, signals: Iterable[str]) -> bool:
        """Whether every one of ``signals`` was extracted or found unavailable (``*``: a part
        compacted before part records existed, taken to hold every signal)."""
        return "*" in self.signals or set(signals) <= self.covered


def missing_signals(held: Coverage | None, wanted: Iterable[str]) -> frozenset[str]:
    """The signals of ``wanted`` that a product's stored parts (``held``; None: none) lack."""
    return frozenset(s for s in wanted if held is None or not held.holds([s]))


def statistics_table(
    acquisition: Acquisition,
    signal: str,
    statistics: ParcelStatistics,
    keep: np.ndarray | None = None,
    tile_rank: np.ndarray | None = None,
) -> pa.Table:
    """The MDB rows of one signal of one acquisition (only parcels where ``keep`` is true);
    ``tile_rank`` per parcel of ``statistics`` (see :data:`MDB_SCHEMA`), None: null."""
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
    columns["tile_rank"] = (
        repeated(None, pa.int16())
        if tile_rank is None
        else pa.array(np.asarray(tile_rank)[rows], type=pa.int16())
    )
    return pa.Table.from_pydict(columns, schema=MDB_SCHEMA)


def product_file_name(product_id: str) -> str:
    """The file name of a product's rows (the product name, made safe for file systems)."""
    return _SAFE_NAME.sub("_", product_id) + ".parquet"


def part_file_name(product_id: str, signals: Iterable[str]) -> str:
    """The file name of a later part of a product (signals added by a rerun)."""
    digest = hashlib.sha256(",".join(sorted(signals)).encode()).hexdigest()[:10]
    return product_file_name(product_id).removesuffix(".parquet") + f"~{digest}.parquet"


def read_part(path: Path) -> ProductPart:
    """The part record of a product file; files written before parts existed hold every
    signal they have rows of."""
    metadata = pq.read_schema(path).metadata or {}
    if PART_METADATA in metadata:
        try:
            return ProductPart.from_json(json.loads(metadata[PART_METADATA]))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path} has an invalid part record: {exc}") from exc
    signals = pq.read_table(path, columns=["signal"]).column("signal").unique().to_pylist()
    return ProductPart(product_id=path.stem, signals=tuple(sorted(str(s) for s in signals)))


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

    def initialise(self, manifest: MdbManifest, *, rebuild: str | None = None) -> MdbManifest:
        """Create the folder, or check that an existing one was made for the same parcel set
        and settings (new signals are added to it); returns the manifest now in force.

        ``rebuild`` is the command that rebuilds the MDB, named when the settings conflict.
        """
        path = self.root / MANIFEST
        if path.exists():
            stored = read_manifest(self.root)
            conflicts = stored.conflicts(manifest)
            if conflicts:
                how = f"; rebuild it with `{rebuild}`" if rebuild else "; use another folder"
                raise InputError(
                    f"{self.root} holds an MDB extracted with other settings "
                    f"({'; '.join(conflicts)}){how}"
                )
            merged = stored.merged(manifest)
            if merged == stored:
                return stored
            manifest = merged
        self.observations.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True))
        return manifest

    def parts(self, product_id: str | None = None) -> dict[str, ProductPart]:
        """Every stored part by file stem (of ``product_id`` only, if given): compacted ones
        (from ``compacted.json``), then the per-product files not compacted yet."""
        compaction = read_compaction(self.root)
        compacted = set(compaction.products)
        stem = None if product_id is None else product_file_name(product_id)[: -len(".parquet")]

        def wanted(name: str) -> bool:
            return stem is None or name == stem or name.startswith(f"{stem}~")

        parts = {name: part for name, part in compaction.parts.items() if wanted(name)}
        for path in parquet_files(self.observations):
            if path.stem not in compacted and wanted(path.stem):
                parts[path.stem] = read_part(path)
        return parts

    def coverage(self, product_id: str | None = None) -> dict[str, Coverage]:
        """What the MDB holds of each stored product (of ``product_id`` only, if given:
        reads its own files, not every product's); products replaced by a better copy are
        left out (a part of the better copy replaces them)."""
        parts = list(self.parts(product_id).values())
        retired = retired_products(parts) | set(read_compaction(self.root).retired)
        signals: dict[str, set[str]] = {}
        unavailable: dict[str, dict[str, str]] = {}
        masked: dict[str, bool] = {}
        for part in parts:
            if part.product_id in retired:
                continue
            signals.setdefault(part.product_id, set()).update(part.signals)
            unavailable.setdefault(part.product_id, {}).update(dict(part.unavailable))
            masked[part.product_id] = masked.get(part.product_id, True) and part.masked
        return {
            product: Coverage(
                frozenset(signals[product]),
                {k: v for k, v in unavailable[product].items() if k not in signals[product]},
                masked[product],
            )
            for product in signals
        }

    def retired(self) -> set[str]:
        """The products whose rows a better copy replaces."""
        return retired_products(self.parts().values()) | set(read_compaction(self.root).retired)

    def product_path(self, product_id: str) -> Path:
        return self.observations / product_file_name(product_id)

    def has_product(self, product_id: str, signals: Iterable[str] | None = None) -> bool:
        """True when the product's rows are stored (for every one of ``signals``, if given)."""
        if signals is None:
            stem = product_file_name(product_id).removesuffix(".parquet")
            compacted = read_compaction(self.root).products
            if self.product_path(product_id).exists() or stem in compacted:
                return True
        coverage = self.coverage(product_id).get(product_id)
        if coverage is None:
            return False
        return signals is None or coverage.holds(signals)

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
        pending_parts = {p.stem: read_part(p) for p in pending}
        retired = set(previous.retired) | retired_products(
            [*previous.parts.values(), *pending_parts.values()]
        )
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
                            visible_rows_sql(
                                f"(SELECT * FROM {scan} WHERE parcel_id >= ? AND parcel_id < ?)",
                                retired,
                                deduplicate=True,
                            )
                            + " ORDER BY parcel_id, signal, date, sensor, orbit, tile",
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
            parts={
                stem: part
                for stem, part in {**previous.parts, **pending_parts}.items()
                if part.product_id not in retired
            },
            retired=tuple(sorted(retired)),
        )
        with atomic_path(self.root / COMPACTION_MANIFEST) as tmp:
            tmp.write_text(json.dumps(compaction.to_json(), indent=1))
        for path in pending:
            path.unlink(missing_ok=True)
        for old in (self.root / COMPACTED).iterdir():
            if old.name != f"g{generation}":
                shutil.rmtree(old, ignore_errors=True)
        return compaction

    def write_product(
        self, product_id: str, tables: Iterable[pa.Table], part: ProductPart | None = None
    ) -> Path:
        """Store rows of one product atomically (sorted by parcel, signal, date), as a new part
        when the product already has one; ``part`` says what they hold (default: the signals
        of the rows, masked, replacing nothing)."""
        pieces = [conform(t) for t in tables if t.num_rows]
        table = pa.concat_tables(pieces) if pieces else MDB_SCHEMA.empty_table()
        table = table.sort_by(
            [("parcel_id", "ascending"), ("signal", "ascending"), ("date", "ascending")]
        )
        if part is None:
            signals = table.column("signal").unique().to_pylist()
            part = ProductPart(product_id, tuple(sorted(str(s) for s in signals)))
        table = table.replace_schema_metadata({PART_METADATA: json.dumps(part.to_json())})
        path = self.product_path(product_id)
        if path.exists() or path.stem in read_compaction(self.root).products:
            path = self.observations / part_file_name(product_id, part.signals)
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
    """The stems of the product files merged into the compacted files."""
    parts: Mapping[str, ProductPart] = field(default_factory=dict)
    """Their part records (products replaced by a better copy left out)."""
    retired: tuple[str, ...] = ()
    """Products whose rows were dropped because a better copy replaced them."""

    def to_json(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "bucket_parcels": self.bucket_parcels,
            "files": list(self.files),
            "products": list(self.products),
            "parts": {stem: part.to_json() for stem, part in sorted(self.parts.items())},
            "retired": list(self.retired),
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
        products = tuple(payload["products"])
        parts = {
            stem: ProductPart.from_json(part) for stem, part in payload.get("parts", {}).items()
        }
        for stem in products:  # compacted before part records existed: every signal
            parts.setdefault(stem, ProductPart(stem, ("*",)))
        return Compaction(
            generation=int(payload["generation"]),
            bucket_parcels=int(payload["bucket_parcels"]),
            files=tuple(payload["files"]),
            products=products,
            parts=parts,
            retired=tuple(payload.get("retired", ())),
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


def retired_products(parts: Iterable[ProductPart]) -> set[str]:
    """The products that a part of another product replaces."""
    return {old for part in parts for old in part.replaces if old != part.product_id}


def visible_rows_sql(source: str, retired: Iterable[str], *, deduplicate: bool) -> str:
    """SQL of the rows of ``source`` (a table expression) that readers see: none of a
    ``retired`` product, and with ``deduplicate`` one row per :data:`ROW_KEY` (the parcel's
    preferred tile, then the most pixels, then the product name)."""
    names = sorted(set(retired))
    where = (
        "WHERE product_id NOT IN (" + ", ".join(_sql_text(n) for n in names) + ")" if names else ""
    )
    if not deduplicate:
        return f"SELECT * FROM {source} {where}"
    keys = ", ".join(f'"{k}"' for k in ROW_KEY)
    return (
        f"SELECT * FROM {source} {where} QUALIFY row_number() OVER (PARTITION BY {keys} "
        'ORDER BY coalesce(tile_rank, 0), "pixels" DESC, product_id, tile) = 1'
    )


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def read_manifest(root: Path) -> MdbManifest:
    path = root / MANIFEST
    try:
        payload: Mapping[str, Any] = json.loads(path.read_text())
        return MdbManifest.from_json(payload)
    except FileNotFoundError as exc:
        raise InputError(f"{root} is not an MDB folder (no {MANIFEST})") from exc
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path} is not a valid MDB manifest: {exc}") from exc
