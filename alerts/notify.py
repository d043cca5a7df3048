"""Notifications through Apprise (webhook, e-mail, WeCom, DingTalk, Feishu, ...): the only
module that talks to Apprise.

The consumer of the `notify` group claims one row per (alert, channel) in the transaction that
records the alert as consumed, and the sender marks a row `sending` before it calls Apprise. A
row found `sending` after a crash may or may not have reached its channel, and nothing can tell
which: on a webhook (a program, which drops a repeat by the alert id in the message) it is sent
again, at least once; on a channel people read (e-mail, chat) it is marked `failed` and never
repeated, at most once (`interrupted:` of the channel overrides either). Failed attempts are
retried with exponential backoff; when more alerts are due on a channel than its rate limit or
`digest_after` allow, they go out as one digest.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import apprise
from sqlalchemy import Float, Integer, String, Text, UniqueConstraint, case, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerts.delivery import CLAIM_IDLE_S, StreamConsumer, insert_ignore
from alerts.explain import explain
from alerts.store import AlertRow, AlertStore, Base
from alerts.types import TYPE_LABELS, Alert
from bondwatch.site import NotifyChannel, Site

logger = logging.getLogger(__name__)

GROUP = "notify"
POLL_S = 0.5  # how often the sender looks for due deliveries
RECOVER_EVERY_S = 5.0  # how often it looks for sends a crashed process left
BATCH = 500
DIGEST_LINES = 30  # alerts listed one per line in a digest; the rest are counted
ERROR_CHARS = 500
INTERRUPTED = "interrupted while sending (the process stopped); not repeated, the channel may have it"
RESENT = "interrupted while sending (the process stopped); sent again, the receiver may get it twice"

DeliveryState = Literal["pending", "sending", "sent", "failed", "digested"]


class NotifyError(Exception):
    """A notification channel that cannot be used as configured."""


class DeliveryRow(Base):
    """One per (alert, channel), inserted before anything is sent: its existence is the claim."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (UniqueConstraint("alert_id", "channel", name="uq_delivery_alert_channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(32), index=True)
    channel: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[float] = mapped_column(Float)
    next_at: Mapped[float] = mapped_column(Float)  # when the next attempt is due
    sent_at: Mapped[float | None] = mapped_column(Float)


@dataclass(frozen=True)
class Delivery:
    alert_id: str
    channel: str
    state: DeliveryState
    attempts: int
    last_error: str | None
    sent_at: float | None


def deliveries(engine: Engine, alert_id: str) -> list[Delivery]:
    """The delivery rows of one alert, by channel."""
    with Session(engine) as s:
        rows = s.scalars(
            select(DeliveryRow).where(DeliveryRow.alert_id == alert_id).order_by(DeliveryRow.channel)
        )
        return [
            Delivery(r.alert_id, r.channel, r.state, r.attempts, r.last_error, r.sent_at)  # type: ignore[arg-type]
            for r in rows
        ]


# ---------- message text ----------

WORDS = {
    "zh-CN": {
        "type": "类型", "camera": "摄像头", "zone": "区域", "station": "工位", "time": "时间",
        "explanation": "说明", "id": "告警编号", "link": "查看", "video_time": "视频时间",
        "digest_title": "BondWatch：{n} 条告警", "digest_head": "{n} 条告警同时触发，合并为一条消息：",
        "more": "……另有 {n} 条",
    },
    "en": {
        "type": "Type", "camera": "Camera", "zone": "Zone", "station": "Station", "time": "Time",
        "explanation": "Explanation", "id": "Alert id", "link": "Open", "video_time": "video time",
        "digest_title": "BondWatch: {n} alerts",
        "digest_head": "{n} alerts fired at once, sent as one message:", "more": "... and {n} more",
    },
}  # fmt: skip


class Messages:
    """The text of a message, in the channel's language, with names and times of the site."""

    def __init__(self, site: Site, dashboard_url: str | None):
        self.zone = ZoneInfo(site.timezone)
        self.cameras = {c.id: c.name or c.id for c in site.cameras}
        self.zones = {z.id: z.name or z.id for z in site.zones}
        self.dashboard_url = dashboard_url.rstrip("/") if dashboard_url else None

    def when(self, alert: Alert, lang: str) -> str:
        if alert.ts is None:
            return f"{WORDS[lang]['video_time']} {alert.t:.1f} s"
        return datetime.fromtimestamp(alert.ts, self.zone).strftime("%Y-%m-%d %H:%M:%S %Z")

    def where(self, alert: Alert) -> str:
        place = self.zones.get(alert.zone, alert.zone) if alert.zone else None
        return " / ".join(x for x in (self.cameras.get(alert.camera, alert.camera), place) if x)

    def link(self, alert_id: str) -> str | None:
        return f"{self.dashboard_url}/?alert={alert_id}" if self.dashboard_url else None

    def single(self, alert: Alert, lang: str) -> tuple[str, str]:
        w = WORDS[lang]
        label = TYPE_LABELS[lang].get(alert.type, alert.type)
        lines = [
            f"{w['type']}: {label} ({alert.type})",
            f"{w['camera']}: {self.cameras.get(alert.camera, alert.camera)} ({alert.camera})",
        ]
        if alert.zone:
            lines.append(f"{w['zone']}: {self.zones.get(alert.zone, alert.zone)} ({alert.zone})")
        if alert.station:
            lines.append(f"{w['station']}: {alert.station}")
        lines.append(f"{w['time']}: {self.when(alert, lang)}")
        if alert.explanation:
            lines.append(f"{w['explanation']}: {explain(alert.explanation, lang)}")
        lines.append(f"{w['id']}: {alert.id}")
        if link := self.link(alert.id):
            lines.append(f"{w['link']}: {link}")
        return f"[BondWatch] {label} · {self.where(alert)}", "\n".join(lines)

    def digest(self, alerts: list[Alert], lang: str) -> tuple[str, str]:
        w = WORDS[lang]
        counts = collections.Counter(a.type for a in alerts)
        lines = [w["digest_head"].format(n=len(alerts))]
        lines += [f"- {TYPE_LABELS[lang].get(t, t)}: {n}" for t, n in counts.most_common()]
        lines.append("")
        for a in alerts[:DIGEST_LINES]:
            label = TYPE_LABELS[lang].get(a.type, a.type)
            lines.append(f"{self.when(a, lang)}  {label}  {self.where(a)}  {w['id']} {a.id}")
        if len(alerts) > DIGEST_LINES:
            lines.append(w["more"].format(n=len(alerts) - DIGEST_LINES))
        if self.dashboard_url:
            lines.append(f"{w['link']}: {self.dashboard_url}/")
        return w["digest_title"].format(n=len(alerts)), "\n".join(lines)


# ---------- channels ----------


def expand_url(channel: NotifyChannel) -> str:
    """The channel's URL with ${VAR} taken from the environment; errors name the variable,
    never the URL, which may hold a token."""
    try:
        return string.Template(channel.url).substitute(os.environ)
    except KeyError as e:
        raise NotifyError(
            f"notification channel {channel.id!r}: environment variable {e.args[0]} is not set"
        ) from None
    except ValueError:
        raise NotifyError(f"notification channel {channel.id!r}: a '$' in its url is not ${{VAR}}") from None


class Channel:
    """One configured channel: its routing and its Apprise object."""

    def __init__(self, config: NotifyChannel):
        self.config = config
        self.id = config.id
        self.apprise = apprise.Apprise()
        if not self.apprise.add(expand_url(config)):
            scheme = re.split(r"://", config.url, maxsplit=1)[0]
            raise NotifyError(
                f"notification channel {config.id!r}: its url ({scheme}://...) is not an Apprise URL"
                " that this installation supports"
            )

    def wants(self, alert: Alert) -> bool:
        rules = self.config.rules
        return "all" in rules or alert.type in rules

    def send(self, title: str, body: str, attachment: Path | None) -> str | None:
        """Send one message; None on success, else what went wrong (Apprise's warnings)."""
        attach = apprise.AppriseAttachment(str(attachment)) if attachment is not None else None
        try:
            # Plain text: read as HTML (Apprise's default for e-mail), the lines would run together.
            result = self.apprise.notify(
                body=body, title=title, attach=attach, body_format=apprise.NotifyFormat.TEXT
            )
        except Exception as e:  # a plugin bug must not stop the sender
            return f"{type(e).__name__}: {e}"[:ERROR_CHARS]
        if result:
            return None
        problems = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR", "CRITICAL")]
        return ("; ".join(problems) or "the channel refused the message")[:ERROR_CHARS]


class Notifier:
    """Claims deliveries for each alert (`claim`, the `notify` group's handler) and sends the
    due ones (`send_due`, called by `Sender`)."""

    def __init__(
        self,
        site: Site,
        engine: Engine,
        evidence_dir: Path,
        *,
        dashboard_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = site.notifications
        self.engine = engine
        self.evidence_dir = evidence_dir
        self.channels = [Channel(c) for c in self.settings.channels]
        self.messages = Messages(site, self.settings.dashboard_url or dashboard_url)
        self.clock = clock
        self.sent_times: dict[str, collections.deque[float]] = {
            c.id: collections.deque() for c in self.channels
        }
        self._count_recent_messages()
        self.wake = {c.id: threading.Event() for c in self.channels}  # set when rows are claimed

    def _count_recent_messages(self) -> None:
        """Messages of the last minute count against the rate limit after a restart too, so a
        service that restarts again and again cannot flood a channel."""
        with Session(self.engine) as s:
            recent = s.execute(
                select(DeliveryRow.channel, DeliveryRow.sent_at)
                .where(DeliveryRow.sent_at > self.clock() - 60.0)
                .distinct()  # the rows of one digest share its time
                .order_by(DeliveryRow.sent_at)
            ).all()
        for channel, at in recent:
            if channel in self.sent_times:
                self.sent_times[channel].append(at)

    def claim(self, s: Session, alert: Alert) -> None:
        """One pending row per channel that routes `alert`, in the caller's transaction."""
        now = self.clock()
        for ch in self.channels:
            if ch.wants(alert):
                insert_ignore(
                    s, DeliveryRow.__table__, alert_id=alert.id, channel=ch.id, state="pending",
                    attempts=0, claimed_at=now, next_at=now,
                )  # fmt: skip
                self.wake[ch.id].set()

    def recover(self, channel: Channel | None = None) -> int:
        """Deliveries a stopped process left `sending` on `channel` (default: every channel) —
        their send lease, `send_timeout_s`, ran out; a live sender's are left alone: due again
        on the channels that resend them, failed on the others; returns how many."""
        now = self.clock()
        channels = [channel] if channel else self.channels
        resend = [ch.id for ch in channels if ch.config.resends_interrupted()]
        stale = (
            DeliveryRow.state == "sending",
            DeliveryRow.next_at <= now,
            DeliveryRow.channel.in_([ch.id for ch in channels]),
        )
        with Session(self.engine) as s, s.begin():
            again = s.execute(
                update(DeliveryRow)
                .where(*stale, DeliveryRow.channel.in_(resend))
                .values(state="pending", next_at=now, last_error=RESENT)
                .returning(DeliveryRow.id)
            ).all()
            dropped = s.execute(
                update(DeliveryRow)
                .where(*stale)
                .values(state="failed", last_error=INTERRUPTED)
                .returning(DeliveryRow.id)
            ).all()
        if again:
            logger.warning("%d notifications were interrupted while sending; sending them again", len(again))
        if dropped:
            logger.warning("%d notifications were interrupted while sending; not repeated", len(dropped))
        return len(again) + len(dropped)

    def snapshot(self, alert_id: str) -> Path | None:
        path = self.evidence_dir / alert_id / "snapshot.jpg"
        return path if path.is_file() else None

    def send_due(self, channel: Channel | None = None) -> int:
        """Send what is due on `channel` (default: every channel); returns the number of
        messages sent."""
        return sum(self._send_channel(ch) for ch in ([channel] if channel else self.channels))

    def _budget(self, channel: str, now: float) -> int:
        times = self.sent_times[channel]
        while times and times[0] <= now - 60.0:
            times.popleft()
        return self.settings.rate_limit.max_per_minute - len(times)

    def _send_channel(self, ch: Channel) -> int:
        now = self.clock()
        budget = self._budget(ch.id, now)
        if budget <= 0:
            return 0
        with Session(self.engine) as s:
            due = s.execute(
                select(DeliveryRow.id, DeliveryRow.claimed_at, AlertRow)
                .join(AlertRow, AlertRow.id == DeliveryRow.alert_id)
                .where(
                    DeliveryRow.channel == ch.id,
                    DeliveryRow.state == "pending",
                    DeliveryRow.next_at <= now,
                )
                .order_by(DeliveryRow.claimed_at, DeliveryRow.id)
                .limit(BATCH)
            ).all()
            rows = [(row_id, claimed_at, a.to_alert()) for row_id, claimed_at, a in due]
        if len(rows) > self.settings.digest_after or len(rows) > budget:
            return self._attempt(ch, [(r, a) for r, _, a in rows], digest=True)
        sent = 0
        wait_s = self.settings.snapshot_wait_s
        for row_id, claimed_at, alert in rows:
            snapshot = self.snapshot(alert.id)
            if snapshot is None and now < claimed_at + wait_s:
                continue  # the snapshot may still come
            sent += self._attempt(ch, [(row_id, alert)], digest=False, snapshot=snapshot)
        return sent

    def _attempt(
        self, ch: Channel, rows: list[tuple[int, Alert]], *, digest: bool, snapshot: Path | None = None
    ) -> int:
        """One message for `rows`; each row is taken (pending -> sending) before anything is
        sent, so another sender never sends it too. Returns 1 if a message went out."""
        with Session(self.engine) as s, s.begin():
            mine = [
                (row_id, alert)
                for row_id, alert in rows
                if s.execute(
                    update(DeliveryRow)
                    .where(DeliveryRow.id == row_id, DeliveryRow.state == "pending")
                    # While sending, `next_at` is the end of the send's lease (see recover).
                    .values(
                        state="sending",
                        attempts=DeliveryRow.attempts + 1,
                        next_at=self.clock() + self.settings.send_timeout_s,
                    )
                    .returning(DeliveryRow.id)
                ).first()
            ]
        if not mine:
            return 0
        lang = ch.config.language
        if digest and len(mine) > 1:
            title, body = self.messages.digest([a for _, a in mine], lang)
            error = ch.send(title, body, None)
            done: DeliveryState = "digested"
        else:
            title, body = self.messages.single(mine[0][1], lang)
            error = ch.send(title, body, snapshot)
            done = "sent"
        now = self.clock()
        ids = [row_id for row_id, _ in mine]
        with Session(self.engine) as s, s.begin():
            if error is None:
                s.execute(
                    update(DeliveryRow)
                    .where(DeliveryRow.id.in_(ids))
                    # A resent row keeps saying so: its receiver may have it twice.
                    .values(
                        state=done, sent_at=now, last_error=case((DeliveryRow.last_error == RESENT, RESENT))
                    )
                )
            else:
                self._failed(s, ids, error, now)
        if error is None:
            self.sent_times[ch.id].append(now)
            logger.info("notified %s of %d alert(s)", ch.id, len(mine))
            return 1
        logger.warning("notifying %s failed: %s", ch.id, error)
        return 0

    def _failed(self, s: Session, ids: list[int], error: str, now: float) -> None:
        """Back to pending with a later `next_at`, or failed after the last attempt."""
        retry = self.settings.retry
        for row in s.scalars(select(DeliveryRow).where(DeliveryRow.id.in_(ids))):
            row.last_error = error
            if row.attempts >= retry.max_attempts:
                row.state = "failed"
            else:
                row.state = "pending"
                row.next_at = now + min(retry.backoff_s * 2 ** (row.attempts - 1), retry.backoff_max_s)


class Sender(threading.Thread):
    """Sends the due deliveries of one channel until stopped. One thread per channel, because
    a send can block for seconds (a receiver that times out, Apprise's pause between two
    messages to most services) and must not hold up the other channels."""

    def __init__(self, notifier: Notifier, channel: Channel):
        super().__init__(name=f"notify-{channel.id}", daemon=True)
        self.notifier = notifier
        self.channel = channel
        self.wake = notifier.wake[channel.id]
        self.stopping = threading.Event()

    def run(self) -> None:
        recovered = 0.0
        while not self.stopping.is_set():
            self.wake.clear()
            try:
                if time.monotonic() - recovered >= RECOVER_EVERY_S:
                    recovered = time.monotonic()
                    # Sends a crashed process left, once their lease ends. Only this channel's:
                    # its own send in progress is on this thread, so never taken for a crash.
                    self.notifier.recover(self.channel)
                self.notifier.send_due(self.channel)
            except Exception:
                logger.exception("sending notifications to %s failed; retrying", self.channel.id)
            self.wake.wait(POLL_S)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()


class NotifyService:
    """The `notify` role: a consumer of the alert stream and a sender, as threads of either
    `bondwatch run` or `bondwatch notify`."""

    def __init__(
        self,
        site: Site,
        store: AlertStore,
        redis_url: str,
        data_dir: Path,
        *,
        dashboard_url: str | None = None,
        consumer: str | None = None,
        claim_idle_s: float = CLAIM_IDLE_S,
    ):
        self.notifier = Notifier(site, store.engine, data_dir / "evidence", dashboard_url=dashboard_url)
        self.consumer = StreamConsumer(
            redis_url, store, GROUP, self.notifier.claim, consumer=consumer, claim_idle_s=claim_idle_s
        )
        self.senders = [Sender(self.notifier, ch) for ch in self.notifier.channels]

    def start(self) -> None:
        """Sends left half-done by a previous process are settled before anything is sent."""
        self.notifier.recover()
        for sender in self.senders:
            sender.start()
        self.consumer.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Consumer first (what it has not acknowledged is read again), then the senders,
        each finishing the message in flight within `timeout_s` in all."""
        self.consumer.stop(timeout_s)
        deadline = time.monotonic() + timeout_s
        for sender in self.senders:
            sender.stop()
        for sender in self.senders:
            sender.join(max(0.0, deadline - time.monotonic()))
