"""initial catalogue schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23 23:15:59.819861
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import capmon.catalog.geometry

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=256), nullable=True),
        sa.Column(
            "role",
            sa.Enum("admin", "operator", "viewer", name="role", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("sites", sa.JSON(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("login", name=op.f("uq_app_user_login")),
    )
    op.create_table(
        "site",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("short_name", sa.String(length=128), nullable=False),
        sa.Column(
            "aoi", capmon.catalog.geometry.GeometryType("MULTIPOLYGON", 4326), nullable=False
        ),
        sa.Column("tiles", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site")),
        sa.UniqueConstraint("name", name=op.f("uq_site_name")),
        sa.UniqueConstraint("short_name", name=op.f("uq_site_short_name")),
    )
    op.create_table(
        "crop_lut",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("source_file", sa.Text(), nullable=False),
        sa.Column("lut_path", sa.Text(), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_crop_lut_site_id_site"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crop_lut")),
        sa.UniqueConstraint("site_id", "year", "version", name=op.f("uq_crop_lut_site_id")),
    )
    with op.batch_alter_table("crop_lut", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_crop_lut_site_id"), ["site_id"], unique=False)

    op.create_table(
        "declaration_set",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "import_mode",
            sa.Enum(
                "update", "replace", "incremental", name="import_mode", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("source_file", sa.Text(), nullable=False),
        sa.Column("source_layer", sa.Text(), nullable=True),
        sa.Column("column_mapping", sa.JSON(), nullable=False),
        sa.Column("parcels_path", sa.Text(), nullable=False),
        sa.Column("parcel_count", sa.Integer(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["site.id"],
            name=op.f("fk_declaration_set_site_id_site"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_declaration_set")),
        sa.UniqueConstraint("site_id", "year", "version", name=op.f("uq_declaration_set_site_id")),
    )
    with op.batch_alter_table("declaration_set", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_declaration_set_site_id"), ["site_id"], unique=False)

    op.create_table(
        "season",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("mid_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_season_site_id_site"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_season")),
        sa.UniqueConstraint("site_id", "name", name=op.f("uq_season_site_id")),
    )
    with op.batch_alter_table("season", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_season_site_id"), ["site_id"], unique=False)

    op.create_table(
        "job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("processor", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("season_id", sa.Integer(), nullable=True),
        sa.Column(
            "start_type",
            sa.Enum(
                "requested",
                "scheduled",
                "triggered",
                name="start_type",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "submitted",
                "pending",
                "running",
                "paused",
                "finished",
                "cancelled",
                "error",
                name="job_status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("progress", sa.Double(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column(
            "submitted_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["season_id"], ["season.id"], name=op.f("fk_job_season_id_season"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_job_site_id_site"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_processor"), ["processor"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_site_id"), ["site_id"], unique=False)

    op.create_table(
        "product",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("product_type", sa.String(length=32), nullable=False),
        sa.Column("sensor", sa.String(length=8), nullable=True),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acquired_first_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tile", sa.String(length=16), nullable=True),
        sa.Column("relative_orbit", sa.Integer(), nullable=True),
        sa.Column("orbit_direction", sa.String(length=4), nullable=True),
        sa.Column("processing_baseline", sa.String(length=16), nullable=True),
        sa.Column(
            "footprint", capmon.catalog.geometry.GeometryType("GEOMETRY", 4326), nullable=True
        ),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_product_job_id_job"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_product_site_id_site"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product")),
        sa.UniqueConstraint("site_id", "name", name=op.f("uq_product_site_id")),
    )
    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_product_product_type"), ["product_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_product_site_id"), ["site_id"], unique=False)

    op.create_table(
        "task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("module", sa.String(length=64), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "submitted",
                "pending",
                "running",
                "paused",
                "finished",
                "cancelled",
                "error",
                name="task_status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("preceding", sa.JSON(), nullable=False),
        sa.Column("output_key", sa.String(length=128), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_task_job_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task")),
    )
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_job_id"), ["job_id"], unique=False)

    op.create_table(
        "step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "submitted",
                "pending",
                "running",
                "paused",
                "finished",
                "cancelled",
                "error",
                name="step_status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("log", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"], ["task.id"], name=op.f("fk_step_task_id_task"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step")),
        sa.UniqueConstraint("task_id", "name", name=op.f("uq_step_task_id")),
    )
    with op.batch_alter_table("step", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_step_task_id"), ["task_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("step", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_step_task_id"))

    op.drop_table("step")
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_job_id"))

    op.drop_table("task")
    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_product_site_id"))
        batch_op.drop_index(batch_op.f("ix_product_product_type"))

    op.drop_table("product")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_site_id"))
        batch_op.drop_index(batch_op.f("ix_job_processor"))

    op.drop_table("job")
    with op.batch_alter_table("season", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_season_site_id"))

    op.drop_table("season")
    with op.batch_alter_table("declaration_set", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_declaration_set_site_id"))

    op.drop_table("declaration_set")
    with op.batch_alter_table("crop_lut", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crop_lut_site_id"))

    op.drop_table("crop_lut")
    op.drop_table("site")
    op.drop_table("app_user")
