"""Notifications through Apprise, to real receivers: a local webhook (an http.server thread that
collects what Apprise's json:// posts) and a local SMTP server (aiosmtpd) for mailto://.

Rate limits and retry backoff are driven by an injected clock, so no test waits for a minute
to pass or asserts how long anything took.
"""

from __future__ import annotations

import base64
import email
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, get_args

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from test_dashboard import PetsLive

from alerts.bus import AlertBus
from alerts.notify import INTERRUPTED, RESENT, DeliveryRow, Messages, Notifier, NotifyError, deliveries
from alerts.store import AlertStore
from alerts.types import Alert, AlertType
from bondwatch.accounts import Accounts
from bondwatch.redis_server import RedisServer, free_port
from bondwatch.site import AlertTypeName, Site, SiteError, parse_site
from dashboard.app import create_app

T0 = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC, 2026-05-29 04:26:40 in Asia/Shanghai
SITE_YAML = """
timezone: Asia/Shanghai
cameras:
  - id: pets
    name: 维修车间东
    url: rtsp://127.0.0.1:8554/pets
zones:
  - id: lawn
    name: 保税区
    camera: pets
    kind: restricted
    polygon: [[20, 300], [400, 300], [400, 570], [20, 570]]
  - id: s01
    camera: pets
    kind: station
    station: s01
    polygon: [[500, 100], [700, 100], [700, 250], [500, 250]]
notifications:
"""


# ---------- real receivers ----------


class Webhook:
    """Collects the JSON bodies posted to it. With `hold_from` set, the request with that
    index (0-based) and every later one is recorded, then left hanging until `release`."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.posts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.hold_from: int | None = None
        self.holding = threading.Event()  # a held request has arrived
        self.release = threading.Event()
        self.server: ThreadingHTTPServer | None = None

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def start(self) -> Webhook:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hook.lock:
                    index = len(hook.posts)
                    hook.posts.append(body | {"path": self.path})
                if hook.hold_from is not None and index >= hook.hold_from:
                    hook.holding.set()
                    hook.release.wait(60)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.release.set()
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def alert_ids(self) -> list[str]:
        """The alert id of each single-alert message, in arrival order."""
        with self.lock:
            return [_alert_id(p["message"]) for p in self.posts if _alert_id(p["message"])]


def _alert_id(message: str) -> str | None:
    for line in message.splitlines():
        for label in ("告警编号: ", "Alert id: "):
            if line.startswith(label):
                return line.removeprefix(label)
    return None


class Mailbox:
    """An SMTP server on loopback (aiosmtpd) that keeps every message it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[email.message.Message] = []
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def url(self, to: str = "officer@example.com") -> str:
        return f"mailto://127.0.0.1:{self.port}?from=bondwatch@example.com&to={to}&mode=insecure"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook().start()
    yield hook
    hook.stop()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.controller.start()
    yield box
    box.controller.stop()


@pytest.fixture
def store(db_url: str) -> Iterator[AlertStore]:
    """On SQLite, then on PostgreSQL."""
    s = AlertStore(db_url)
    yield s
    s.close()


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


# ---------- builders ----------


def make_site(notifications: str) -> Site:
    return parse_site(SITE_YAML + notifications)


def make_alert(type_: str = "unauthorized_entry", i: int = 0, **kw: object) -> Alert:
    fields: dict[str, object] = {"camera": "pets", "t": 41.3 + i, "ts": T0 + i, "track": 100 + i}
    if type_ == "unauthorized_entry":
        fields |= {"zone": "lawn", "explanation": "person in 保税区 without a badge"}
    elif type_ == "unscanned_departure":
        fields |= {"zone": "s01", "station": "s01"}
    return Alert(type=type_, **(fields | kw))  # type: ignore[arg-type]


def raise_alerts(store: AlertStore, notifier: Notifier, alerts: list[Alert]) -> None:
    """Store the alerts and claim their deliveries, as the `notify` group's consumer does."""
    for a in alerts:
        store.add(a)
        with Session(store.engine) as s, s.begin():
            notifier.claim(s, a)


def states(store: AlertStore, alerts: list[Alert]) -> dict[str, dict[str, str]]:
    """alert id -> channel -> delivery state."""
    return {a.id: {d.channel: d.state for d in deliveries(store.engine, a.id)} for a in alerts}


# ---------- configuration ----------


def test_site_alert_types_match_the_alert_stage():
    assert set(get_args(AlertTypeName)) == set(get_args(AlertType))


@pytest.mark.parametrize(
    ("notifications", "error"),
    [
        ("  channels: [{id: a, url: 'json://x', rules: [intrusion]}]", "rules"),
        ("  channels: [{id: a, url: 'json://x', language: fr}]", "language"),
        ("  channels: [{id: a, url: 'json://x', secret: y}]", "secret"),
        ("  channels: [{id: a, url: 'json://x'}, {id: a, url: 'json://y'}]", "duplicate channel id(s) a"),
        ("  rate_limit: {max_per_minute: 0}", "max_per_minute"),
        ("  digest_after: 0", "digest_after"),
    ],
)
def test_notification_settings_are_strict(notifications: str, error: str):
    with pytest.raises(SiteError) as e:
        make_site(notifications)
    assert error in " ".join(e.value.errors)


def test_notification_defaults():
    site = make_site("  channels: [{id: desk, url: 'json://127.0.0.1/x'}]")
    (channel,) = site.notifications.channels
    assert (channel.rules, channel.language) == (["all"], "zh-CN")
    site = make_site("  channels: [{id: desk, url: 'json://127.0.0.1/x', rules: all}]")
    assert site.notifications.channels[0].rules == ["all"]
    assert parse_site(SITE_YAML.removesuffix("notifications:\n")).notifications.channels == []


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("wecombot://${BW_UNSET_TOKEN}", "channel 'team': environment variable BW_UNSET_TOKEN is not set"),
        ("nosuchservice://s3cr3t@host", "'team': its url (nosuchservice://...) is not an Apprise URL"),
    ],
)  # fmt: skip
def test_a_bad_channel_is_named_and_its_secret_never_shown(store: AlertStore, url: str, error: str):
    site = make_site(f"  channels: [{{id: team, url: '{url}'}}]")
    with pytest.raises(NotifyError) as e:
        Notifier(site, store.engine, Path("evidence"))
    assert error in str(e.value)
    assert "s3cr3t" not in str(e.value)


def test_url_secrets_come_from_the_environment(
    store: AlertStore, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("BW_TEST_HOOK_PORT", str(webhook.port))
    site = make_site(
        "  snapshot_wait_s: 0\n  channels: [{id: desk, url: 'json://127.0.0.1:${BW_TEST_HOOK_PORT}/hook'}]"
    )
    notifier = Notifier(site, store.engine, Path("evidence"))
    raise_alerts(store, notifier, [a := make_alert()])
    assert notifier.send_due() == 1
    assert webhook.alert_ids() == [a.id]


# ---------- routing and message text ----------


def test_each_alert_goes_to_the_channels_its_rule_routes_it_to(
    tmp_path: Path, store: AlertStore, webhook: Webhook, mailbox: Mailbox
):
    # One e-mail only: Apprise pauses 5.5 s between two messages to most services.
    site = make_site(f"""
  snapshot_wait_s: 0
  dashboard_url: https://bondwatch.example.com/
  channels:
    - id: entries
      url: '{webhook.url("entries")}'
      rules: [unauthorized_entry]
    - id: everything
      url: '{webhook.url("all")}'
      language: en
    - id: office
      url: '{mailbox.url()}'
      rules: [unscanned_departure, camera_tamper]
      language: en
""")
    notifier = Notifier(site, store.engine, tmp_path / "evidence", clock=Clock())
    entry, departure, offline = (
        make_alert("unauthorized_entry"),
        make_alert("unscanned_departure", 1),
        make_alert("camera_offline", 2, explanation="camera pets is offline: no frames"),
    )
    raise_alerts(store, notifier, [entry, departure, offline])
    assert notifier.send_due() == 5

    assert states(store, [entry, departure, offline]) == {
        entry.id: {"entries": "sent", "everything": "sent"},
        departure.id: {"everything": "sent", "office": "sent"},
        offline.id: {"everything": "sent"},
    }
    by_path = {path: [p for p in webhook.posts if p["path"] == path] for path in ("/entries", "/all")}
    (post,) = by_path["/entries"]
    assert post["title"] == "[BondWatch] 未授权进入 · 维修车间东 / 保税区"
    assert post["message"].splitlines() == [
        "类型: 未授权进入 (unauthorized_entry)",
        "摄像头: 维修车间东 (pets)",
        "区域: 保税区 (lawn)",
        "时间: 2026-05-29 04:26:40 CST",
        "说明: person in 保税区 without a badge",
        f"告警编号: {entry.id}",
        f"查看: https://bondwatch.example.com/?alert={entry.id}",
    ]
    assert [p["title"] for p in by_path["/all"]] == [
        "[BondWatch] Unauthorized entry · 维修车间东 / 保税区",
        "[BondWatch] Unscanned departure · 维修车间东 / s01",
        "[BondWatch] Camera offline · 维修车间东",
    ]
    assert by_path["/all"][2]["message"].splitlines()[:4] == [
        "Type: Camera offline (camera_offline)",
        "Camera: 维修车间东 (pets)",
        "Time: 2026-05-29 04:26:42 CST",
        "Explanation: camera pets is offline: no frames",
    ]

    (mail,) = mailbox.messages
    assert _subject(mail) == "[BondWatch] Unscanned departure · 维修车间东 / s01"
    assert mail["To"] == "officer@example.com"
    assert _text(mail).splitlines() == [
        "Type: Unscanned departure (unscanned_departure)",
        "Camera: 维修车间东 (pets)",
        "Zone: s01 (s01)",
        "Station: s01",
        "Time: 2026-05-29 04:26:41 CST",
        f"Alert id: {departure.id}",
        f"Open: https://bondwatch.example.com/?alert={departure.id}",
    ]
    assert notifier.send_due() == 0  # nothing is sent twice


def _subject(message: email.message.Message) -> str:
    return str(email.header.make_header(email.header.decode_header(message["Subject"])))


def _text(message: email.message.Message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    return "".join(
        p.get_payload(decode=True).decode(p.get_content_charset() or "utf-8")
        for p in parts
        if p.get_content_type() == "text/plain"
    )


def test_the_snapshot_is_attached_when_it_comes_in_time(tmp_path: Path, store: AlertStore, webhook: Webhook):
    site = make_site(f"""
  snapshot_wait_s: 5
  channels: [{{id: desk, url: '{webhook.url()}'}}]
""")
    clock = Clock()
    notifier = Notifier(site, store.engine, tmp_path / "evidence", clock=clock)
    with_snapshot, without = make_alert(i=0), make_alert(i=1)
    raise_alerts(store, notifier, [with_snapshot, without])
    assert notifier.send_due() == 0  # both wait for their snapshots
    jpeg = b"\xff\xd8\xff\xe0 a snapshot \xff\xd9"
    snapshot = tmp_path / "evidence" / with_snapshot.id / "snapshot.jpg"
    snapshot.parent.mkdir(parents=True)
    snapshot.write_bytes(jpeg)
    assert notifier.send_due() == 1  # the one whose snapshot came
    clock.now += 5.0
    assert notifier.send_due() == 1  # the other goes without, once the wait is over
    first, second = webhook.posts
    assert [(a["filename"], base64.b64decode(a["base64"])) for a in first["attachments"]] == [
        ("snapshot.jpg", jpeg)
    ]
    assert not second.get("attachments")
    assert webhook.alert_ids() == [with_snapshot.id, without.id]


# ---------- rate limit, digest, retries ----------


def test_a_burst_beyond_the_rate_limit_goes_out_as_a_digest(
    store: AlertStore, webhook: Webhook, tmp_path: Path
):
    site = make_site(f"""
  snapshot_wait_s: 0
  rate_limit: {{max_per_minute: 3}}
  digest_after: 5
  channels: [{{id: desk, url: '{webhook.url()}', language: en}}]
""")
    clock = Clock()
    notifier = Notifier(site, store.engine, tmp_path / "evidence", clock=clock)
    alerts = [make_alert(i=i) for i in range(20)]
    raise_alerts(store, notifier, alerts[:2])
    assert notifier.send_due() == 2  # two alone: 1 message of the minute left
    raise_alerts(store, notifier, alerts[2:4])
    assert notifier.send_due() == 1  # two more than the one left: one digest
    raise_alerts(store, notifier, alerts[4:5])
    clock.now += 30.0
    assert notifier.send_due() == 0  # the minute's 3 messages are used: it waits
    raise_alerts(store, notifier, alerts[5:12])
    clock.now += 31.0
    assert notifier.send_due() == 1  # 8 due, more than digest_after: one digest
    raise_alerts(store, notifier, alerts[12:14])
    assert notifier.send_due() == 2  # a quiet moment again: each alone

    assert len(webhook.posts) == 6
    singles = webhook.alert_ids()
    assert singles == [a.id for a in alerts[:2]] + [a.id for a in alerts[12:14]]
    digests = [p for p in webhook.posts if _alert_id(p["message"]) is None]
    assert [d["title"] for d in digests] == ["BondWatch: 2 alerts", "BondWatch: 8 alerts"]
    assert digests[1]["message"].splitlines()[:2] == [
        "8 alerts fired at once, sent as one message:",
        "- Unauthorized entry: 8",
    ]
    for digest, members in zip(digests, [alerts[2:4], alerts[4:12]], strict=True):
        assert all(a.id in digest["message"] for a in members)
    by_state = states(store, alerts[:14])
    assert [by_state[a.id]["desk"] for a in alerts[:14]] == ["sent"] * 2 + ["digested"] * 10 + ["sent"] * 2


def test_the_rate_limit_holds_across_a_restart(store: AlertStore, webhook: Webhook, tmp_path: Path):
    site = make_site(f"""
  snapshot_wait_s: 0
  rate_limit: {{max_per_minute: 2}}
  channels: [{{id: desk, url: '{webhook.url()}'}}]
""")
    clock = Clock()
    notifier = Notifier(site, store.engine, tmp_path / "evidence", clock=clock)
    for i in range(2):
        raise_alerts(store, notifier, [make_alert(i=i)])
        assert notifier.send_due() == 1
        clock.now += 5.0
    restarted = Notifier(site, store.engine, tmp_path / "evidence", clock=clock)
    raise_alerts(store, restarted, [late := make_alert(i=2)])
    assert restarted.send_due() == 0  # this minute's two messages went out before the restart
    clock.now += 50.0  # a minute after the first message
    assert restarted.send_due() == 1
    assert webhook.alert_ids()[-1] == late.id


def test_a_receiver_that_was_down_gets_the_alert_on_a_later_attempt(store: AlertStore, tmp_path: Path):
    down = Webhook()  # nothing listens on its port yet
    site = make_site(f"""
  snapshot_wait_s: 0
  retry: {{max_attempts: 5, backoff_s: 2, backoff_max_s: 5}}
  channels: [{{id: desk, url: '{down.url()}'}}]
""")
    clock = Clock()
    notifier = Notifier(site, store.engine, tmp_path / "evidence", clock=clock)
    raise_alerts(store, notifier, [alert := make_alert()])
    waits = []
    for _ in range(3):
        assert notifier.send_due() == 0
        (row,) = _rows(store)
        assert row.state == "pending" and "error" in (row.last_error or "").lower()
        waits.append(row.next_at - clock.now)
        clock.now = row.next_at - 0.5
        assert notifier.send_due() == 0  # not before its time: no attempt
        clock.now = row.next_at
    assert waits == [2.0, 4.0, 5.0]  # doubled, capped
    up = Webhook(down.port).start()
    try:
        assert notifier.send_due() == 1
        assert up.alert_ids() == [alert.id]
    finally:
        up.stop()
    (row,) = _rows(store)
    assert (row.state, row.attempts, row.last_error, row.sent_at) == ("sent", 4, None, clock.now)


def test_gives_up_after_the_last_attempt(store: AlertStore, tmp_path: Path):
    site = make_site(f"""
  snapshot_wait_s: 0
  retry: {{max_attempts: 2, backoff_s: 1}}
  channels: [{{id: desk, url: '{Webhook().url()}'}}]
""")
    clock = Clock()
    notifier = Notifier(site, store.engine, tmp_path / "evidence", clock=clock)
    raise_alerts(store, notifier, [make_alert()])
    notifier.send_due()
    clock.now += 1.0
    notifier.send_due()
    clock.now += 100.0
    assert notifier.send_due() == 0
    (row,) = _rows(store)
    assert (row.state, row.attempts) == ("failed", 2)


def test_a_send_cut_short_by_a_crash_is_never_repeated(store: AlertStore, webhook: Webhook, tmp_path: Path):
    channel = f"{{id: desk, url: '{webhook.url()}', interrupted: drop}}"
    site = make_site(f"  snapshot_wait_s: 0\n  channels: [{channel}]")
    notifier = Notifier(site, store.engine, tmp_path / "evidence")
    raise_alerts(store, notifier, [make_alert()])
    with Session(store.engine) as s, s.begin():  # what a process killed in the middle leaves
        s.get_one(DeliveryRow, 1).state = "sending"
    restarted = Notifier(site, store.engine, tmp_path / "evidence")
    assert restarted.recover() == 1
    assert restarted.send_due() == 0
    (row,) = _rows(store)
    assert (row.state, row.last_error) == ("failed", INTERRUPTED)
    assert webhook.posts == []


def test_a_webhook_send_cut_short_by_a_crash_is_sent_again(
    store: AlertStore, webhook: Webhook, tmp_path: Path
) -> None:
    site = make_site(f"  snapshot_wait_s: 0\n  channels: [{{id: desk, url: '{webhook.url()}'}}]")
    notifier = Notifier(site, store.engine, tmp_path / "evidence")
    alert = make_alert()
    raise_alerts(store, notifier, [alert])
    with Session(store.engine) as s, s.begin():  # what a process killed in the middle leaves
        s.get_one(DeliveryRow, 1).state = "sending"
    restarted = Notifier(site, store.engine, tmp_path / "evidence")
    assert restarted.recover() == 1
    assert restarted.send_due() == 1
    (row,) = _rows(store)
    assert (row.state, row.last_error) == ("sent", RESENT)
    assert webhook.alert_ids() == [alert.id]  # the id in the message lets the receiver drop a repeat


def test_a_send_still_within_its_lease_is_left_to_its_live_sender(
    store: AlertStore, webhook: Webhook, tmp_path: Path
) -> None:
    """Two notifiers share the work; one starting (and recovering) must not take over the
    other's send in progress: only a send whose lease (send_timeout_s) ran out was cut short."""
    clock = Clock()
    channel = f"{{id: desk, url: '{webhook.url()}'}}"
    site = make_site(f"  snapshot_wait_s: 0\n  send_timeout_s: 60\n  channels: [{channel}]")
    notifier = Notifier(site, store.engine, tmp_path / "evidence", clock=clock)
    raise_alerts(store, notifier, [make_alert()])
    with Session(store.engine) as s, s.begin():  # as _attempt leaves it while the POST is out
        row = s.get_one(DeliveryRow, 1)
        row.state, row.next_at = "sending", clock.now + 60
    other = Notifier(site, store.engine, tmp_path / "evidence", clock=clock)
    clock.now += 59
    assert other.recover() == 0 and _rows(store)[0].state == "sending"
    clock.now += 2
    assert other.recover() == 1 and _rows(store)[0].state == "pending"


@pytest.mark.parametrize(
    ("url", "resends"),
    [("json://h/x", True), ("forms://h/x", True), ("mailto://u:p@example.com", False),
     ("wecombot://key", False), ("dingtalk://s@t/", False)],
)  # fmt: skip
def test_only_webhooks_resend_an_interrupted_send_by_default(url: str, resends: bool):
    site = make_site(f"  channels: [{{id: a, url: '{url}'}}, {{id: b, url: '{url}', interrupted: drop}}]")
    a, b = site.notifications.channels
    assert (a.resends_interrupted(), b.resends_interrupted()) == (resends, False)


def _rows(store: AlertStore) -> list[DeliveryRow]:
    with Session(store.engine) as s:
        rows = list(s.query(DeliveryRow).order_by(DeliveryRow.id))
        s.expunge_all()
        return rows


# ---------- the API ----------


def test_the_alert_desk_sees_each_channel_of_an_alert(
    tmp_path: Path, store: AlertStore, redis_server: RedisServer, webhook: Webhook
):
    site = make_site(f"""
  snapshot_wait_s: 0
  channels:
    - {{id: desk, url: '{webhook.url()}'}}
    - {{id: down, url: '{Webhook().url()}'}}
    - {{id: departures, url: '{webhook.url()}', rules: [unscanned_departure]}}
""")
    notifier = Notifier(site, store.engine, tmp_path / "evidence", clock=Clock())
    raise_alerts(store, notifier, [alert := make_alert()])
    notifier.send_due()
    accounts = Accounts(f"sqlite:///{tmp_path / 'accounts.db'}")
    accounts.add("li", "officer", "officer-pass-1")
    app = create_app(PetsLive(site, n_frames=1), store, AlertBus(redis_server.url), accounts, title="t")
    with TestClient(app) as client:
        assert client.get(f"/api/alerts/{alert.id}/deliveries").status_code == 401
        assert client.post("/api/login", json={"name": "li", "password": "officer-pass-1"}).status_code == 200
        res = client.get(f"/api/alerts/{alert.id}/deliveries")
        assert res.status_code == 200, res.text
        desk, down = res.json()
        assert desk == {
            "channel": "desk", "state": "sent", "attempts": 1, "last_error": None,
            "sent_at": "2026-05-28T20:26:40.000+00:00",
        }  # fmt: skip
        assert (down["channel"], down["state"], down["attempts"]) == ("down", "pending", 1)
        assert down["sent_at"] is None
        assert "error" in down["last_error"].lower()
        assert client.get("/api/alerts/nosuchalert/deliveries").status_code == 404


def test_a_chinese_channel_reads_the_explanation_in_chinese():
    messages = Messages(make_site("  channels: []\n"), None)
    alert = make_alert("camera_offline", explanation="camera pets is offline: no frames")
    assert "说明: 摄像头 pets 离线：没有画面" in messages.single(alert, "zh-CN")[1].splitlines()
    assert "Explanation: camera pets is offline: no frames" in messages.single(alert, "en")[1].splitlines()
