"""Database engines and schema: SQLite (embedded default) or whatever DATABASE_URL names.

The schema is made by the Alembic migrations in `bondwatch/migrations`, never by
`create_all`, so a database made by any version of BondWatch is brought forward the same way.
Every store opens its database through `migrate`, which upgrades it once per process.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)
# Alembic's INFO lines (plugins as it is imported, dialect) come on every start and say nothing
# to an operator; `migrate` logs the upgrades it makes. Hence also Alembic imported late.
logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS = Path(__file__).with_name("migrations")
# Writers that must not interleave (the audit chain, schema upgrades) take this lock on
# PostgreSQL; the number is arbitrary but fixed for the whole installation.
_ADVISORY_KEY = {"audit": 0x62770001, "migrate": 0x62770002}

_migrated: set[str] = set()
_migrate_lock = threading.Lock()


class DatabaseError(Exception):
    """The database cannot be reached or brought to the current schema; says which one."""


def database_url(data_dir: str | Path) -> str:
    return os.environ.get("DATABASE_URL") or f"sqlite:///{Path(data_dir).resolve()}/bondwatch.db"


def _normalized(url: str) -> str:
    """`url` with the driver BondWatch ships (psycopg 3) when it names PostgreSQL without one."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL so readers never block the writer."""
    url = _normalized(url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

    return engine


def lock_writers(conn: Connection, name: str) -> None:
    """Make the transaction of `conn` the only one holding lock `name` until it ends.

    PostgreSQL: a transaction-scoped advisory lock. SQLite has one writer at a time anyway,
    but a deferred transaction that read first fails when it later wants to write; taking the
    write lock up front (BEGIN IMMEDIATE, waiting up to busy_timeout) makes it wait instead.
    Call it before anything else in the transaction.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_KEY[name],))
    elif conn.dialect.name == "sqlite":
        dbapi = conn.connection.dbapi_connection
        if dbapi is not None and not dbapi.in_transaction:  # type: ignore[attr-defined]
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(url: str, metadata: list[MetaData] | None = None) -> Config:
    """The Alembic configuration for the database at `url`; `metadata` (all the models'
    tables) only for comparing or autogenerating, which the upgrade itself never needs."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", _normalized(url).replace("%", "%%"))
    cfg.attributes["target_metadata"] = metadata
    return cfg


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema revision; once per process and URL."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    key = make_url(_normalized(url)).render_as_string(hide_password=False)
    with _migrate_lock:
        if key in _migrated:
            return
        safe = make_url(key).render_as_string(hide_password=True)
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                lock_writers(conn, "migrate")
                before = MigrationContext.configure(conn).get_current_revision()
                cfg = alembic_config(url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                after = MigrationContext.configure(conn).get_current_revision()
        except Exception as e:
            raise DatabaseError(
                f"cannot bring the database {safe} to the current schema: {e}"
            ) from e
        finally:
            engine.dispose()
        _migrated.add(key)
        if before != after:
            logger.info(
                "database %s: schema upgraded from %s to %s", safe, before or "nothing", after
            )
