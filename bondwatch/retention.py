"""Retention: what is older than the retention period (3 years by default, the customs audit
period) is deleted, so the database and the evidence folder do not grow forever.

What goes: alerts whose whole case (the group) is resolved and whose newest event is older than
the cutoff, with every row keyed to them (a table keyed to an alert names the column
`alert_id`: cases, outbox, deliveries and whatever a later stage adds are found that way, from
the schema itself), their case history, their evidence folder (DATA/evidence/<alert id>) and
the recording holds they placed; and audit entries older than the cutoff, after which the chain
is anchored at the last purged entry (see bondwatch.audit). A case still open keeps all its
alerts however old. Recordings follow their own policy in streams (age and quota, minus holds).

The shared package imports no stage, so the tables are read from the database (reflection)
rather than imported from the stages' models; the schema is the migrations' anyway.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import MetaData, Table, case, delete, func, select, update
from sqlalchemy.orm import Session

from bondwatch.audit import AuditLog, AuditRow
from bondwatch.db import make_engine
from bondwatch.site import RetentionSettings

logger = logging.getLogger(__name__)

EVIDENCE_SUBDIR = "evidence"  # alerts/evidence.py keeps DATA/evidence/<alert id>/
ACTOR = "retention"
CHUNK = 500  # ids per IN (...) list, well inside every database's limit on bound parameters
DAY_S = 86400.0


@dataclass(frozen=True)
class RetentionReport:
    """What one run deleted, table by table, and what it kept because a case is still open."""

    cutoff: float
    alerts: int
    rows: dict[str, int]
    kept_open: int
    evidence: int
    holds_released: int
    audit: int

    def summary(self) -> str:
        when = datetime.fromtimestamp(self.cutoff, UTC).isoformat(timespec="seconds")
        other = ", ".join(f"{n} {t}" for t, n in sorted(self.rows.items()) if n) or "no other rows"
        return (
            f"retention: before {when}: {self.alerts} alerts ({other}), {self.evidence} evidence "
            f"folders, {self.audit} audit entries deleted; {self.holds_released} recording holds "
            f"released; {self.kept_open} old alerts kept for their open cases"
        )


class Retention:
    """Purges the database at `db_url` and the evidence under `data_dir`; `run` is idempotent."""

    def __init__(self, db_url: str, data_dir: str | Path, settings: RetentionSettings):
        self.engine = make_engine(db_url)
        self.audit = AuditLog(self.engine)  # which brings the schema up to date first
        self.evidence_root = Path(data_dir) / EVIDENCE_SUBDIR
        self.period_s = settings.days * DAY_S

    def close(self) -> None:
        self.engine.dispose()

    def run(self, now: float | None = None) -> RetentionReport:
        """Delete what ended before `now` minus the period, in one transaction with its audit
        entries; then the evidence folders of alerts the database no longer holds."""
        now = time.time() if now is None else now
        cutoff = now - self.period_s
        tables = MetaData()
        tables.reflect(self.engine)
        with self.audit.transaction() as s:
            groups, kept_open = _expired_cases(s, tables, cutoff)
            ids = _members(s, tables, groups)
            rows = _delete_alerts(s, tables, groups, ids)
            released = _release_holds(s, tables, ids, now)
            through = _audit_prefix(s, cutoff)
            if ids:
                detail = {
                    "cutoff": cutoff,
                    "alerts": len(ids),
                    "rows": rows,
                    "holds_released": released,
                }
                self.audit.append(s, ACTOR, "retention_purged", "alerts", detail)
            audit = 0
            if through is not None:
                audit = self.audit.purge_through(s, through, ACTOR, {"cutoff": cutoff})
        evidence = self._delete_evidence(tables, set(ids), cutoff)
        report = RetentionReport(cutoff, len(ids), rows, kept_open, evidence, released, audit)
        logger.info("%s", report.summary())
        return report

    def _delete_evidence(self, tables: MetaData, purged: set[str], cutoff: float) -> int:
        """The folders of the alerts just purged, and old ones of alerts no longer stored (left
        by a run that stopped between its commit and here)."""
        if not self.evidence_root.is_dir():
            return 0
        candidates = [
            f for f in self.evidence_root.iterdir() if f.name in purged or _newest_mtime(f) < cutoff
        ]
        alerts = tables.tables["alerts"]
        with Session(self.engine) as s:
            stored: set[str] = set()
            for chunk in _chunks([f.name for f in candidates]):
                stored.update(s.scalars(select(alerts.c.id).where(alerts.c.id.in_(chunk))))
        n = 0
        for folder in candidates:
            if folder.name in stored:
                continue
            try:
                shutil.rmtree(folder) if folder.is_dir() else folder.unlink()
                n += 1
            except OSError as e:
                logger.error("could not delete evidence %s (the next run retries): %s", folder, e)
        return n


def _expired_cases(s: Session, tables: MetaData, cutoff: float) -> tuple[list[str], int]:
    """Cases (group ids) that are resolved and whose newest alert is older than `cutoff`, and
    how many alerts older than it stay because their case is open."""
    alerts, cases = tables.tables["alerts"], tables.tables["alert_cases"]
    event_time = func.coalesce(alerts.c.ts, alerts.c.stored_at)
    is_open = case((cases.c.state != "resolved", 1), else_=0)
    q = (
        select(cases.c.group_id)
        .join(alerts, alerts.c.id == cases.c.alert_id)
        .group_by(cases.c.group_id)
        .having(func.max(event_time) < cutoff, func.sum(is_open) == 0)
    )
    groups = list(s.scalars(q))
    open_old = (
        select(func.count())
        .select_from(cases.join(alerts, alerts.c.id == cases.c.alert_id))
        .where(event_time < cutoff, cases.c.state != "resolved")
    )
    return groups, int(s.scalar(open_old) or 0)


def _members(s: Session, tables: MetaData, groups: list[str]) -> list[str]:
    cases = tables.tables["alert_cases"]
    ids: list[str] = []
    for chunk in _chunks(groups):
        ids += s.scalars(select(cases.c.alert_id).where(cases.c.group_id.in_(chunk)))
    return ids


def _delete_alerts(
    s: Session, tables: MetaData, groups: list[str], ids: list[str]
) -> dict[str, int]:
    """Rows per table: the cases' history, every table with an `alert_id`, then the alerts."""
    keyed: list[tuple[Table, str, list[str]]] = [
        (tables.tables["alert_history"], "case_id", groups)
    ]
    keyed += [(t, "alert_id", ids) for t in tables.sorted_tables if "alert_id" in t.c]
    keyed.append((tables.tables["alerts"], "id", ids))
    rows: dict[str, int] = {}
    for table, column, keys in keyed:
        n = 0
        for chunk in _chunks(keys):
            n += s.execute(delete(table).where(table.c[column].in_(chunk))).rowcount
        rows[table.name] = n
    rows.pop("alerts")
    return rows


def _release_holds(s: Session, tables: MetaData, ids: list[str], now: float) -> int:
    """Release the recording holds the purged alerts placed (service.AlertSink: "alert <id>"),
    so the recording's own retention may take those segments."""
    holds = tables.tables.get("holds")
    if holds is None:
        return 0
    n = 0
    for chunk in _chunks([f"alert {i}" for i in ids]):
        q = update(holds).where(holds.c.reason.in_(chunk), holds.c.released_ts.is_(None))
        n += s.execute(q.values(released_ts=now)).rowcount
    return n


def _audit_prefix(s: Session, cutoff: float) -> int | None:
    """The last entry of the chain's oldest run of entries older than `cutoff`; None if the
    first entry is not older. Only a prefix can go, or the chain would have a hole."""
    first_kept = s.scalar(select(func.min(AuditRow.seq)).where(AuditRow.ts >= cutoff))
    if first_kept is None:
        return s.scalar(select(func.max(AuditRow.seq)))
    last_old = s.scalar(select(func.max(AuditRow.seq)).where(AuditRow.seq < first_kept))
    return last_old


def _newest_mtime(path: Path) -> float:
    if not path.is_dir():
        return path.stat().st_mtime
    return max((p.stat().st_mtime for p in path.rglob("*")), default=path.stat().st_mtime)


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


class RetentionWorker(threading.Thread):
    """Runs retention when the service starts and daily after, off the event loop; a run that
    fails is logged and tried again an hour later."""

    def __init__(self, retention: Retention, every_s: float = DAY_S, retry_s: float = 3600.0):
        super().__init__(name="retention", daemon=True)
        self.retention = retention
        self.every_s = every_s
        self.retry_s = retry_s
        self.stopping = threading.Event()
        self.last: RetentionReport | None = None

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.last = self.retention.run()
                wait_s = self.every_s
            except Exception:
                logger.exception("retention failed; retrying in %.0f s", self.retry_s)
                wait_s = self.retry_s
            self.stopping.wait(wait_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the run in progress, if any (one transaction: it commits or rolls back)."""
        self.stopping.set()
        if self.ident is not None:  # started
            self.join(timeout_s)
        self.retention.close()
