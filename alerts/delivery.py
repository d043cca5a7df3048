"""Reading the alert stream with a Redis consumer group, so that every alert is handled at least
once by each purpose (a group such as `notify`), whatever Redis or the consumer does.

An entry is acknowledged (XACK) only after its work and a "consumed" row committed in one
database transaction; a repeat of the same alert id (a publisher restart, a redelivery) finds
that row and is only acknowledged. Entries a crashed consumer left pending are claimed
(XAUTOCLAIM) after `claim_idle_s`. Redis may come back empty (no persistence): the group is
then recreated, and the database, not the stream, says which published alerts the group has
not consumed yet, so those are handled from their outbox rows.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from sqlalchemy import Float, Integer, String, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.schema import Table

from alerts.bus import ALERT_STREAM
from alerts.outbox import OutboxRow
from alerts.store import AlertStore, Base
from alerts.types import Alert

logger = logging.getLogger(__name__)

BATCH = 100
BLOCK_MS = 1000  # how long XREADGROUP waits before the loop looks at `stopping` again
CLAIM_IDLE_S = 30.0  # an entry pending this long under another consumer is taken over
CLAIM_EVERY_S = 5.0
# A new group handles the alerts raised this long before it was first registered: a consumer
# that starts a little after the service misses nothing, and one added to an old installation
# does not replay its history.
LOOKBACK_S = 3600.0
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 5.0

# The work done for one alert, inside the transaction that also records it as consumed.
Handler = Callable[[Session, Alert], None]


class ConsumedRow(Base):
    """One per (group, alert): the group's work for that alert is done and committed."""

    __tablename__ = "alert_consumed"

    group_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[float] = mapped_column(Float)


class GroupRow(Base):
    """Where a group stands in the outbox: every row up to `watermark` (a seq) is consumed.

    A group starts `LOOKBACK_S` before the outbox's end when it is first registered
    (`start_seq`), so adding a notifier to a running installation never sends the past."""

    __tablename__ = "alert_consumer_groups"

    group_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    start_seq: Mapped[int] = mapped_column(Integer)
    watermark: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)


def insert_ignore(s: Session, table: Table, **values: Any) -> bool:
    """Insert a row unless its key exists; True if inserted. Atomic on SQLite and PostgreSQL,
    so two consumers racing for the same key never both win. RETURNING tells, where rowcount
    may not (psycopg reports -1 for an INSERT ... ON CONFLICT)."""
    dialect = s.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(table).values(**values).on_conflict_do_nothing().returning(*table.primary_key.columns)
    return s.execute(stmt).first() is not None


def default_consumer_name(group: str) -> str:
    """Stable across restarts on one host, so a restarted consumer first takes back its own
    pending entries without waiting for them to become idle."""
    return f"{group}@{socket.gethostname()}"


class StreamConsumer(threading.Thread):
    """Consumes the alert stream for one group, calling `handler` once per alert id."""

    def __init__(
        self,
        redis_url: str,
        store: AlertStore,
        group: str,
        handler: Handler,
        *,
        consumer: str | None = None,
        claim_idle_s: float = CLAIM_IDLE_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        block_ms: int = BLOCK_MS,
        lookback_s: float = LOOKBACK_S,
        after_handle: Callable[[str], None] | None = None,
    ):
        """`after_handle(alert_id)` runs between the commit and the XACK; tests crash there."""
        super().__init__(name=f"alert-consumer-{group}", daemon=True)
        self.store = store
        self.group = group
        self.handler = handler
        self.consumer = consumer or default_consumer_name(group)
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self.claim_every_s = min(CLAIM_EVERY_S, claim_idle_s)
        self.backoff_max_s = backoff_max_s
        self.block_ms = block_ms
        self.lookback_s = lookback_s
        self.after_handle = after_handle
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=block_ms / 1000 + 5)
        self.stopping = threading.Event()
        self.handled = 0  # alerts whose work this consumer did (repeats excluded)
        self.repeats = 0  # entries acknowledged without work: the alert was consumed before
        self.start_seq = 0

    def start(self) -> None:
        """Registers the group in the database first, so that every alert raised after this
        call is the group's to handle, however late the thread reaches Redis."""
        self.start_seq = self._register()
        super().start()

    def run(self) -> None:
        backoff = BACKOFF_MIN_S
        ready = False
        own_pending = True
        next_claim = 0.0
        while not self.stopping.is_set():
            try:
                if not ready:
                    self.prepare()
                    ready, own_pending = True, True
                if own_pending:
                    # Entries delivered to this consumer name before a crash come first.
                    entries = self._read("0", block_ms=None)
                    own_pending = bool(entries)
                else:
                    entries = self._read(">", block_ms=self.block_ms)
                self._process(entries)
                if time.monotonic() >= next_claim:
                    self._process(self._claim())
                    next_claim = time.monotonic() + self.claim_every_s
                backoff = BACKOFF_MIN_S
            except redis.ResponseError as e:
                if not str(e).startswith("NOGROUP"):
                    logger.error("Redis refused a command of %s; retry in %.1f s: %s", self.group, backoff, e)
                    self.stopping.wait(backoff)
                    backoff = min(backoff * 2, self.backoff_max_s)
                else:
                    logger.warning("consumer group %s is gone (Redis restarted empty)", self.group)
                ready = False
            except redis.RedisError as e:
                logger.warning("alert stream unreachable for %s; retry in %.1f s: %s", self.group, backoff, e)
                ready = False
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
            except Exception:
                logger.exception("consuming alerts for %s failed; retry in %.1f s", self.group, backoff)
                own_pending = True  # what was not acknowledged is read again
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)

    def prepare(self) -> None:
        """Make sure the group exists in Redis and the database, then handle every published
        alert the stream may no longer hold (Redis restarted empty, or the stream trimmed)."""
        self.start_seq = self._register()
        try:
            # From the stream's start: what the group consumed before, or what was raised before
            # it existed (seq <= start_seq), is only acknowledged.
            self.redis.xgroup_create(ALERT_STREAM, self.group, id="0", mkstream=True)
            logger.info("created consumer group %s on %s", self.group, ALERT_STREAM)
        except redis.ResponseError as e:
            if not str(e).startswith("BUSYGROUP"):
                raise
        self.backfill()

    def backfill(self) -> int:
        """Handle published outbox rows after the group's watermark that it has not consumed;
        returns how many there were. Then moves the watermark up to the first gap."""
        n = 0
        while not self.stopping.is_set():
            with Session(self.store.engine) as s:
                watermark = self._watermark(s)
                rows = s.execute(
                    select(OutboxRow.seq, OutboxRow.alert_id, OutboxRow.payload)
                    .where(
                        OutboxRow.seq > watermark,
                        OutboxRow.published_at.is_not(None),
                        ~select(ConsumedRow.alert_id)
                        .where(
                            ConsumedRow.group_name == self.group,
                            ConsumedRow.alert_id == OutboxRow.alert_id,
                        )
                        .exists(),
                    )
                    .order_by(OutboxRow.seq)
                    .limit(BATCH)
                ).all()
            for _seq, alert_id, payload in rows:
                self.handle(alert_id, payload)
            n += len(rows)
            if len(rows) < BATCH:
                break
        if n:
            logger.warning("handled %d published alerts for %s from the database", n, self.group)
        self._advance_watermark()
        return n

    def handle(self, alert_id: str, payload: str) -> bool:
        """Do the group's work for one alert unless it was done before; True if done now."""
        alert = Alert.from_dict(json.loads(payload))
        with Session(self.store.engine) as s, s.begin():
            seq = s.scalar(select(OutboxRow.seq).where(OutboxRow.alert_id == alert_id).limit(1))
            if seq is not None and seq <= self.start_seq:
                self.repeats += 1
                return False
            if not insert_ignore(
                s, ConsumedRow.__table__, group_name=self.group, alert_id=alert_id, at=time.time()
            ):
                self.repeats += 1
                return False
            self.handler(s, alert)
        self.handled += 1
        return True

    def _process(self, entries: list[tuple[bytes, dict[bytes, bytes] | None]]) -> None:
        for entry_id, fields in entries:
            if fields and b"id" in fields and b"alert" in fields:
                alert_id = fields[b"id"].decode()
                self.handle(alert_id, fields[b"alert"].decode())
                if self.after_handle is not None:
                    self.after_handle(alert_id)
            else:
                # Trimmed while pending (or not an alert): the outbox still has it, see backfill.
                logger.warning("entry %s on %s has no alert; acknowledged", entry_id, ALERT_STREAM)
            self.redis.xack(ALERT_STREAM, self.group, entry_id)

    def _read(self, start: str, block_ms: int | None) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
        res = self.redis.xreadgroup(
            self.group, self.consumer, {ALERT_STREAM: start}, count=BATCH, block=block_ms
        )
        return [e for _stream, entries in res or [] for e in entries]

    def _claim(self) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
        """Take over entries another consumer of the group left pending for too long."""
        claimed: list[tuple[bytes, dict[bytes, bytes] | None]] = []
        start = "0-0"
        while True:
            res = self.redis.xautoclaim(
                ALERT_STREAM, self.group, self.consumer, self.claim_idle_ms, start_id=start, count=BATCH
            )
            start = res[0].decode() if isinstance(res[0], bytes) else str(res[0])
            claimed += res[1]
            if start == "0-0" or not res[1]:
                break
        if claimed:
            logger.warning("%s took over %d entries of a stopped consumer", self.consumer, len(claimed))
        return claimed

    def _register(self) -> int:
        """Record the group in the database unless it is there; returns its `start_seq`."""
        with Session(self.store.engine) as s, s.begin():
            since = time.time() - self.lookback_s
            end = s.scalar(select(func.max(OutboxRow.seq)).where(OutboxRow.created_at < since)) or 0
            insert_ignore(
                s, GroupRow.__table__, group_name=self.group, start_seq=end, watermark=end,
                created_at=time.time(),
            )  # fmt: skip
            return s.get_one(GroupRow, self.group).start_seq

    def _watermark(self, s: Session) -> int:
        row = s.get(GroupRow, self.group)
        return row.watermark if row is not None else 0

    def _advance_watermark(self) -> None:
        """Up to just before the first row not consumed yet, so later backfills stay short."""
        with Session(self.store.engine) as s, s.begin():
            row = s.get(GroupRow, self.group)
            if row is None:
                return
            gap = s.scalar(
                select(func.min(OutboxRow.seq)).where(
                    OutboxRow.seq > row.watermark,
                    ~select(ConsumedRow.alert_id)
                    .where(ConsumedRow.group_name == self.group, ConsumedRow.alert_id == OutboxRow.alert_id)
                    .exists(),
                )
            )
            end = gap - 1 if gap is not None else s.scalar(select(func.max(OutboxRow.seq)))
            if end is not None and end > row.watermark:
                row.watermark = end

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the entry in flight; what is unacknowledged is read again on the next start."""
        self.stopping.set()
        self.join(timeout_s)
        self.redis.close()
