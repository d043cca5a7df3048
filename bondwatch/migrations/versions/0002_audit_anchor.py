"""audit anchor: where the audit chain starts after retention purged its oldest entries

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 19:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_anchor",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("purged_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_anchor")
