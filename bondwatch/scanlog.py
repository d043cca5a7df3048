"""The scan log: every live scan event kept in the database, so a serial can be traced later.

The scan stream in Redis is trimmed and only the rules read it; the officers' question "where
has this unit been?" needs the scans for as long as the alerts are kept. Writing is idempotent:
an event with a sender's `id` is stored once under that id, one without under a hash of its
content (kind, station, serial, zone, time), so re-reading the stream after a restart, or a
client resending a batch, never stores a scan twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlalchemy import Float, String, Text, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bondwatch.db import make_engine, migrate
from bondwatch.scans import ScanEvent

logger = logging.getLogger(__name__)

MAX_TRACE = 1000  # scans returned for one serial: a unit is scanned a handful of times


class Base(DeclarativeBase):
    pass


class ScanRow(Base):
    __tablename__ = "scans"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    ts: Mapped[float] = mapped_column(Float, index=True)  # wall clock of the scan (UNIX s)
    station: Mapped[str | None] = mapped_column(String(64), index=True)
    serial: Mapped[str | None] = mapped_column(String(200), index=True)
    zone: Mapped[str | None] = mapped_column(String(64))
    extra: Mapped[str] = mapped_column(Text, default="{}")  # JSON: operator, step, direction, ...
    stored_at: Mapped[float] = mapped_column(Float)


@dataclass(frozen=True)
class ScanRecord:
    """One stored scan; `extra` holds the sender's extra fields (operator, step, direction)."""

    id: str
    kind: str
    ts: float
    station: str | None
    serial: str | None
    zone: str | None
    extra: dict[str, Any]

    @staticmethod
    def of(row: ScanRow) -> ScanRecord:
        return ScanRecord(
            row.id, row.kind, row.ts, row.station, row.serial, row.zone, json.loads(row.extra)
        )


def scan_key(scan: ScanEvent) -> str:
    """The sender's id, else a digest of what makes the event this event."""
    own = getattr(scan, "id", None)
    if own:
        return str(own)
    when = scan.ts.astimezone(UTC).isoformat() if scan.ts is not None else f"t={scan.t}"
    content = json.dumps([scan.kind, scan.station, scan.serial, scan.zone, when])
    return "sha256:" + hashlib.sha256(content.encode()).hexdigest()[:40]


class ScanLog:
    """Scans in the table `scans`, next to the alerts (same database). Given a URL, the database
    is migrated first; given an engine (the alert store's), it already is."""

    def __init__(self, engine: Engine | str):
        if isinstance(engine, str):
            migrate(engine)
            engine = make_engine(engine)
        self.engine = engine

    def record(self, scans: Iterable[ScanEvent]) -> int:
        """Store the live scans (those with a wall-clock `ts`) not stored yet; how many were new."""
        rows = {}
        now = time.time()
        for scan in scans:
            if scan.ts is None:
                continue  # a replay scan has only video time: nothing to trace it by
            extra = {k: v for k, v in (scan.model_extra or {}).items() if k != "id"}
            key = scan_key(scan)
            rows[key] = ScanRow(
                id=key, kind=scan.kind, ts=scan.ts.timestamp(), station=scan.station,
                serial=scan.serial, zone=scan.zone,
                extra=json.dumps(extra, ensure_ascii=False, default=str), stored_at=now,
            )  # fmt: skip
        if not rows:
            return 0
        with Session(self.engine) as s:
            known = set(s.scalars(select(ScanRow.id).where(ScanRow.id.in_(list(rows)))))
            new = [r for k, r in rows.items() if k not in known]
            s.add_all(new)
            try:
                s.commit()
            except IntegrityError:
                # Another writer stored some of them meanwhile: fall back to one at a time.
                s.rollback()
                return self._one_by_one(new)
        return len(new)

    def _one_by_one(self, rows: list[ScanRow]) -> int:
        stored = 0
        for row in rows:
            with Session(self.engine) as s:
                s.add(row)
                try:
                    s.commit()
                    stored += 1
                except IntegrityError:
                    s.rollback()
        return stored

    def of_serial(self, serial: str) -> list[ScanRecord]:
        """The scans of `serial` (exact match), oldest first."""
        q = select(ScanRow).where(ScanRow.serial == serial).order_by(ScanRow.ts).limit(MAX_TRACE)
        with Session(self.engine) as s:
            return [ScanRecord.of(r) for r in s.scalars(q)]

    def serials_like(self, prefix: str, limit: int = 10) -> list[str]:
        """Serials starting with `prefix`, for suggestions while an officer types."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        q = (
            select(ScanRow.serial)
            .where(ScanRow.serial.like(pattern, escape="\\"))
            .distinct()
            .order_by(ScanRow.serial)
            .limit(limit)
        )
        with Session(self.engine) as s:
            return [v for v in s.scalars(q) if v is not None]
