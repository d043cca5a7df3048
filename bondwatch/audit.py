"""The audit trail: an append-only, hash-chained log of who signed in, watched and decided what.

Each entry's hash is sha256(previous hash || canonical JSON of the entry), so changing,
removing or reordering an entry breaks the chain at that entry, and `bondwatch audit verify`
names it. Entries are numbered (`seq`) by the writer, not by the database, so a gap is
visible too. What the chain cannot show on its own is the loss of the newest entries; that
needs the head hash kept somewhere else (a later issue).

Retention purges the oldest entries (`purge_through`): the hash of the last one purged is kept
as the chain's anchor, where verification starts instead of the genesis hash, and the purge is
itself an entry of the chain, so an anchor that no recorded purge vouches for is a removal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Integer, String, Text, delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bondwatch.db import lock_writers, migrate

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
PURGE_ACTION = "audit_purged"


class Base(DeclarativeBase):
    pass


class AuditRow(Base):
    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40), index=True)
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditAnchor(Base):
    """The one row (id 1) saying where the chain starts once old entries were purged."""

    __tablename__ = "audit_anchor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)  # the last purged entry
    hash: Mapped[str] = mapped_column(String(64))  # and its hash
    purged_at: Mapped[float] = mapped_column(Float)


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(prev_hash: str, row: AuditRow) -> str:
    entry = {
        "seq": row.seq,
        "ts": row.ts,
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "detail": json.loads(row.detail),
    }
    return hashlib.sha256(prev_hash.encode() + canonical(entry)).hexdigest()


def _hash_or_none(row: AuditRow) -> str | None:
    """The entry's hash, or None when its detail is no longer JSON (so it was changed)."""
    try:
        return entry_hash(row.prev_hash, row)
    except ValueError:
        return None


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    ts: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class Problem:
    """The first place the chain breaks: which entry, and what happened to it."""

    seq: int
    kind: str  # changed | removed | reordered
    message: str


class AuditLog:
    """Appends entries under one lock, so the chain never forks within this process.

    Another process appending at the same moment waits for the database's writer lock
    (`lock_writers`), so it chains after this one instead of colliding on `seq`.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        migrate(engine.url.render_as_string(hide_password=False))
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A database transaction holding the append lock: entries appended in it commit (or
        roll back) together with whatever else the caller writes there."""
        with self._lock, Session(self.engine) as s, s.begin():
            lock_writers(s.connection(), "audit")
            yield s

    def append(
        self, s: Session, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> AuditEntry:
        """Append inside `s`, a session from `transaction()`."""
        last = s.scalars(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).first()
        if last is not None:
            prev_seq, prev_hash = last.seq, last.hash
        else:  # an empty log continues from its anchor, if everything in it was purged
            anchor = s.get(AuditAnchor, 1)
            prev_seq, prev_hash = (anchor.seq, anchor.hash) if anchor else (0, GENESIS)
        row = AuditRow(
            seq=prev_seq + 1,
            ts=time.time(),
            actor=actor,
            action=action,
            target=target,
            detail=canonical(detail or {}).decode(),
            prev_hash=prev_hash,
        )
        row.hash = entry_hash(row.prev_hash, row)
        s.add(row)
        s.flush()
        return AuditEntry(row.seq, row.ts, actor, action, target, dict(detail or {}))

    def record(
        self, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> AuditEntry:
        """Append one entry in its own transaction."""
        with self.transaction() as s:
            return self.append(s, actor, action, target, detail)

    def entries(self, action: str | None = None) -> list[AuditEntry]:
        q = select(AuditRow).order_by(AuditRow.seq)
        if action is not None:
            q = q.where(AuditRow.action == action)
        with Session(self.engine) as s:
            return [
                AuditEntry(r.seq, r.ts, r.actor, r.action, r.target, json.loads(r.detail))
                for r in s.scalars(q)
            ]

    def purge_through(self, s: Session, seq: int, actor: str, detail: dict[str, Any]) -> int:
        """Delete entries 1..`seq` inside `s` (a session from `transaction()`), anchor the chain
        at entry `seq` and record the purge as a new entry; how many entries went."""
        last = s.get(AuditRow, seq)
        if last is None:
            return 0
        gone = s.execute(delete(AuditRow).where(AuditRow.seq <= seq)).rowcount
        anchor = s.get(AuditAnchor, 1)
        if anchor is None:
            s.add(AuditAnchor(id=1, seq=seq, hash=last.hash, purged_at=time.time()))
        else:
            anchor.seq, anchor.hash, anchor.purged_at = seq, last.hash, time.time()
        s.flush()
        record = {**detail, "through_seq": seq, "anchor": last.hash, "entries": gone}
        self.append(s, actor, PURGE_ACTION, "audit_log", record)
        return gone

    def verify(self) -> tuple[int, Problem | None]:
        """The number of entries and the first break in the chain, if any."""
        with Session(self.engine) as s:
            rows = list(s.scalars(select(AuditRow).order_by(AuditRow.seq)))
            anchor = s.get(AuditAnchor, 1)
        if anchor is None:
            return len(rows), first_problem(rows)
        return len(rows), first_problem(rows, (anchor.seq, anchor.hash)) or _unvouched(rows, anchor)


def _unvouched(rows: list[AuditRow], anchor: AuditAnchor) -> Problem | None:
    """A removal, unless a purge entry in the chain names exactly this anchor."""
    for r in rows:
        if r.action == PURGE_ACTION:
            d = json.loads(r.detail)
            if d.get("through_seq") == anchor.seq and d.get("anchor") == anchor.hash:
                return None
    gone = "entry 1" if anchor.seq == 1 else f"entries 1-{anchor.seq}"
    return Problem(1, "removed", f"{gone} removed: no recorded purge vouches for the chain's anchor")


def first_problem(rows: list[AuditRow], start: tuple[int, str] = (0, GENESIS)) -> Problem | None:
    """Walk the chain in `seq` order from `start` (the seq and hash the chain continues: the
    genesis, or the anchor of a purge) and name the first entry that does not fit.

    A gap in `seq` is a removal; an entry that chains to the hash of some entry other than
    its predecessor was moved; an entry whose own hash no longer matches its content, or whose
    predecessor's hash is not what it chained to, was changed.
    """
    stored = {r.hash: r.seq for r in rows}
    prev_seq, prev_hash = start
    for r in rows:
        if r.seq != prev_seq + 1:
            gone = f"entry {prev_seq + 1}" if r.seq == prev_seq + 2 else f"entries {prev_seq + 1}-{r.seq - 1}"
            return Problem(
                prev_seq + 1, "removed", f"{gone} removed (the chain jumps from {prev_seq} to {r.seq})"
            )
        if r.prev_hash != prev_hash:
            moved_after = stored.get(r.prev_hash)
            if moved_after is not None and moved_after != prev_seq:
                return Problem(
                    r.seq, "reordered",
                    f"entry {r.seq} reordered: it was written after entry {moved_after}, "
                    f"not after entry {prev_seq}",
                )  # fmt: skip
            if prev_seq == start[0]:
                where = "start the chain" if prev_seq == 0 else f"continue from purged entry {prev_seq}"
                return Problem(r.seq, "changed", f"entry {r.seq} changed: it does not {where}")
            return Problem(
                prev_seq, "changed",
                f"entry {prev_seq} changed: its hash is not the one entry {r.seq} chained to",
            )  # fmt: skip
        if _hash_or_none(r) != r.hash:
            return Problem(r.seq, "changed", f"entry {r.seq} changed: its content does not match its hash")
        prev_seq, prev_hash = r.seq, r.hash
    return None
