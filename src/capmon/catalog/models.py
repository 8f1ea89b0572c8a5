"""SQLAlchemy models of the catalogue: sites, seasons, declarations, LUTs, products, jobs, users.

The schema follows Sen4CAP's (sen4cap-system.md 1.3) where it has one, in capmon's names.
Migrations live in ``capmon/catalog/migrations``; a change here needs a new revision there.
"""

from __future__ import annotations

import enum
import re
import uuid
from datetime import date, datetime
from typing import Any, ClassVar

from shapely.geometry.base import BaseGeometry
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from capmon.catalog.geometry import GeometryType
from capmon.catalog.paths import WorkspacePath

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[str]: JSON}


class ActivityStatus(enum.StrEnum):
    """Status of a job, task or step (Sen4CAP ``activity_status``)."""

    SUBMITTED = "submitted"
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    ERROR = "error"


class StartType(enum.StrEnum):
    """Why a job started (Sen4CAP ``job.start_type_id``)."""

    REQUESTED = "requested"
    SCHEDULED = "scheduled"
    TRIGGERED = "triggered"


class ImportMode(enum.StrEnum):
    """Declarations import mode (Sen4CAP ``data-preparation.py --mode``)."""

    UPDATE = "update"
    REPLACE = "replace"
    INCREMENTAL = "incremental"


class Role(enum.StrEnum):
    """User role; ``admin`` sees everything, the others only their sites."""

    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


def _status_enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Site(Base):
    """A named area of interest; its S2 MGRS tiles are derived from the AOI at creation."""

    __tablename__ = "site"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    short_name: Mapped[str] = mapped_column(String(128), unique=True)
    aoi: Mapped[BaseGeometry] = mapped_column(GeometryType("MULTIPOLYGON", 4326))
    tiles: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    published: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Anonymous clients may read the site's processor products (``capmon site publish``)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    seasons: Mapped[list[Season]] = relationship(
        back_populates="site", cascade="all, delete-orphan", order_by="Season.start_date"
    )


class Season(Base):
    """A monitoring season of a site: start, mid and end dates (mid starts L4A's schedule)."""

    __tablename__ = "season"
    __table_args__ = (UniqueConstraint("site_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    start_date: Mapped[date] = mapped_column(Date)
    mid_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    site: Mapped[Site] = relationship(back_populates="seasons")

    @property
    def year(self) -> int:
        """The year of the season's declarations and LUT (see :func:`season_year`)."""
        return season_year(self.name, self.start_date, self.end_date)


_NAMED_YEAR = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")


def season_year(name: str, start_date: date, end_date: date) -> int:
    """The declaration year of a season: the one year its name holds (``2023``, ``main 2023``)
    when that is the year of its start or end date or between them, else the year of its end
    date (names such as ``2023-2024`` or ``main``). A season named 2023 that ends on
    2024-01-31 reads the 2023 declarations (issue 17); computed, so no catalogue migration."""
    years = {int(y) for y in _NAMED_YEAR.findall(name)}
    if len(years) == 1:
        (year,) = years
        if start_date.year <= year <= end_date.year:
            return year
    return end_date.year


class DeclarationSet(Base):
    """One imported version of a site's declarations (parcels) for a year.

    The parcels themselves live in a GeoParquet file of the workspace (``parcels_path``,
    relative to the workspace home); the latest version of (site, year) is the current one.
    """

    __tablename__ = "declaration_set"
    __table_args__ = (UniqueConstraint("site_id", "year", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    import_mode: Mapped[ImportMode] = mapped_column(_status_enum(ImportMode, "import_mode"))
    source_file: Mapped[str] = mapped_column(WorkspacePath)
    source_layer: Mapped[str | None] = mapped_column(Text, nullable=True)
    column_mapping: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    parcels_path: Mapped[str] = mapped_column(Text)
    parcel_count: Mapped[int] = mapped_column(Integer)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CropLut(Base):
    """One imported version of a site's crop look-up table for a year (Sen4CAP LUT columns)."""

    __tablename__ = "crop_lut"
    __table_args__ = (UniqueConstraint("site_id", "year", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    source_file: Mapped[str] = mapped_column(WorkspacePath)
    lut_path: Mapped[str] = mapped_column(Text)
    entry_count: Mapped[int] = mapped_column(Integer)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Product(Base):
    """An input or output product: a satellite acquisition, an MDB partition, a processor output."""

    __tablename__ = "product"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(256))
    product_type: Mapped[str] = mapped_column(String(32), index=True)
    sensor: Mapped[str | None] = mapped_column(String(8), nullable=True)
    acquired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    acquired_first_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    tile: Mapped[str | None] = mapped_column(String(16), nullable=True)
    relative_orbit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    orbit_direction: Mapped[str | None] = mapped_column(String(4), nullable=True)
    processing_baseline: Mapped[str | None] = mapped_column(String(16), nullable=True)
    footprint: Mapped[BaseGeometry | None] = mapped_column(
        GeometryType("GEOMETRY", 4326), nullable=True
    )
    path: Mapped[str] = mapped_column(WorkspacePath)
    """Relative to the workspace home when inside it (:mod:`capmon.catalog.paths`)."""
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("job.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (UniqueConstraint("site_id", "name"),)


class Job(Base):
    """A processor run: a DAG of tasks, each made of steps."""

    __tablename__ = "job"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str | None] = mapped_column(
        String(32), unique=True, index=True, nullable=True, default=lambda: uuid.uuid4().hex
    )
    """The job's public id (random, never reused; row ids are reused by SQLite)."""
    processor: Mapped[str] = mapped_column(String(64), index=True)
    site_id: Mapped[int | None] = mapped_column(
        ForeignKey("site.id", ondelete="CASCADE"), nullable=True, index=True
    )
    season_id: Mapped[int | None] = mapped_column(
        ForeignKey("season.id", ondelete="SET NULL"), nullable=True
    )
    start_type: Mapped[StartType] = mapped_column(_status_enum(StartType, "start_type"))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[ActivityStatus] = mapped_column(_status_enum(ActivityStatus, "job_status"))
    progress: Mapped[float] = mapped_column(default=0.0)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    submitted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    tasks: Mapped[list[Task]] = relationship(back_populates="job", cascade="all, delete-orphan")


class Task(Base):
    """A unit of a job; ``preceding`` lists the ids of the tasks it waits for."""

    __tablename__ = "task"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    module: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[ActivityStatus] = mapped_column(_status_enum(ActivityStatus, "task_status"))
    preceding: Mapped[list[int]] = mapped_column(JSON, default=list)
    output_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    job: Mapped[Job] = relationship(back_populates="tasks")
    steps: Mapped[list[Step]] = relationship(back_populates="task", cascade="all, delete-orphan")


class Step(Base):
    """The smallest unit of work, with its exit code and log."""

    __tablename__ = "step"
    __table_args__ = (UniqueConstraint("task_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[ActivityStatus] = mapped_column(_status_enum(ActivityStatus, "step_status"))
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    log: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    task: Mapped[Task] = relationship(back_populates="steps")


class User(Base):
    """A person who uses the service; non-admin users see only the sites listed in ``sites``."""

    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(256), nullable=True)
    role: Mapped[Role] = mapped_column(_status_enum(Role, "role"))
    password_hash: Mapped[str] = mapped_column(Text)
    sites: Mapped[list[int]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RefreshToken(Base):
    """A refresh token the service issued (its JWT id): used once, then replaced by the next
    (rotation); deleted with its user or on a password change."""

    __tablename__ = "refresh_token"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    family: Mapped[str] = mapped_column(String(64), index=True)
    """Tokens rotated from one login share a family; reusing a spent token revokes it all."""
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SeasonLock(Base):
    """The run that currently writes a season's MDB and products (one row per season).

    ``owner`` is unique per run (host, pid and a random token); the owner refreshes
    ``heartbeat_at`` while it works, so a lock left by a killed run is recognised as stale (its
    pid is gone on this host, or its heartbeat is old) and taken over.
    """

    __tablename__ = "season_lock"

    season_id: Mapped[int] = mapped_column(
        ForeignKey("season.id", ondelete="CASCADE"), primary_key=True
    )
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    owner: Mapped[str] = mapped_column(String(128))
    host: Mapped[str] = mapped_column(String(128))
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ScheduledTask(Base):
    """A per-site (``season_id`` null) or per-season override of a processor's default schedule
    and parameters (Sen4CAP ``scheduled_task``); ``enabled`` false leaves it out of season runs."""

    __tablename__ = "scheduled_task"
    __table_args__ = (UniqueConstraint("site_id", "season_id", "processor"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"), index=True)
    season_id: Mapped[int | None] = mapped_column(
        ForeignKey("season.id", ondelete="CASCADE"), nullable=True
    )
    processor: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    first: Mapped[str | None] = mapped_column(String(8), nullable=True)
    offset_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    every_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class DownloadStatus(enum.StrEnum):
    """Where the download of a product stands (Sen4CAP ``downloader_history`` statuses)."""

    QUEUED = "queued"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    FAILED = "failed"
    IGNORED = "ignored"
    """Not downloaded on purpose: cloud cover over the limit, same acquisition from another
    source... (``reason`` says why)."""


class DownloadHistory(Base):
    """One product a data source offered for a site (Sen4CAP ``downloader_history``): its
    download status, retries, the reason of a failure or of ignoring it, and the catalogue
    product it became once ingested. Credentials never appear in ``reason``."""

    __tablename__ = "download_history"
    __table_args__ = (UniqueConstraint("site_id", "source", "product_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"), index=True)
    season_id: Mapped[int | None] = mapped_column(
        ForeignKey("season.id", ondelete="SET NULL"), nullable=True
    )
    source: Mapped[str] = mapped_column(String(64))
    collection: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    product_name: Mapped[str] = mapped_column(String(256))
    acquired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    tile: Mapped[str | None] = mapped_column(String(16), nullable=True)
    relative_orbit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cloud_cover: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[DownloadStatus] = mapped_column(_status_enum(DownloadStatus, "download_status"))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    path: Mapped[str | None] = mapped_column(WorkspacePath, nullable=True)
    product_id: Mapped[int | None] = mapped_column(
        ForeignKey("product.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    downloaded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
