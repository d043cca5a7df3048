"""Alerts as cases: the lifecycle, grouping, the outbox that loses nothing, the audit trail.

Real parts: a real SQLite file and a real PostgreSQL server (each test on both), a real
redis-server stopped and restarted on the same port, a publisher process killed with SIGKILL
between XADD and its mark, the real dashboard app.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from test_dashboard import PetsLive, make_accounts, sign_in, wait_for_follower, watching

from alerts.bus import ALERT_STREAM, AlertBus
from alerts.cases import (
    GROUP_WINDOW_S,
    CaseError,
    IllegalTransition,
    MissingText,
    RoleRefused,
    decide,
)
from alerts.outbox import Outbox, Publisher
from alerts.store import AlertStore, UnknownAlert
from alerts.types import Alert
from bondwatch.audit import AuditLog, AuditRow, entry_hash
from bondwatch.cli import main as cli
from bondwatch.db import make_engine
from bondwatch.redis_server import RedisServer
from bondwatch.site import parse_site
from dashboard.app import create_app

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_780_000_000.0
SITE_YAML = """
cameras:
  - id: pets
    url: rtsp://127.0.0.1:8554/pets
    factory: a  # the operator's (test_dashboard.make_accounts)
  - id: dock
    url: rtsp://127.0.0.1:8554/dock
zones:
  - id: lawn
    camera: pets
    kind: restricted
    polygon: [[20, 300], [400, 300], [400, 570], [20, 570]]
"""


def make_alert(dt: float = 0.0, **kw: object) -> Alert:
    fields: dict[str, object] = {
        "type": "unauthorized_entry", "camera": "pets", "zone": "lawn", "track": 7, "t": 41.3 + dt,
        "ts": T0 + dt,
    }  # fmt: skip
    return Alert(**(fields | kw))  # type: ignore[arg-type]


@pytest.fixture
def store(db_url: str) -> Iterator[AlertStore]:
    s = AlertStore(db_url)
    yield s
    s.close()


# ---------- the state machine: one row per (state, action, role) ----------

TRANSITIONS = [
    # state, action, role, text, resolution, expected state or (error, words in the message)
    ("new", "acknowledge", "officer", "", None, "acknowledged"),
    ("new", "acknowledge", "admin", "on it", None, "acknowledged"),
    ("new", "acknowledge", "operator", "", None, (RoleRefused, "operator role may add notes")),
    ("new", "resolve", "officer", "done", "false_alarm", (IllegalTransition, "is new: acknowledge it")),
    ("new", "reopen", "officer", "why", None, (IllegalTransition, "is new, not resolved")),
    ("new", "note", "operator", "our technician, authorised", None, "new"),
    ("new", "note", "officer", "  ", None, (MissingText, "needs some text")),
    ("acknowledged", "acknowledge", "officer", "", None, (IllegalTransition, "already acknowledged")),
    ("acknowledged", "resolve", "officer", "unit scanned late", "explained", "resolved"),
    ("acknowledged", "resolve", "admin", "seen on video", "confirmed_violation", "resolved"),
    ("acknowledged", "resolve", "officer", "shadow", "false_alarm", "resolved"),
    ("acknowledged", "resolve", "operator", "we explain", "explained", (RoleRefused, "not resolve")),
    ("acknowledged", "resolve", "officer", "", "false_alarm", (MissingText, "needs a note")),
    ("acknowledged", "resolve", "officer", "x", "maybe", (MissingText, "needs a resolution")),
    ("acknowledged", "resolve", "officer", "x", None, (MissingText, "needs a resolution")),
    ("acknowledged", "reopen", "officer", "why", None, (IllegalTransition, "is acknowledged, not resolved")),
    ("acknowledged", "note", "operator", "explanation", None, "acknowledged"),
    ("resolved", "resolve", "officer", "x", "explained", (IllegalTransition, "reopen it before resolving")),
    ("resolved", "acknowledge", "officer", "", None, (IllegalTransition, "reopen it before acknowledging")),
    ("resolved", "reopen", "officer", "new footage", None, "acknowledged"),
    ("resolved", "reopen", "officer", "", None, (MissingText, "needs a reason")),
    ("resolved", "reopen", "operator", "we disagree", None, (RoleRefused, "not reopen")),
    ("resolved", "note", "operator", "late explanation", None, "resolved"),
]


@pytest.mark.parametrize(("state", "action", "role", "text", "resolution", "expected"), TRANSITIONS)
def test_transition_table(state, action, role, text, resolution, expected):
    case_id = "3f2a9c0d11112222333344445555"
    if isinstance(expected, str):
        got, res = decide(case_id, state, action, role, text=text, resolution=resolution)
        assert got == expected
        assert res == (resolution if got == "resolved" else None)
    else:
        error, words = expected
        with pytest.raises(error) as e:
            decide(case_id, state, action, role, text=text, resolution=resolution)
        assert "alert 3f2a9c0d…" in str(e.value) and words in str(e.value)


def test_lifecycle_is_stored_with_history_and_audit(store: AlertStore):
    a = make_alert()
    store.add(a)
    assert store.case(a.id).state == "new"  # type: ignore[union-attr]
    store.act(a.id, "note", "factory", "operator", text="our technician, badge 17")
    store.act(a.id, "acknowledge", "li", "officer", text="checking video")
    with pytest.raises(IllegalTransition, match="is acknowledged, not resolved"):
        store.act(a.id, "reopen", "li", "officer", text="x")
    store.act(a.id, "resolve", "li", "officer", text="badge confirmed", resolution="explained")
    with pytest.raises(IllegalTransition, match="reopen it before resolving it again"):
        store.act(a.id, "resolve", "li", "officer", text="again", resolution="false_alarm")
    case = store.act(a.id, "reopen", "wang", "admin", text="badge 17 expired in May")
    assert case.state == "acknowledged" and case.resolution is None
    steps = [(h.action, h.actor, h.state, h.note, h.resolution) for h in case.history]
    assert steps == [
        ("raised", "bondwatch", "new", "", None),
        ("note", "factory", "new", "our technician, badge 17", None),
        ("acknowledge", "li", "acknowledged", "checking video", None),
        ("resolve", "li", "resolved", "badge confirmed", "explained"),
        ("reopen", "wang", "acknowledged", "badge 17 expired in May", None),
    ]
    audit = store.audit.entries()
    assert [(e.actor, e.action, e.target) for e in audit] == [
        ("factory", "case_note", f"alert:{a.id}"),
        ("li", "case_acknowledge", f"alert:{a.id}"),
        ("li", "case_resolve", f"alert:{a.id}"),
        ("wang", "case_reopen", f"alert:{a.id}"),
    ]
    assert audit[2].detail == {
        "role": "officer", "from": "acknowledged", "to": "resolved", "text": "badge confirmed",
        "resolution": "explained",
    }  # fmt: skip
    with pytest.raises(UnknownAlert):
        store.act("nope", "acknowledge", "li", "officer")


def test_refused_action_changes_nothing(store: AlertStore):
    a = make_alert()
    store.add(a)
    with pytest.raises(CaseError):
        store.act(a.id, "resolve", "li", "officer", text="x", resolution="false_alarm")
    case = store.case(a.id)
    assert case is not None and case.state == "new" and len(case.history) == 1
    assert store.audit.entries() == []


# ---------- grouping ----------


@pytest.mark.parametrize(
    ("second", "grouped"),
    [
        ({"dt": 5.0}, True),
        ({"dt": GROUP_WINDOW_S - 1}, True),
        ({"dt": GROUP_WINDOW_S + 1}, False),
        ({"dt": 5.0, "track": 8}, False),
        ({"dt": 5.0, "zone": "yard"}, False),
        ({"dt": 5.0, "camera": "dock"}, False),
        ({"dt": 5.0, "type": "unscanned_departure"}, False),
    ],
)
def test_repeat_within_a_minute_joins_the_case(store: AlertStore, second: dict, grouped: bool):
    head, other = make_alert(), make_alert(**second)
    store.add(head)
    store.add(other)
    case = store.case(other.id)
    assert case is not None
    assert (case.id == head.id) is grouped
    assert store.states([other.id])[other.id][1] == (head.id if grouped else other.id)


def test_group_follows_its_newest_alert_and_shares_the_case(store: AlertStore):
    alerts = [make_alert(dt) for dt in (0, 50, 100, 150)]  # each within a minute of the last
    for a in alerts:
        store.add(a)
    case = store.act(alerts[-1].id, "acknowledge", "li", "officer")  # acting on a member
    assert case.id == alerts[0].id
    assert [m.id for m in case.members] == [a.id for a in alerts[1:]]
    assert {state for state, _ in store.states([a.id for a in alerts]).values()} == {"acknowledged"}
    assert [h.action for h in case.history] == ["raised", "grouped", "grouped", "grouped", "acknowledge"]


def test_resolved_case_takes_no_new_alerts(store: AlertStore):
    head = make_alert()
    store.add(head)
    store.act(head.id, "acknowledge", "li", "officer")
    store.act(head.id, "resolve", "li", "officer", text="shadow", resolution="false_alarm")
    again = make_alert(10.0)
    store.add(again)
    assert store.case(again.id).id == again.id  # type: ignore[union-attr]


# ---------- the outbox ----------


def stream_ids(url: str) -> list[str]:
    client = redis.Redis.from_url(url)
    try:
        return [fields[b"id"].decode() for _, fields in client.xrange(ALERT_STREAM)]
    finally:
        client.close()


def wait_until(condition, timeout_s: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_redis_down_loses_nothing(tmp_path: Path, store: AlertStore):
    server = RedisServer(tmp_path / "redis", persist=False).start()
    bus = AlertBus(server.url)
    outbox = Outbox(store)
    publisher = Publisher(outbox, bus, backoff_max_s=0.5)
    publisher.start()
    try:
        first = make_alert()
        outbox.emit(first)
        wait_until(lambda: stream_ids(server.url) == [first.id], what="the first alert")
        server.stop()
        burst = [make_alert(float(i), track=100 + i) for i in range(50)]
        for a in burst:
            outbox.emit(a)
        assert publisher.published == 1  # Redis is down: nothing else went out ...
        assert len(outbox.pending()) == 50  # ... and everything waits in the outbox
        server = RedisServer(tmp_path / "redis", port=server.port, persist=False).start()
        wait_until(lambda: not outbox.pending(), what="the outbox to drain")
        assert stream_ids(server.url) == [a.id for a in burst]  # all, once, in order
    finally:
        publisher.stop()
        bus.close()
        server.stop()


CRASHING_PUBLISHER = """
import os, signal, sys
from alerts.bus import AlertBus
from alerts.outbox import Outbox, Publisher
from alerts.store import AlertStore

def crash(seq):
    if seq == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)  # after XADD, before the row is marked

publisher = Publisher(Outbox(AlertStore(sys.argv[1])), AlertBus(sys.argv[2]), after_publish=crash)
publisher.run()
"""


def test_crash_between_publish_and_mark_repeats_once_and_the_feed_drops_it(
    tmp_path: Path, db_url: str, store: AlertStore, redis_server: RedisServer
):
    alerts = [make_alert(float(i), track=i) for i in range(20)]
    outbox = Outbox(store)
    for a in alerts:
        outbox.emit(a)
    crash_at = outbox.pending()[9].seq
    app = create_app(
        PetsLive(parse_site(SITE_YAML), n_frames=1),
        store,
        AlertBus(redis_server.url),
        make_accounts(tmp_path / "accounts.db"),
        title="t",
    )
    with TestClient(app) as client:
        sign_in(client)
        with client.websocket_connect("/ws/alerts") as ws:
            wait_for_follower(redis_server.url)
            proc = subprocess.run(
                [sys.executable, "-c", CRASHING_PUBLISHER, db_url, redis_server.url, str(crash_at)],
                cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)}, capture_output=True, timeout=120,
            )  # fmt: skip
            assert proc.returncode == -9, proc.stderr.decode()[-2000:]
            assert len(outbox.pending()) == 11  # the tenth went out but was never marked
            bus = AlertBus(redis_server.url)
            publisher = Publisher(outbox, bus)  # the restarted service
            publisher.start()
            try:
                wait_until(lambda: not outbox.pending(), what="the outbox to drain")
            finally:
                publisher.stop()
            ids = stream_ids(redis_server.url)
            assert ids == [a.id for a in alerts[:10]] + [a.id for a in alerts[9:]]  # one repeat
            sentinel = make_alert(track=999, camera="dock")
            bus.publish(sentinel)
            bus.close()
            got = []
            while not got or got[-1] != sentinel.id:
                got.append(ws.receive_json()["id"])
    assert got == [a.id for a in alerts] + [sentinel.id]  # each alert once


# ---------- the audit trail ----------


def audit_db(db_url: str) -> AuditLog:
    """An audit log of six sign-ins in the database at `db_url`."""
    store = AlertStore(db_url)
    for i in range(6):
        store.audit.record(f"user{i}", "login", f"user:user{i}", {"client": "127.0.0.1", "n": i})
    return store.audit


def tamper(db_url: str, *statements: str) -> None:
    """Change the database behind BondWatch's back, as someone with its file or password could."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            for sql in statements:
                conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def swap(a: int, b: int) -> tuple[str, ...]:
    """Swap two entries' places (their seq numbers), leaving every row's content as written."""
    return (
        f"UPDATE audit_log SET seq = -1 WHERE seq = {a}",
        f"UPDATE audit_log SET seq = {a} WHERE seq = {b}",
        f"UPDATE audit_log SET seq = {b} WHERE seq = -1",
    )


@pytest.mark.parametrize(
    ("statements", "message"),
    [
        ((), None),
        (("UPDATE audit_log SET detail = '{\"n\":3}' WHERE seq = 4",), "entry 4 changed"),
        (("UPDATE audit_log SET actor = 'root' WHERE seq = 1",), "entry 1 changed"),
        (("UPDATE audit_log SET detail = 'not json' WHERE seq = 6",), "entry 6 changed"),
        (("DELETE FROM audit_log WHERE seq = 3",), "entry 3 removed"),
        (("DELETE FROM audit_log WHERE seq IN (2, 3)",), "entries 2-3 removed"),
        (swap(2, 3), "entry 2 reordered"),
        (swap(4, 6), "entry 4 reordered"),
    ],
)
def test_audit_verify_names_the_tampered_entry(
    db_url: str, tmp_path: Path, capsys, monkeypatch, statements, message
):
    monkeypatch.setenv("DATABASE_URL", db_url)
    audit_db(db_url)
    tamper(db_url, *statements)
    code = cli(["audit", "verify", "--data", str(tmp_path)])
    out = capsys.readouterr()
    if message is None:
        assert code == 0 and "audit trail intact: 6 entries" in out.out
    else:
        assert code == 2
        assert message in out.err, out.err


def test_rehashed_change_is_still_caught(db_url: str):
    """Rewriting an entry and its own hash breaks the next entry's link to it."""
    log = audit_db(db_url)
    with Session(log.engine) as s, s.begin():
        row = s.get(AuditRow, 3)
        assert row is not None
        row.actor = "someone-else"
        row.hash = entry_hash(row.prev_hash, row)
    _, problem = log.verify()
    assert problem is not None and problem.seq == 3 and problem.kind == "changed"


def test_concurrent_writers_append_one_chain(db_url: str):
    """Two writers with their own connections and locks, as two processes have, append at the
    same time: every entry lands, numbered without a gap, on one unbroken chain."""
    logs = [AlertStore(db_url).audit for _ in range(2)]
    start = threading.Barrier(len(logs))
    errors: list[Exception] = []

    def append(log: AuditLog, name: str) -> None:
        start.wait()
        try:
            for i in range(25):
                log.record(name, "login", f"user:{name}", {"n": i})
        except Exception as e:  # reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=append, args=(log, f"w{n}")) for n, log in enumerate(logs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    entries = logs[0].entries()
    assert [e.seq for e in entries] == list(range(1, 51))
    assert logs[1].verify() == (50, None)


# ---------- the API ----------


@pytest.fixture
def api(
    tmp_path: Path, store: AlertStore, redis_server: RedisServer
) -> Iterator[tuple[TestClient, AlertStore]]:
    """The dashboard with one account per role (user name = role), on `store`."""
    bus = AlertBus(redis_server.url)
    accounts = make_accounts(tmp_path / "accounts.db")
    app = create_app(PetsLive(parse_site(SITE_YAML), n_frames=3), store, bus, accounts, title="t")
    with TestClient(app) as client:
        yield client, store
    bus.close()


API_CASES = [
    # role, state before, method and path suffix, body, status, state after
    ("officer", "new", "acknowledge", {"note": "looking"}, 200, "acknowledged"),
    ("admin", "new", "acknowledge", {}, 200, "acknowledged"),
    ("operator", "new", "acknowledge", {}, 403, "new"),
    ("officer", "new", "resolve", {"resolution": "false_alarm", "note": "x"}, 409, "new"),
    ("officer", "acknowledged", "resolve", {"resolution": "false_alarm", "note": "shadow"}, 200, "resolved"),
    ("operator", "acknowledged", "resolve", {"resolution": "explained", "note": "ours"}, 403, "acknowledged"),
    ("officer", "acknowledged", "resolve", {"resolution": "maybe", "note": "x"}, 422, "acknowledged"),
    ("officer", "acknowledged", "resolve", {"resolution": "explained"}, 422, "acknowledged"),
    ("officer", "resolved", "resolve", {"resolution": "explained", "note": "x"}, 409, "resolved"),
    ("officer", "resolved", "reopen", {"reason": "new footage"}, 200, "acknowledged"),
    ("officer", "resolved", "reopen", {}, 422, "resolved"),
    ("operator", "resolved", "reopen", {"reason": "no"}, 403, "resolved"),
    ("officer", "acknowledged", "reopen", {"reason": "x"}, 409, "acknowledged"),
    ("operator", "new", "notes", {"text": "our technician, badge 17"}, 200, "new"),
    ("officer", "resolved", "notes", {"text": "filed"}, 200, "resolved"),
    ("operator", "new", "notes", {"text": ""}, 422, "new"),
]


def put_in_state(store: AlertStore, alert_id: str, state: str) -> None:
    if state in ("acknowledged", "resolved"):
        store.act(alert_id, "acknowledge", "setup", "admin")
    if state == "resolved":
        store.act(alert_id, "resolve", "setup", "admin", text="setup", resolution="false_alarm")


@pytest.mark.parametrize(("role", "before", "action", "body", "status", "after"), API_CASES)
def test_case_api_by_role(api, role, before, action, body, status, after):
    client, store = api
    a = make_alert()
    store.add(a)
    put_in_state(store, a.id, before)
    sign_in(client, role)
    res = client.post(f"/api/alerts/{a.id}/{action}", json=body)
    assert res.status_code == status, res.text
    if status == 200:
        assert res.json()["state"] == after
    if status == 409:
        assert res.json()["detail"].startswith(f"alert {a.id[:8]}… is ")
    assert client.get(f"/api/alerts/{a.id}").json()["state"] == after


def test_case_api_shows_history_group_and_list_state(api):
    client, store = api
    head, member = make_alert(), make_alert(20.0)
    store.add(head)
    store.add(member)
    sign_in(client, "operator")
    assert client.post(f"/api/alerts/{member.id}/notes", json={"text": "badge 17"}).status_code == 200
    sign_in(client, "officer")
    assert client.post(f"/api/alerts/{head.id}/acknowledge", json={}).status_code == 200
    case = client.get(f"/api/alerts/{member.id}").json()
    assert case["id"] == head.id and case["alert"]["id"] == head.id
    assert [m["id"] for m in case["members"]] == [member.id]
    assert [(h["action"], h["actor"], h["state"]) for h in case["history"]] == [
        ("raised", "bondwatch", "new"),
        ("grouped", "bondwatch", "new"),
        ("note", "operator", "new"),
        ("acknowledge", "officer", "acknowledged"),
    ]
    listed = {a["id"]: (a["state"], a["group_id"]) for a in client.get("/api/alerts").json()}
    assert listed == {head.id: ("acknowledged", head.id), member.id: ("acknowledged", head.id)}


@pytest.mark.parametrize("path", ["/api/alerts/unknown", "/api/alerts/unknown/acknowledge"])
def test_case_api_unknown_alert_is_404(api, path):
    client, _ = api
    sign_in(client)
    res = client.get(path) if path.endswith("unknown") else client.post(path, json={})
    assert res.status_code == 404
    assert res.json() == {"detail": "unknown alert 'unknown'"}


def test_sign_ins_sign_outs_and_live_views_are_audited(api):
    client, store = api
    assert client.post("/api/login", json={"name": "officer", "password": "wrong"}).status_code == 401
    sign_in(client, "officer")

    async def view() -> int:
        async with watching(client, "pets") as (status, _, _, _):
            return status

    assert asyncio.run(view()) == 200
    assert client.post("/api/logout").status_code == 204
    entries = [(e.actor, e.action, e.target) for e in store.audit.entries()]
    assert entries == [
        ("officer", "login_failed", "user:officer"),
        ("officer", "login", "user:officer"),
        ("officer", "live_view", "camera:pets"),
        ("officer", "logout", "user:officer"),
    ]
    assert store.audit.verify() == (4, None)
