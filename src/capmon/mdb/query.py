"""Reading an MDB: ``capmon.open_mdb(path)`` and the :class:`MarkersDatabase` it returns."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from capmon.errors import ConflictError, InputError
from capmon.mdb.store import (
    DERIVED,
    MANIFEST,
    MDB_SCHEMA,
    OBSERVATIONS,
    MdbManifest,
    ProductPart,
    parquet_files,
    read_compaction,
    read_manifest,
    read_part,
    retired_products,
    visible_rows_sql,
    write_mdb_table,
)
from capmon.workspace import atomic_path

_SIGNAL_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_STAT_REFERENCE = re.compile(r"\b([A-Z][A-Z0-9_]*?)_(mean|stdev|min|max|median|p25|p75|count)\b")
_METADATA_CACHE_IS_SAFE = int(duckdb.__version__.split(".")[0]) >= 2
_KEY = ("parcel_id", "sensor", "date", "date_first", "orbit", "orbit_direction", "tile")


def open_mdb(path: str | Path) -> MarkersDatabase:
    """Open the MDB folder at ``path`` (as written by ``capmon mdb extract``)."""
    root = Path(path)
    if not (root / MANIFEST).exists():
        raise InputError(f"{root} is not an MDB folder (no {MANIFEST})")
    return MarkersDatabase(root)


class MarkersDatabase:
    """Per parcel, per acquisition, per signal statistics, queried with DuckDB."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest: MdbManifest = read_manifest(root)
        self._connection = duckdb.connect()
        if _METADATA_CACHE_IS_SAFE:
            # Parse each file's footer once, not at every query; DuckDB 2 revalidates the cached
            # footer when a file is replaced (add_signal(replace=True) rewrites a file).
            self._connection.execute("SET parquet_metadata_cache = true")
        self._schemas: dict[str, tuple[tuple[int, int, int], pa.Schema]] = {}
        self._parts: dict[str, tuple[tuple[int, int, int], ProductPart]] = {}

    def _files(self, parcel_ids: Sequence[int] | None = None) -> list[str]:
        """The files holding the MDB's rows (for ``parcel_ids`` only: just their buckets).

        Compacted files listed in ``compacted.json`` come first, then the per-product files of
        products that manifest does not list, then the derived signals.
        """
        return self._sources(parcel_ids)[0]

    def _sources(self, parcel_ids: Sequence[int] | None = None) -> tuple[list[str], set[str], bool]:
        """The files to read, the retired products and whether rows of several files may be
        the same observation (see :mod:`capmon.mdb.store`)."""
        compaction = read_compaction(self.root)
        if parcel_ids is None:
            files = [self.root / f for f in compaction.files]
        else:
            files = compaction.bucket_files(self.root, parcel_ids)
        done = set(compaction.products)
        pending = [f for f in parquet_files(self.root / OBSERVATIONS) if f.stem not in done]
        parts = [self._part(f) for f in pending]
        retired = set(compaction.retired) | retired_products([*compaction.parts.values(), *parts])
        deduplicate = bool(pending) and (bool(compaction.files) or len(pending) > 1)
        files += pending
        files += parquet_files(self.root / DERIVED)
        return [str(f) for f in files], retired, deduplicate

    def _part(self, path: Path) -> ProductPart:
        """The part record of a product file (cached per file version)."""
        status = os.stat(path)
        version = (status.st_ino, status.st_size, status.st_mtime_ns)
        cached = self._parts.get(str(path))
        if cached is None or cached[0] != version:
            cached = (version, read_part(path))
            self._parts[str(path)] = cached
        return cached[1]

    def duckdb(
        self, connection: duckdb.DuckDBPyConnection | None = None
    ) -> duckdb.DuckDBPyRelation:
        """All rows as a DuckDB relation (columns as in ``MDB_SCHEMA``; one row per parcel,
        signal and acquisition)."""
        con = connection or self._connection
        files, retired, deduplicate = self._sources()
        if not files:
            return con.from_arrow(MDB_SCHEMA.empty_table())
        relation = con.read_parquet(files, union_by_name=True)
        if not retired and not deduplicate:
            return relation
        return con.sql(
            visible_rows_sql(
                "read_parquet($files, union_by_name = true)", retired, deduplicate=deduplicate
            ),
            params={"files": files},
        )

    def signals(self) -> list[str]:
        """The signals stored, derived ones included."""
        rows = self.duckdb().aggregate("signal", "signal").order("signal").fetchall()
        return [str(r[0]) for r in rows]

    def timeseries(
        self,
        parcel_ids: Iterable[int] | None = None,
        signals: Iterable[str] | None = None,
        start: date | str | None = None,
        end: date | str | None = None,
    ) -> pd.DataFrame:
        """Rows of the chosen parcels, signals and dates (inclusive), by parcel, signal, date."""
        conditions: list[str] = []
        parameters: list[object] = []
        ids: list[int] = []
        if parcel_ids is not None:
            ids = [int(i) for i in parcel_ids]
            if not ids:
                return _empty_frame()
            conditions.append(f"parcel_id IN ({', '.join('?' * len(ids))})")
            parameters.extend(ids)
        if signals is not None:
            names = list(signals)
            if not names:
                return _empty_frame()
            conditions.append(f"signal IN ({', '.join('?' * len(names))})")
            parameters.extend(names)
        if start is not None:
            conditions.append("date >= ?")
            parameters.append(_as_date(start, "start"))
        if end is not None:
            conditions.append("date <= ?")
            parameters.append(_as_date(end, "end"))
        files, retired, deduplicate = self._sources(ids if parcel_ids is not None else None)
        if not files:
            return _empty_frame()
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        # union_by_name reads every file's schema at each query; skip it when they all agree.
        union = "true" if self._schemas_differ(files) else "false"
        rows = visible_rows_sql(
            f"(SELECT * FROM read_parquet(?, union_by_name = {union}) {where})",
            retired,
            deduplicate=deduplicate,
        )
        sql = f"SELECT * FROM ({rows}) ORDER BY parcel_id, signal, date, sensor, orbit, tile"
        table = _arrow(self._connection.sql(sql, params=[files, *parameters]))
        frame: pd.DataFrame = table.to_pandas()
        return frame

    def _schemas_differ(self, files: Sequence[str]) -> bool:
        """True when the files' Parquet schemas are not all the same (cached per file version)."""
        first: pa.Schema | None = None
        for name in files:
            status = os.stat(name)
            version = (status.st_ino, status.st_size, status.st_mtime_ns)
            cached = self._schemas.get(name)
            if cached is None or cached[0] != version:
                cached = (version, pq.read_schema(name))
                self._schemas[name] = cached
            if first is None:
                first = cached[1]
            elif not cached[1].equals(first):
                return True
        return False

    def add_signal(self, name: str, expression: str, *, replace: bool = False) -> int:
        """Derive signal ``name`` from stored statistics; returns the number of rows written.

        ``expression`` is a SQL expression over ``<SIGNAL>_<stat>`` columns of one acquisition,
        e.g. ``"NDVI_stdev / NDVI_mean"`` (a coefficient of variation) or
        ``"AMP_VV_mean - AMP_VH_mean"``. Rows are built for every parcel and acquisition that
        has all the referenced signals; the value goes to ``mean``, ``count`` is the smallest
        count of the inputs. Derived signals are stored in ``derived/<name>.parquet``.
        """
        if not _SIGNAL_NAME.match(name):
            raise InputError(
                f"signal name {name!r} must be upper case letters, digits and '_' (e.g. NDVI_CV)"
            )
        target = self.root / DERIVED / f"{name}.parquet"
        known = set(self.signals())
        if name in known and not replace:
            raise ConflictError(f"signal {name!r} already exists in {self.root}; pass replace=True")
        references = sorted(set(_STAT_REFERENCE.findall(expression)))
        if not references:
            raise InputError(
                f"expression {expression!r} references no statistic; write e.g. NDVI_mean"
            )
        inputs = sorted({signal for signal, _stat in references})
        missing = [s for s in inputs if s not in known]
        if missing:
            raise InputError(
                f"expression {expression!r} uses unknown signals {missing}; stored: {sorted(known)}"
            )
        table = self._derive(name, expression, inputs, references)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            write_mdb_table(table, tmp)
        return int(table.num_rows)

    def _derive(
        self,
        name: str,
        expression: str,
        inputs: Sequence[str],
        references: Sequence[tuple[str, str]],
    ) -> pa.Table:
        relation = self.duckdb().filter("signal IN (" + ", ".join(f"'{s}'" for s in inputs) + ")")
        self._connection.register("capmon_inputs", relation)
        try:
            pivots = ", ".join(
                f'max("{stat}") FILTER (WHERE signal = \'{signal}\') AS "{signal}_{stat}"'
                for signal, stat in references
            )
            counts = ", ".join(
                f'max("count") FILTER (WHERE signal = \'{s}\') AS "__count_{s}"' for s in inputs
            )
            pixels = ", ".join(
                f"max(pixels) FILTER (WHERE signal = '{s}') AS \"__pixels_{s}\"" for s in inputs
            )
            products = " || '+' || ".join(
                f"coalesce(max(product_id) FILTER (WHERE signal = '{s}'), '')" for s in inputs
            )
            keys = ", ".join(f'"{k}"' for k in _KEY)
            have_all = " AND ".join(f'"__count_{s}" IS NOT NULL' for s in inputs)
            least_count = "least(" + ", ".join(f'"__count_{s}"' for s in inputs) + ")"
            least_pixels = "least(" + ", ".join(f'"__pixels_{s}"' for s in inputs) + ")"
            try:
                result = _arrow(
                    self._connection.sql(
                        f"""
                    WITH wide AS (
                        SELECT {keys}, {pivots}, {counts}, {pixels},
                               {products} AS product_id
                        FROM capmon_inputs GROUP BY {keys}
                    )
                    SELECT parcel_id, ? AS signal, sensor, date, date_first,
                           CAST(orbit AS SMALLINT) AS orbit, orbit_direction, tile, product_id,
                           CAST({least_count} AS INTEGER) AS "count",
                           CAST({least_pixels} AS INTEGER) AS pixels,
                           CAST(({expression}) AS FLOAT) AS mean
                    FROM wide WHERE {have_all}
                    ORDER BY parcel_id, date
                    """,
                        params=[name],
                    )
                )
            except duckdb.Error as exc:
                raise InputError(f"cannot evaluate expression {expression!r}: {exc}") from exc
        finally:
            self._connection.unregister("capmon_inputs")
        columns = {
            field.name: result.column(field.name)
            for field in MDB_SCHEMA
            if field.name in result.column_names
        }
        for field in MDB_SCHEMA:
            if field.name not in columns:  # statistics but the mean, backscatter
                columns[field.name] = pa.nulls(result.num_rows, field.type)
        return pa.Table.from_pydict(
            {f.name: columns[f.name].cast(f.type) for f in MDB_SCHEMA}, schema=MDB_SCHEMA
        )


def _arrow(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    table = relation.to_arrow_table()
    if table is None:
        raise InputError("the MDB query returned no result set")
    return table


def _as_date(value: date | str, label: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InputError(f"{label} {value!r} is not a date (YYYY-MM-DD)") from exc


def _empty_frame() -> pd.DataFrame:
    frame: pd.DataFrame = MDB_SCHEMA.empty_table().to_pandas()
    return frame
