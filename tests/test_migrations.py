"""The schema comes from the Alembic migrations, and they make exactly what the models declare,
on SQLite and on PostgreSQL alike. A table or column added without a migration fails here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from bondwatch.cli import main as cli
from bondwatch.cli import schema_metadata
from bondwatch.db import alembic_config, current_revision, head_revision, make_engine, migrate

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["bondwatch", "streams", "detectors", "alerts", "dashboard", "sim"]


def declared_tables() -> dict[str, str]:
    """table name -> source file, for every `__tablename__ = "..."` in the product code."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Assign)
                    and any(
                        isinstance(t, ast.Name) and t.id == "__tablename__" for t in node.targets
                    )
                    and isinstance(node.value, ast.Constant)
                ):
                    found[node.value.value] = str(path.relative_to(ROOT))
    return found


def schema_tables() -> set[str]:
    return {name for metadata in schema_metadata() for name in metadata.tables}


def test_every_module_with_tables_is_in_the_schema():
    missing = {t: f for t, f in declared_tables().items() if t not in schema_tables()}
    assert not missing, f"tables outside bondwatch.cli.SCHEMA_MODULES: {missing}"


def differences(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, schema_metadata())
    finally:
        engine.dispose()


def test_migrations_make_exactly_the_models_schema(db_url: str):
    migrate(db_url)
    assert differences(db_url) == [], (
        "models changed without a migration: run `bondwatch db revision -m ...`"
    )
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_a_database_made_before_migrations_is_brought_forward(db_url: str):
    """Such a database holds the first revision's tables (some or all) and no version table."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(db_url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")
            conn.execute(text("DROP TABLE alembic_version"))
            conn.execute(text("DROP TABLE holds"))
        migrate(db_url)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    assert differences(db_url) == []


def test_downgrade_to_nothing_and_up_again(db_url: str):
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        for target in ("base", "head"):
            with engine.begin() as conn:
                cfg = alembic_config(db_url)
                cfg.attributes["connection"] = conn
                (command.downgrade if target == "base" else command.upgrade)(cfg, target)
            tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
            assert tables == (set() if target == "base" else schema_tables())
    finally:
        engine.dispose()


def test_db_upgrade_command(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert cli(["db", "upgrade", "--data", str(tmp_path / "data")]) == 0
    assert capsys.readouterr().out.strip() == f"database schema at revision {head_revision()}"
    assert differences(db_url) == []


def test_db_upgrade_names_an_unreachable_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.setenv("DATABASE_URL", "postgresql://bw:secret@127.0.0.1:1/nowhere")
    assert cli(["db", "upgrade", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cannot bring the database postgresql+psycopg://bw:***@127.0.0.1:1/nowhere" in err
    assert "secret" not in err


def test_processes_starting_together_migrate_once(db_url: str):
    """The service and a command (`bondwatch user add`) started at the same moment on a new
    database: one upgrades it, the others wait for it and find it done."""
    code = "import sys; from bondwatch.db import migrate; migrate(sys.argv[1])"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, db_url], cwd=ROOT, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    assert differences(db_url) == []
