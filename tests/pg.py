"""A real PostgreSQL server (15 on Debian 12) for the tests, on a free loopback port in a
temporary directory.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
`postgres` system user (`runuser`), in a directory that user owns. Durability is switched
off: the data dies with the test session anyway, and it makes every commit cheap.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

# Debian's layout, newest version first (Debian 12 ships 15).
BINS = sorted(
    Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True
)
SUPERUSER = "postgres"


class PostgresError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """`start()` runs initdb and the server; `database()` makes a fresh, empty database."""

    def __init__(self) -> None:
        if not BINS:
            raise PostgresError(
                "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin): run setup"
            )
        self.bin = BINS[0]
        self.root = Path(tempfile.mkdtemp(prefix="bondwatch-pg-"))
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            user = pwd.getpwnam(SUPERUSER)
            os.chown(self.root, user.pw_uid, user.pw_gid)

    def _run(self, *cmd: str) -> None:
        argv = ["runuser", "-u", SUPERUSER, "--", *cmd] if self._as_postgres else list(cmd)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise PostgresError(
                f"{Path(cmd[0]).name} failed: {done.stderr.strip() or done.stdout.strip()}"
            )

    def start(self) -> PostgresServer:
        data = self.root / "data"
        self._run(
            str(self.bin / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
            "--no-locale", "--no-sync",
        )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.root / "log"), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        try:
            data = str(self.root / "data")
            self._run(str(self.bin / "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        )

    def database(self) -> str:
        """A new empty database; its SQLAlchemy URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def drop(self, url: str) -> None:
        """Drop the database of `url`, closing whatever connections a test left open to it."""
        name = url.rsplit("/", 1)[1]
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
