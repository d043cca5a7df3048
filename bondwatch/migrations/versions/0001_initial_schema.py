"""initial schema: the tables BondWatch made with create_all before it had migrations

A database made by such a version already holds some or all of them, so each table (with its
indexes) is created only where it is missing; nothing else changed before this revision.

Revision ID: 0001
Revises:
Create Date: 2026-12-03 19:10:34
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = [
    "users", "audit_log", "alert_cases", "alert_history", "alert_outbox", "alerts", "holds",
    "recording_gaps", "segments",
]  # fmt: skip


def _table(name: str, *columns: sa.Column | sa.Constraint, indexes: tuple[str, ...] = ()) -> None:
    if sa.inspect(op.get_bind()).has_table(name):
        return
    op.create_table(name, *columns)
    for column in indexes:
        op.create_index(f"ix_{name}_{column}", name, [column])


def upgrade() -> None:
    _table(
        "users",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
    )
    _table(
        "audit_log",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        indexes=("action",),
    )
    _table(
        "alert_cases",
        sa.Column("alert_id", sa.String(32), primary_key=True),
        sa.Column("group_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("resolution", sa.String(32), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        indexes=("group_id", "state"),
    )
    _table(
        "alert_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("resolution", sa.String(32), nullable=True),
        indexes=("case_id",),
    )
    _table(
        "alert_outbox",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("published_at", sa.Float(), nullable=True),
        indexes=("alert_id", "published_at"),
    )
    _table(
        "alerts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("camera", sa.String(64), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("ts", sa.Float(), nullable=True),
        sa.Column("zone", sa.String(64), nullable=True),
        sa.Column("station", sa.String(64), nullable=True),
        sa.Column("track", sa.Integer(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("stored_at", sa.Float(), nullable=False),
        indexes=("camera", "stored_at", "ts", "type"),
    )
    _table(
        "holds",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("reason", sa.String(400), nullable=False),
        sa.Column("camera", sa.String(64), nullable=True),
        sa.Column("from_ts", sa.Float(), nullable=False),
        sa.Column("to_ts", sa.Float(), nullable=False),
        sa.Column("created_ts", sa.Float(), nullable=False),
        sa.Column("released_ts", sa.Float(), nullable=True),
    )
    _table(
        "recording_gaps",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("camera", sa.String(64), nullable=False),
        sa.Column("from_ts", sa.Float(), nullable=False),
        sa.Column("to_ts", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(400), nullable=False),
        indexes=("camera", "from_ts"),
    )
    _table(
        "segments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("camera", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("start_ts", sa.Float(), nullable=False),
        sa.Column("end_ts", sa.Float(), nullable=False),
        sa.Column("start_t", sa.Float(), nullable=False),
        sa.Column("end_t", sa.Float(), nullable=False),
        sa.Column("path", sa.String(400), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("prev_sha256", sa.String(64), nullable=False),
        sa.Column("chain_sha256", sa.String(64), nullable=False),
        sa.Column("removed_ts", sa.Float(), nullable=True),
        sa.Column("removed_reason", sa.String(200), nullable=False),
        sa.UniqueConstraint("camera", "seq"),
        indexes=("camera", "end_ts", "start_ts"),
    )


def downgrade() -> None:
    for name in TABLES:
        op.drop_table(name)
