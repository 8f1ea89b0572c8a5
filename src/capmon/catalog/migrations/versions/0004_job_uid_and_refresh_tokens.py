"""job public ids, refresh tokens, published sites (service)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 17:00:00
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _columns(inspector: sa.Inspector, table: str) -> set[str]:
    with warnings.catch_warnings():  # PostGIS geometry columns: a type SQLAlchemy lacks
        warnings.filterwarnings("ignore", "Did not recognize type", sa.exc.SAWarning)
        return {column["name"] for column in inspector.get_columns(table)}


def upgrade() -> None:
    # Each step is skipped when already done (a catalogue stamped older than its schema is
    # upgraded again without errors). add_column and a separate index, not a batch table
    # copy: on SQLite, copying ``job`` would drop the old table, and with foreign keys on
    # that cascades to its tasks.
    connection = op.get_bind()
    inspector = sa.inspect(connection)
    if "uid" not in _columns(inspector, "job"):
        op.add_column("job", sa.Column("uid", sa.String(length=32), nullable=True))
    job = sa.table("job", sa.column("id", sa.Integer()), sa.column("uid", sa.String()))
    for (job_id,) in connection.execute(sa.select(job.c.id).where(job.c.uid.is_(None))).all():
        connection.execute(sa.update(job).where(job.c.id == job_id).values(uid=uuid.uuid4().hex))
    if "ix_job_uid" not in {i["name"] for i in inspector.get_indexes("job")}:
        op.create_index(op.f("ix_job_uid"), "job", ["uid"], unique=True)
    if "published" not in _columns(inspector, "site"):
        op.add_column(
            "site",
            sa.Column("published", sa.Boolean(), server_default=sa.false(), nullable=False),
        )
    if inspector.has_table("refresh_token"):
        return
    op.create_table(
        "refresh_token",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("family", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_refresh_token_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_refresh_token")),
    )
    op.create_index(op.f("ix_refresh_token_user_id"), "refresh_token", ["user_id"])
    op.create_index(op.f("ix_refresh_token_family"), "refresh_token", ["family"])


def downgrade() -> None:
    op.drop_index(op.f("ix_refresh_token_family"), table_name="refresh_token")
    op.drop_index(op.f("ix_refresh_token_user_id"), table_name="refresh_token")
    op.drop_table("refresh_token")
    op.drop_column("site", "published")
    op.drop_index(op.f("ix_job_uid"), table_name="job")
    op.drop_column("job", "uid")  # SQLite >= 3.35 drops a column in place
