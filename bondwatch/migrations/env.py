"""Alembic environment: runs the revisions on the connection the caller hands over
(`bondwatch.db.migrate`, `bondwatch db revision`).

The models' tables (`target_metadata`) come from the caller, for comparing and autogenerating
only: the shared package imports no stage, and an upgrade needs nothing but the revisions.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

config = context.config


def run(connection: Connection) -> None:
    # Batch mode lets the same revision alter a table on SQLite (copy and swap) and PostgreSQL.
    context.configure(
        connection=connection,
        target_metadata=config.attributes.get("target_metadata"),
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run(config.attributes["connection"])
