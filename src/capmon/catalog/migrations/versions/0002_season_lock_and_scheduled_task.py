"""season lock and scheduled tasks (orchestration)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "season_lock",
        sa.Column("season_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["season_id"],
            ["season.id"],
            name=op.f("fk_season_lock_season_id_season"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("season_id", name=op.f("pk_season_lock")),
    )
    op.create_table(
        "scheduled_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("season_id", sa.Integer(), nullable=True),
        sa.Column("processor", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("first", sa.String(length=8), nullable=True),
        sa.Column("offset_days", sa.Integer(), nullable=True),
        sa.Column("every_days", sa.Integer(), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["season_id"],
            ["season.id"],
            name=op.f("fk_scheduled_task_season_id_season"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["site.id"],
            name=op.f("fk_scheduled_task_site_id_site"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_task")),
        sa.UniqueConstraint(
            "site_id", "season_id", "processor", name=op.f("uq_scheduled_task_site_id")
        ),
    )
    with op.batch_alter_table("scheduled_task", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scheduled_task_site_id"), ["site_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("scheduled_task", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scheduled_task_site_id"))
    op.drop_table("scheduled_task")
    op.drop_table("season_lock")
