"""A geometry column type: PostGIS ``geometry(TYPE, SRID)`` on PostgreSQL, WKB bytes on SQLite.

Python code always sees shapely geometries in EPSG:4326 (lon/lat order). On PostgreSQL the
value travels as EWKB (bytea, cast implicitly to geometry by PostGIS) and comes back as hex
EWKB; no spatial-extension machinery is needed on the client side.
"""

from __future__ import annotations

from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType


class PostGISGeometry(UserDefinedType[Any]):
    """The DDL of a PostGIS geometry column."""

    cache_ok = True

    def __init__(self, geometry_type: str, srid: int) -> None:
        self.geometry_type = geometry_type
        self.srid = srid

    def get_col_spec(self, **_kw: Any) -> str:
        return f"geometry({self.geometry_type},{self.srid})"


class GeometryType(TypeDecorator[BaseGeometry]):
    """Shapely geometry stored as PostGIS geometry (PostgreSQL) or WKB (SQLite)."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, geometry_type: str = "GEOMETRY", srid: int = 4326) -> None:
        super().__init__()
        self.geometry_type = geometry_type
        self.srid = srid

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(PostGISGeometry(self.geometry_type, self.srid))
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: BaseGeometry | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return shapely.to_wkb(shapely.set_srid(value, self.srid), include_srid=True)
        return shapely.to_wkb(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> BaseGeometry | None:
        if value is None:
            return None
        if isinstance(value, memoryview):
            value = value.tobytes()
        geometry: BaseGeometry = shapely.set_srid(shapely.from_wkb(value), 0)
        return geometry
