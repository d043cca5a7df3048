"""Alert delivery through a Redis consumer group loses nothing and notifies no channel twice.

Real parts: redis-server processes killed and restarted empty on the same port in the middle
of a burst, consumers killed with SIGKILL (one between its commit and its XACK, one
`bondwatch notify` process in the middle of an HTTP post), and a local webhook receiver.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import wait_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_notify import SITE_YAML, Webhook, make_alert

from alerts.bus import ALERT_STREAM, AlertBus
from alerts.delivery import ConsumedRow, StreamConsumer
from alerts.notify import GROUP, INTERRUPTED, RESENT, DeliveryRow, Notifier, NotifyService
from alerts.outbox import Outbox, Publisher
from alerts.store import AlertStore
from alerts.types import Alert
from bondwatch.redis_server import RedisServer
from bondwatch.site import parse_site

ROOT = Path(__file__).resolve().parents[1]


def channel_yaml(webhook: Webhook, interrupted: str | None = None, send_timeout_s: float = 120.0) -> str:
    """One webhook channel that sends every alert alone, at once, retrying quickly."""
    policy = f", interrupted: {interrupted}" if interrupted else ""
    return f"""
  snapshot_wait_s: 0
  digest_after: 10000
  rate_limit: {{max_per_minute: 10000}}
  retry: {{max_attempts: 10, backoff_s: 0.2, backoff_max_s: 1}}
  send_timeout_s: {send_timeout_s}
  channels: [{{id: desk, url: '{webhook.url()}'{policy}}}]
"""


@pytest.fixture
def store(db_url: str) -> Iterator[AlertStore]:
    """On SQLite, then on PostgreSQL."""
    s = AlertStore(db_url)
    yield s
    s.close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook().start()
    yield hook
    hook.stop()


def consumed(store: AlertStore) -> set[str]:
    with Session(store.engine) as s:
        return set(s.scalars(select(ConsumedRow.alert_id).where(ConsumedRow.group_name == GROUP)))


def delivery_states(store: AlertStore) -> dict[str, list[str]]:
    """alert id -> the states of its delivery rows (one per channel)."""
    with Session(store.engine) as s:
        found: dict[str, list[str]] = {}
        for alert_id, state in s.execute(select(DeliveryRow.alert_id, DeliveryRow.state)):
            found.setdefault(alert_id, []).append(state)
        return found


def pending_entries(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.xpending(ALERT_STREAM, GROUP)["pending"])
    finally:
        client.close()


def publish_all(store: AlertStore, outbox: Outbox, bus: AlertBus) -> None:
    """Run a publisher until the outbox is empty."""
    publisher = Publisher(outbox, bus)
    publisher.start()
    try:
        assert wait_for(lambda: not outbox.pending(), 60), "the outbox did not drain"
    finally:
        publisher.stop()


def claimer(store: AlertStore, url: str, webhook: Webhook, **kw: object) -> StreamConsumer:
    """A `notify` consumer that claims deliveries (no sender: nothing is sent)."""
    notifier = Notifier(parse_site(SITE_YAML + channel_yaml(webhook)), store.engine, Path("evidence"))
    return StreamConsumer(url, store, GROUP, notifier.claim, **kw)  # type: ignore[arg-type]


# ---------- the group and the database ----------


@pytest.mark.parametrize(
    ("lookback_s", "earlier_handled"),
    [(0.0, False), (3600.0, True)],
    ids=["older-than-lookback", "within-lookback"],
)
def test_a_new_group_handles_what_comes_after_it_and_what_came_just_before(
    store: AlertStore, redis_server: RedisServer, webhook: Webhook, lookback_s: float, earlier_handled: bool
):
    outbox, bus = Outbox(store), AlertBus(redis_server.url)
    earlier = [make_alert(i=i) for i in range(3)]
    for a in earlier:
        outbox.emit(a)
    publish_all(store, outbox, bus)
    consumer = claimer(store, redis_server.url, webhook, lookback_s=lookback_s)
    consumer.start()  # the group is registered: what comes from now on is its to handle
    try:
        later = [make_alert(i=10 + i) for i in range(4)]
        for a in later:
            outbox.emit(a)
        publish_all(store, outbox, bus)
        expected = {a.id for a in later + earlier * earlier_handled}
        assert wait_for(lambda: consumed(store) == expected, 30)
        # Every entry on the stream is read, the older ones only acknowledged.
        assert wait_for(lambda: pending_entries(redis_server.url) == 0, 10)
    finally:
        consumer.stop()
        bus.close()
    assert set(delivery_states(store)) == expected


def test_published_alerts_that_redis_lost_come_from_the_database(
    tmp_path: Path, store: AlertStore, webhook: Webhook
):
    server = RedisServer(tmp_path / "redis", persist=False).start()
    consumer = claimer(store, server.url, webhook)
    consumer.prepare()  # the group exists, as in a service that ran before
    outbox, bus = Outbox(store), AlertBus(server.url)
    alerts = [make_alert(i=i) for i in range(10)]
    for a in alerts:
        outbox.emit(a)
    publish_all(store, outbox, bus)
    server.kill()  # the stream and the group go with it: no persistence
    server = RedisServer(tmp_path / "redis", port=server.port, persist=False).start()
    consumer.start()
    try:
        assert wait_for(lambda: consumed(store) == {a.id for a in alerts}, 30)
        assert consumer.handled == 10
    finally:
        consumer.stop()
        bus.close()
        server.stop()


# ---------- Redis restarted during a burst ----------


def test_redis_restarted_twice_during_a_burst_loses_no_alert_and_repeats_none(
    tmp_path: Path, store: AlertStore, webhook: Webhook
):
    server = RedisServer(tmp_path / "redis", persist=False).start()
    site = parse_site(SITE_YAML + channel_yaml(webhook))
    outbox, bus = Outbox(store), AlertBus(server.url)
    publisher = Publisher(outbox, bus, backoff_max_s=0.5)
    service = NotifyService(site, store, server.url, tmp_path, claim_idle_s=1.0)
    publisher.start()
    service.start()
    alerts: list[Alert] = []
    try:
        for restart in range(3):
            for i in range(40):
                alerts.append(make_alert(i=len(alerts)))
                outbox.emit(alerts[-1])
                if i == 20 and restart < 2:
                    server.kill()  # mid-burst; the rest of the burst is raised while it is down
            if restart < 2:
                server = RedisServer(tmp_path / "redis", port=server.port, persist=False).start()
        ids = [a.id for a in alerts]
        assert wait_for(lambda: len(webhook.alert_ids()) >= len(ids), 120), (
            f"{len(webhook.alert_ids())} of {len(ids)} notified"
        )
        assert sorted(webhook.alert_ids()) == sorted(ids)  # every alert, each once
        assert consumed(store) == set(ids)
        assert wait_for(lambda: delivery_states(store) == {i: ["sent"] for i in ids}, 10)
    finally:
        service.stop()
        publisher.stop()
        bus.close()
        server.stop()


# ---------- consumers killed ----------

CRASHING_CONSUMER = """
import os, signal, sys
from pathlib import Path
from alerts.delivery import StreamConsumer
from alerts.notify import GROUP, Notifier
from alerts.store import AlertStore
from bondwatch.site import load_site

store = AlertStore(sys.argv[1])
notifier = Notifier(load_site(sys.argv[3]), store.engine, Path("evidence"))
handled = 0

def crash(alert_id):
    global handled
    handled += 1
    if handled == int(sys.argv[4]):
        os.kill(os.getpid(), signal.SIGKILL)  # committed, not acknowledged

StreamConsumer(sys.argv[2], store, GROUP, notifier.claim, consumer="notify@test", after_handle=crash).run()
"""


def test_a_consumer_killed_before_its_ack_is_redelivered_and_claims_nothing_twice(
    tmp_path: Path, db_url: str, store: AlertStore, redis_server: RedisServer, webhook: Webhook
):
    site_file = tmp_path / "site.yaml"
    site_file.write_text(SITE_YAML + channel_yaml(webhook), encoding="utf-8")
    claimer(store, redis_server.url, webhook, consumer="notify@test").prepare()
    bus = AlertBus(redis_server.url)
    alerts = [make_alert(i=i) for i in range(20)]
    for a in alerts:  # stored and on the stream, but not in the outbox: only Redis can deliver them
        store.add(a)
        bus.publish(a)
    bus.close()
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING_CONSUMER, db_url, redis_server.url, str(site_file), "8"],
        cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)}, capture_output=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert consumed(store) == {a.id for a in alerts[:8]}
    assert pending_entries(redis_server.url) == 13  # seven acknowledged; the eighth was not
    restarted = claimer(store, redis_server.url, webhook, consumer="notify@test")
    restarted.start()
    try:
        assert wait_for(lambda: consumed(store) == {a.id for a in alerts}, 30)
        assert wait_for(lambda: pending_entries(redis_server.url) == 0, 10)
    finally:
        restarted.stop()
    assert (restarted.handled, restarted.repeats) == (12, 1)  # the eighth came again: acknowledged only
    assert delivery_states(store) == {a.id: ["pending"] for a in alerts}  # one row each


def test_entries_left_by_a_vanished_consumer_are_taken_over(
    store: AlertStore, redis_server: RedisServer, webhook: Webhook
):
    claimer(store, redis_server.url, webhook).prepare()
    bus = AlertBus(redis_server.url)
    alerts = [make_alert(i=i) for i in range(5)]
    for a in alerts:
        store.add(a)
        bus.publish(a)
    bus.close()
    ghost = redis.Redis.from_url(redis_server.url)
    got = ghost.xreadgroup(GROUP, "ghost", {ALERT_STREAM: ">"}, count=100)
    ghost.close()
    assert len(got[0][1]) == 5  # read by a consumer that then disappears
    consumer = claimer(store, redis_server.url, webhook, consumer="survivor", claim_idle_s=0.3)
    consumer.start()
    try:
        assert wait_for(lambda: consumed(store) == {a.id for a in alerts}, 30)
        assert wait_for(lambda: pending_entries(redis_server.url) == 0, 10)
    finally:
        consumer.stop()


@pytest.mark.parametrize("interrupted", ["drop", None])
def test_bondwatch_notify_killed_in_the_middle_of_a_post(
    tmp_path: Path, db_url: str, store: AlertStore, redis_server: RedisServer, webhook: Webhook,
    interrupted: str | None,
):  # fmt: skip
    """`drop` never posts the interrupted alert again (at most once); a webhook by default posts
    it again (at least once: this receiver got it before the kill, so it has it twice)."""
    site_file = tmp_path / "site.yaml"
    # A short send lease: the held send of the killed process counts as cut short after 2 s.
    site_file.write_text(SITE_YAML + channel_yaml(webhook, interrupted, 2.0), encoding="utf-8")
    outbox, bus = Outbox(store), AlertBus(redis_server.url)
    alerts = [make_alert(i=i) for i in range(8)]
    webhook.hold_from = 3  # the fourth post arrives and gets no answer
    log = tmp_path / "notify.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bondwatch.cli", "notify", "--site", str(site_file),
             "--data", str(tmp_path), "--redis", redis_server.url],
            cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT), "DATABASE_URL": db_url},
            stdout=subprocess.PIPE, stderr=stderr,
        )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert b"notifying 1 channel" in proc.stdout.readline(), log.read_text()
        for a in alerts:
            outbox.emit(a)
        publish_all(store, outbox, bus)
        assert webhook.holding.wait(60), "the fourth post never came"
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
    held = webhook.alert_ids()[3]
    assert delivery_states(store)[held] == ["sending"]
    webhook.hold_from = None
    webhook.release.set()
    site = parse_site(SITE_YAML + channel_yaml(webhook, interrupted, 2.0))
    service = NotifyService(site, store, redis_server.url, tmp_path)
    service.start()
    try:
        def finished() -> bool:
            states = delivery_states(store)
            return len(states) == len(alerts) and all(s[0] in ("sent", "failed") for s in states.values())

        assert wait_for(finished, 30)
    finally:
        service.stop()
        bus.close()
    with Session(store.engine) as s:
        note = s.scalar(select(DeliveryRow.last_error).where(DeliveryRow.alert_id == held))
        assert s.scalar(select(func.count()).select_from(DeliveryRow)) == len(alerts)
    if interrupted == "drop":
        assert sorted(webhook.alert_ids()) == sorted(a.id for a in alerts)  # each posted once
        assert delivery_states(store) == {a.id: ["failed" if a.id == held else "sent"] for a in alerts}
        assert note == INTERRUPTED
    else:
        assert sorted(webhook.alert_ids()) == sorted([*(a.id for a in alerts), held])  # the held one twice
        assert delivery_states(store) == {a.id: ["sent"] for a in alerts}
        assert note == RESENT
