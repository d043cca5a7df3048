"""The outbox: an alert and its "to publish" row commit in one transaction, and a publisher
thread moves the rows to the Redis stream in order, so a Redis outage delays alerts but never
loses one.

Rule alerts carry an id derived from the event, so the same event decided twice (by two owners
of a camera around a handover, see docs/scaling.md) is stored and published once.

A row is marked published only after XADD returned, so a crash in between publishes that
alert once more on restart; every entry carries the alert id so consumers drop the repeat.

With a fence (workers sharing cameras through leases, see `bondwatch.leases`), an alert is
stored only while the fence names this writer's token for the alert's camera, and never with a
token older than one already stored for that camera, in the same transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from sqlalchemy import Float, Integer, String, Text, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerts.bus import AlertBus
from alerts.store import AlertStore, Base
from alerts.types import Alert
from bondwatch.leases import FenceCheck, WriteToken

logger = logging.getLogger(__name__)

BATCH = 100
POLL_S = 0.5  # how often the publisher looks for rows written by another process
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 5.0


class OutboxRow(Base):
    __tablename__ = "alert_outbox"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(32), index=True)
    payload: Mapped[str] = mapped_column(Text)  # the alert as published (live JSON)
    created_at: Mapped[float] = mapped_column(Float)
    published_at: Mapped[float | None] = mapped_column(Float, index=True)


class AlertWriterRow(Base):
    """Which worker stored an alert, with its fencing token (only when a fence is in use)."""

    __tablename__ = "alert_writers"

    alert_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    camera: Mapped[str] = mapped_column(String(64), index=True)
    owner: Mapped[str] = mapped_column(String(128))
    token: Mapped[int] = mapped_column(Integer)


class Outbox:
    """Writes alerts with their outbox rows; `Publisher` drains the rows to the stream."""

    def __init__(self, store: AlertStore, fence: FenceCheck | None = None):
        self.store = store
        self.fence = fence
        self.written = threading.Event()

    def emit(self, alert: Alert) -> bool:
        """Store `alert` and queue it for publishing, atomically; False if it was stored before,
        or if the fence refuses this writer for the alert's camera."""
        writer: WriteToken | None = None
        if self.fence is not None:
            writer = self.fence(alert.camera)
            if writer is None:
                logger.warning("camera %s: alert %s dropped: not this worker's", alert.camera, alert.id)
                return False
        try:
            with self.store.transaction() as s:
                if writer is not None and not _fenced_in(s, alert, writer):
                    return False
                new = self.store.insert(s, alert)
                if new:
                    payload = alert.to_json(live=True)
                    s.add(OutboxRow(alert_id=alert.id, payload=payload, created_at=time.time()))
                    if writer is not None:
                        s.add(
                            AlertWriterRow(
                                alert_id=alert.id, camera=alert.camera, owner=writer.owner, token=writer.token
                            )
                        )
        except IntegrityError:
            # The same id committed by another writer meanwhile: a rule event decided by two
            # owners of its camera around a handover (alerts.departure.event_id). Stored once.
            logger.info("camera %s: alert %s stored by another writer already", alert.camera, alert.id)
            return False
        self.written.set()
        return new

    def pending(self, limit: int = BATCH) -> list[OutboxRow]:
        with Session(self.store.engine) as s:
            q = select(OutboxRow).where(OutboxRow.published_at.is_(None)).order_by(OutboxRow.seq)
            return list(s.scalars(q.limit(limit)))

    def mark_published(self, seq: int) -> None:
        with Session(self.store.engine) as s, s.begin():
            s.execute(update(OutboxRow).where(OutboxRow.seq == seq).values(published_at=time.time()))


def _fenced_in(s: Session, alert: Alert, writer: WriteToken) -> bool:
    """Whether `writer` may store `alert`: no newer token has stored one for its camera yet."""
    newest = s.scalar(select(func.max(AlertWriterRow.token)).where(AlertWriterRow.camera == alert.camera))
    if newest is not None and writer.token < newest:
        logger.warning(
            "camera %s: alert %s dropped: token %d of %s is older than token %d",
            alert.camera, alert.id, writer.token, writer.owner, newest,
        )  # fmt: skip
        return False
    return True


class Publisher(threading.Thread):
    """Publishes outbox rows in order, one XADD then one mark each, retrying with capped
    backoff while Redis is unreachable.

    `after_publish(seq)` runs between a row's XADD and its mark; tests use it to crash there.
    """

    def __init__(
        self,
        outbox: Outbox,
        bus: AlertBus,
        *,
        backoff_max_s: float = BACKOFF_MAX_S,
        after_publish: Callable[[int], None] | None = None,
    ):
        super().__init__(name="alert-outbox", daemon=True)
        self.outbox = outbox
        self.bus = bus
        self.backoff_max_s = backoff_max_s
        self.after_publish = after_publish
        self.stopping = threading.Event()
        self.published = 0

    def run(self) -> None:
        backoff = BACKOFF_MIN_S
        while not self.stopping.is_set():
            self.outbox.written.clear()
            try:
                rows = self.outbox.pending()
                for row in rows:
                    if self.stopping.is_set():
                        return
                    self.bus.publish_entry(row.alert_id, row.payload)
                    if self.after_publish is not None:
                        self.after_publish(row.seq)
                    self.outbox.mark_published(row.seq)
                    self.published += 1
                backoff = BACKOFF_MIN_S
            except redis.RedisError as e:
                logger.warning(
                    "alert stream unreachable; alerts wait in the outbox, retry in %.1f s: %s", backoff, e
                )
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            except Exception:
                logger.exception("the alert outbox could not be read; retry in %.1f s", backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            if len(rows) < BATCH:
                self.outbox.written.wait(POLL_S)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the row in flight; what is left stays in the outbox for the next start."""
        self.stopping.set()
        self.outbox.written.set()
        self.join(timeout_s)
