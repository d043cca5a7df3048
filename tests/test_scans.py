"""The live scan feed: `POST /api/scans`, the Redis scan stream, and scans reaching the rules.

Real parts throughout: a real redis-server carries the stream, a real SQLite file holds the
accounts, and the rules are the real departure rule fed synthetic tracked batches (detection is
not what is under test here).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from alerts.bus import AlertBus
from alerts.rules import RuleEngine
from alerts.store import AlertStore
from alerts.types import Alert
from bondwatch.accounts import Accounts
from bondwatch.cli import main
from bondwatch.redis_server import RedisServer
from bondwatch.scanbus import SCAN_STREAM, LiveScan, ScanBus, ScanReader
from bondwatch.service import ScanListener, deliver_scans
from bondwatch.site import Site, parse_site
from dashboard.app import create_app
from detectors.types import Detection, DetectionBatch
from streams.frame import Frame

SITE_YAML = """
cameras:
  - id: cam
    url: rtsp://127.0.0.1:8554/cam
    factory: a
  - id: other
    url: rtsp://127.0.0.1:8554/other
    factory: b
zones:
  - id: s02
    camera: other
    kind: station
    station: S02
    polygon: [[100, 100], [200, 100], [200, 200], [100, 200]]
  - id: cage
    camera: other
    kind: restricted
    polygon: [[300, 100], [400, 100], [400, 200], [300, 200]]
  - id: s01
    camera: cam
    kind: station
    station: S01
    polygon: [[100, 100], [200, 100], [200, 200], [100, 200]]
    clock_skew_s: 5.0   # the scanner's clock runs 5 s ahead of the cameras'
"""
PASSWORDS = {"admin": "admin-pass-1", "officer": "officer-pass-1", "operator": "operator-pass-1"}
TZ = "+08:00"
NAIVE_TS = "2026-07-21T08:00:03"
TS = NAIVE_TS + TZ
TZ_MESSAGE = (
    "needs a time zone (e.g. 2026-07-21T08:00:03+08:00 or ...Z); a time without one is ambiguous and refused"
)


def event(**fields: object) -> dict[str, object]:
    return {"station": "S01", "serial": "SN0001", "ts": TS} | fields


class StillLive:
    """A live view with no frames: the scan routes never look at video."""

    def __init__(self, site: Site):
        self.site = site

    def latest(self, camera: str) -> tuple[Frame | None, DetectionBatch | None]:
        return None, None

    def health(self) -> dict[str, object]:
        return {}


@pytest.fixture(scope="module")
def site() -> Site:
    return parse_site(SITE_YAML)


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Accounts:
    accounts = Accounts(f"sqlite:///{tmp_path_factory.mktemp('accounts') / 'accounts.db'}")
    for role, password in PASSWORDS.items():
        accounts.add(role, role, password, "a" if role == "operator" else None)
    return accounts


@pytest.fixture
def rdb(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client of the same Redis: what a factory system, or an inspector, would use."""
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def app(site: Site, accounts: Accounts, redis_server: RedisServer, tmp_path: Path) -> Iterator[FastAPI]:
    store = AlertStore(f"sqlite:///{tmp_path / 'bondwatch.db'}")
    bus = AlertBus(redis_server.url)
    yield create_app(StillLive(site), store, bus, accounts, title="BondWatch")
    bus.close()
    store.close()


def signed_in(app: FastAPI, role: str) -> TestClient:
    client = TestClient(app)
    res = client.post("/api/login", json={"name": role, "password": PASSWORDS[role]})
    assert res.status_code == 200, res.text
    return client


@pytest.fixture
def operator(app: FastAPI) -> Iterator[TestClient]:
    """The factory's system, signed in as an operator account."""
    with signed_in(app, "operator") as client:
        yield client


@pytest.fixture
def officer(app: FastAPI) -> Iterator[TestClient]:
    with signed_in(app, "officer") as client:
        yield client


def read_all(reader: ScanReader) -> list[LiveScan]:
    scans, batch = [], reader.read()
    while batch:
        scans += batch
        batch = reader.read()
    return scans


# ---------- POST /api/scans ----------


@pytest.mark.parametrize("role", ["admin", "officer", "operator"])
def test_batch_is_accepted_onto_the_stream(app: FastAPI, redis_server: RedisServer, role: str):
    reader = ScanReader(redis_server.url)
    posted = [
        event(id="a1", serial="SN1", operator="王工"),
        event(id="a2", serial="SN2", ts="2026-07-21T00:00:04Z"),
        event(serial="SN3"),  # no id: accepted, just not protected against a retry
    ]
    with signed_in(app, role) as client:
        res = client.post("/api/scans", json={"scans": posted})
    assert res.status_code == 200, res.text
    assert res.json() == {"accepted": 3, "duplicates": []}
    got = read_all(reader)
    assert [(s.id, s.serial) for s in got] == [("a1", "SN1"), ("a2", "SN2"), (None, "SN3")]
    assert got[0].ts == datetime(2026, 7, 21, 0, 0, 3, tzinfo=UTC)
    assert got[0].model_extra == {"operator": "王工"}
    assert reader.bad == 0
    reader.close()


def test_retried_batch_counts_its_ids_once(operator: TestClient, rdb: redis.Redis):
    first = [event(id="r1", serial="SN1"), event(id="r2", serial="SN2")]
    assert operator.post("/api/scans", json={"scans": first}).json() == {"accepted": 2, "duplicates": []}
    retry = [*first, event(id="r3", serial="SN3"), event(id="r3", serial="SN3"), event(serial="SN4")]
    res = operator.post("/api/scans", json={"scans": retry})
    assert res.status_code == 200
    assert res.json() == {"accepted": 2, "duplicates": ["r1", "r2", "r3"]}
    entries = rdb.xrange(SCAN_STREAM)
    serials = [json.loads(fields[b"scan"])["serial"] for _id, fields in entries]
    assert serials == ["SN1", "SN2", "SN3", "SN4"]
    assert 0 < rdb.ttl("bondwatch:scan-ids:r1") <= 7 * 86400


OK = event()
BAD_EVENTS = [
    # (name, body, expected `detail` lines)
    ("missing serial", {"scans": [OK, event(serial=None), OK]}, ["scans[1].serial: field required"]),
    ("empty station", {"scans": [event(station="")]}, ["scans[0].station: must not be empty"]),
    ("naive ts", {"scans": [OK, OK, event(ts=NAIVE_TS)]}, [f"scans[2].ts: {TZ_MESSAGE}"]),
    ("no ts", {"scans": [event(ts=None)]}, ["scans[0].ts: field required"]),
    ("ts not a time", {"scans": [event(ts="yesterday")]},
        ["scans[0].ts: Input should be a valid datetime or date, input is too short"]),
    ("replay's t instead of ts", {"scans": [event(ts=None, t=12.4)]},
        ["scans[0]: live scans carry `ts` (wall clock); `t` is replay's video time"]),
    ("two bad events, each named", {"scans": [event(serial=""), OK, event(ts="2026-07-21T08:00:03")]},
        ["scans[0].serial: must not be empty", f"scans[2].ts: {TZ_MESSAGE}"]),
    ("not JSON", b"scans: [SN1]", ["body: Invalid JSON: expected value at line 1 column 1"]),
    ("no scans key", {"events": [OK]}, ["scans: field required"]),
    ("empty batch", {"scans": []}, ["scans: needs at least 1, got 0"]),
    ("too many", {"scans": [OK] * 1001}, ["scans: takes at most 1000, got 1001"]),
    ("an event that is not an object", {"scans": [OK, "SN1"]}, ["scans[1]: Input should be an object"]),
]  # fmt: skip


@pytest.mark.parametrize(("body", "detail"), [c[1:] for c in BAD_EVENTS], ids=[c[0] for c in BAD_EVENTS])
def test_bad_events_refuse_the_batch(
    operator: TestClient, rdb: redis.Redis, body: dict | bytes, detail: list[str]
):
    def clean(e: object) -> object:  # a None field means "left out"
        return {k: v for k, v in e.items() if v is not None} if isinstance(e, dict) else e

    if isinstance(body, bytes):
        res = operator.post("/api/scans", content=body, headers={"content-type": "application/json"})
    else:
        res = operator.post("/api/scans", json={k: [clean(e) for e in v] for k, v in body.items()})
    assert res.status_code == 422
    assert res.json() == {"detail": detail}
    assert rdb.xlen(SCAN_STREAM) == 0  # all or nothing


def test_a_station_or_zone_the_site_lacks_refuses_the_batch(operator: TestClient, rdb: redis.Redis):
    badge = {"kind": "badge", "zone": "vault", "ts": TS}
    res = operator.post("/api/scans", json={"scans": [OK, event(station="S99"), badge]})
    assert res.status_code == 422
    assert res.json()["detail"] == [
        "scans[1].station: no station 'S99' in the site (it has: S01, S02)",
        "scans[2].zone: no zone 'vault' in the site (it has: cage, s01, s02)",
    ]
    assert rdb.xlen(SCAN_STREAM) == 0


def test_an_operator_posts_only_for_its_own_factorys_stations(
    operator: TestClient, officer: TestClient, rdb: redis.Redis
):
    badge = {"kind": "badge", "zone": "cage", "ts": TS}
    res = operator.post("/api/scans", json={"scans": [OK, event(station="S02"), badge]})
    assert res.status_code == 403
    assert res.json()["detail"] == [
        "scans[1].station: station 'S02' is not watched by a camera of factory 'a':"
        " an operator posts scans for its own factory's stations only",
        "scans[2].zone: zone 'cage' is not watched by a camera of factory 'a':"
        " an operator posts scans for its own factory's stations only",
    ]
    assert rdb.xlen(SCAN_STREAM) == 0
    assert officer.post("/api/scans", json={"scans": [OK, event(station="S02"), badge]}).status_code == 200
    assert rdb.xlen(SCAN_STREAM) == 3


def test_a_factory_system_posts_scans_with_an_api_token_and_can_do_nothing_else(
    app: FastAPI, accounts: Accounts, rdb: redis.Redis
):
    secret = accounts.add_token("mes-a", factory="a")
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as mes:
        assert mes.post("/api/scans", json={"scans": [OK]}).json() == {"accepted": 1, "duplicates": []}
        foreign = mes.post("/api/scans", json={"scans": [event(station="S02")]})
        assert foreign.status_code == 403  # factory a's token, factory b's station
        for path in ("/api/alerts", "/api/cameras", "/api/me"):
            assert mes.get(path).status_code == 403, path  # a scanner, not a person
    assert rdb.xlen(SCAN_STREAM) == 1
    accounts.revoke_token("mes-a")
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as revoked:
        res = revoked.post("/api/scans", json={"scans": [OK]})
    assert res.status_code == 401
    assert res.json()["detail"] == "the API token is unknown or was revoked (Authorization: Bearer bwt_...)"
    with TestClient(app, headers={"Authorization": "Bearer bwt_guessed"}) as guessing:
        assert guessing.post("/api/scans", json={"scans": [OK]}).status_code == 401
    assert rdb.xlen(SCAN_STREAM) == 1


def test_a_token_without_a_factory_posts_for_every_station(app: FastAPI, accounts: Accounts):
    secret = accounts.add_token("customs-gate")
    with TestClient(app, headers={"Authorization": f"bearer {secret}"}) as gate:
        res = gate.post("/api/scans", json={"scans": [OK, event(station="S02")]})
    assert res.json() == {"accepted": 2, "duplicates": []}
    accounts.revoke_token("customs-gate")


def test_token_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    data = str(tmp_path)
    assert main(["token", "add", "mes-1", "--factory", "acme", "--data", data]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("bwt_") and len(secret) > 40
    token = Accounts(f"sqlite:///{tmp_path / 'bondwatch.db'}").token(secret)
    assert token is not None and (token.name, token.factory) == ("mes-1", "acme")
    assert main(["token", "add", "mes-1", "--data", data]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["token", "list", "--data", data]) == 0
    listed = capsys.readouterr().out
    assert listed.startswith("mes-1\tacme\tcreated ") and secret not in listed
    assert main(["token", "revoke", "mes-1", "--data", data]) == 0
    assert Accounts(f"sqlite:///{tmp_path / 'bondwatch.db'}").token(secret) is None
    assert main(["token", "revoke", "mes-1", "--data", data]) == 2


def test_scans_need_a_signed_in_user(app: FastAPI, rdb: redis.Redis):
    with TestClient(app) as anonymous:
        res = anonymous.post("/api/scans", json={"scans": [OK]})
    assert res.status_code == 401
    assert rdb.xlen(SCAN_STREAM) == 0


# ---------- the stream, as factory systems write it ----------


def test_reader_skips_and_counts_bad_entries(
    redis_server: RedisServer, rdb: redis.Redis, caplog: pytest.LogCaptureFixture
):
    reader = ScanReader(redis_server.url)
    good = {"station": "S01", "serial": "SN9", "ts": "2026-07-21T08:00:03.120+08:00", "step": "rework"}
    rdb.xadd(SCAN_STREAM, {"scan": "{not json"})
    rdb.xadd(SCAN_STREAM, {"scan": json.dumps(good)})  # a factory system's raw XADD
    bad_ids = [
        rdb.xadd(SCAN_STREAM, {"serial": "SN10"}).decode(),  # fields flat, no `scan`
        rdb.xadd(SCAN_STREAM, {"scan": json.dumps(good | {"ts": NAIVE_TS})}).decode(),
        rdb.xadd(SCAN_STREAM, {"scan": json.dumps({"station": "S01", "ts": TS})}).decode(),
    ]
    with caplog.at_level(logging.WARNING, logger="bondwatch.scanbus"):
        got = read_all(reader)
    assert [(s.serial, s.model_extra) for s in got] == [("SN9", {"step": "rework"})]
    assert reader.bad == 4
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4
    assert lines[0].endswith("scan: Invalid JSON: key must be a string at line 1 column 2")
    assert lines[1:] == [
        f"skipped scan entry {bad_ids[0]} on {SCAN_STREAM}: no `scan` field (fields: ['serial'])",
        f"skipped scan entry {bad_ids[1]} on {SCAN_STREAM}: scan.ts: {TZ_MESSAGE}",
        f"skipped scan entry {bad_ids[2]} on {SCAN_STREAM}: scan.serial: field required",
    ]
    reader.close()


def test_a_scan_added_in_the_millisecond_the_reader_starts_is_read(
    redis_server: RedisServer, rdb: redis.Redis, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(redis.Redis, "time", lambda self: (1_780_000_000, 500_000))  # the reader's start
    reader = ScanReader(redis_server.url)
    rdb.xadd(SCAN_STREAM, {"scan": json.dumps(event(serial="SN-before"))}, id="1780000000499-0")
    rdb.xadd(SCAN_STREAM, {"scan": json.dumps(event(serial="SN-same-ms"))}, id="1780000000500-0")
    assert [s.serial for s in read_all(reader)] == ["SN-same-ms"]
    reader.close()


def test_reader_reads_back_what_came_while_it_was_down(redis_server: RedisServer, rdb: redis.Redis):
    rdb.xadd(SCAN_STREAM, {"scan": json.dumps(event(serial="SN-old"))})
    assert read_all(ScanReader(redis_server.url)) == []
    assert [s.serial for s in read_all(ScanReader(redis_server.url, since_s=600))] == ["SN-old"]


# ---------- scans reaching the departure rule, as in the detection worker ----------

FPS = 5  # the station camera's detect_fps: one batch every 0.2 s
TS0 = datetime(2026, 7, 21, 8, 0, 0, tzinfo=UTC).timestamp()  # wall clock of frame 0
IN, OUT = (150.0, 150.0), (50.0, 150.0)
LEAVES = 10  # the unit is inside for frames 0-9 and outside from frame 10 on
FRAMES = 150
SKEW_S = 5.0


def make_batch(i: int) -> DetectionBatch:
    x, y = IN if i < LEAVES else OUT
    det = Detection(cls="unit", conf=0.9, box=(x - 10, y - 20, x + 10, y), track=1)
    return DetectionBatch("cam", i, i / FPS, TS0 + i / FPS, 640, 480, (det,))


DEPARTURES = [
    # (name, scan: (seconds after the unit left, true time; station) or None,
    #  frame at which it is published, expected alerts [(track, t)])
    ("scanned 30 s before it left", (-30.0, "S01"), 0, []),
    ("scanned 6 s late, within the grace window", (6.0, "S01"), 30, []),
    ("8 s late: 13 s on the scanner's fast clock, still covered", (8.0, "S01"), 40, []),
    ("15 s late: past the grace window", (15.0, "S01"), 40, [(1, 2.0)]),
    ("scanned at another station", (1.0, "S02"), 20, [(1, 2.0)]),
    ("no scan: decided as capture time passes the grace window", None, 0, [(1, 2.0)]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("scan", "publish_at", "expected"), [c[1:] for c in DEPARTURES], ids=[c[0] for c in DEPARTURES]
)
def test_live_scan_from_the_stream_covers_a_departure(
    site: Site,
    redis_server: RedisServer,
    scan: tuple[float, str] | None,
    publish_at: int,
    expected: list[tuple[int, float]],
):
    """A scan published on the stream while frames flow reaches the rules through the worker's
    listener and queue; its `ts`, less the station's clock skew, is matched to the departure."""
    rules = RuleEngine(site)
    alerts: list[Alert] = []
    listener = ScanListener(ScanReader(redis_server.url))
    listener.start()
    bus = ScanBus(redis_server.url)
    try:
        for i in range(FRAMES):
            if scan is not None and i == publish_at:
                after_s, station = scan
                ts = datetime.fromtimestamp(TS0 + LEAVES / FPS + after_s + SKEW_S, UTC)
                bus.publish([LiveScan(id="s-1", station=station, serial="SN1", ts=ts)])
                wait_for_scans(listener, rules, alerts)
            deliver_scans(listener.scans, rules.add_scan, alerts.append)
            alerts += rules.process(make_batch(i))
    finally:
        listener.stop()
        bus.close()
    assert [(a.track, a.t) for a in alerts] == expected
    for a in alerts:
        assert a.ts == TS0 + LEAVES / FPS
        assert "left station S01" in (a.explanation or "")


def wait_for_scans(listener: ScanListener, rules: RuleEngine, alerts: list[Alert]) -> None:
    """Hand the published scan to the rules once the listener has it (the worker does the same
    before each round of frames; here the frames wait for it, so the test is deterministic)."""
    deadline = time.monotonic() + 10.0
    while deliver_scans(listener.scans, rules.add_scan, alerts.append) == 0:
        assert time.monotonic() < deadline, "the listener never delivered the scan"
        time.sleep(0.01)
