"""Serial trace: scans stored on their way to the rules, and GET /api/trace/{serial}.

The scans take the real path: POST /api/scans onto a real Redis stream, read back by the
service's ScanListener, which stores them in the scan log (SQLite) and hands them to the rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import wait_for
from fastapi.testclient import TestClient
from test_dashboard import PASSWORDS, PetsLive, redis_server, sign_in

from alerts.bus import AlertBus
from alerts.store import AlertStore
from alerts.types import Alert
from bondwatch.accounts import Accounts
from bondwatch.scanbus import LiveScan, ScanBus, ScanReader
from bondwatch.scanlog import ScanLog
from bondwatch.scans import ScanEvent
from bondwatch.service import ScanListener
from bondwatch.site import parse_site
from dashboard.app import create_app

SITE_YAML = """
name: 保税维修车间 A
cameras:
  - id: pets
    name: 东门道路
    url: rtsp://127.0.0.1:8554/pets
    factory: acme
  - id: dock
    name: 装卸区
    url: rtsp://127.0.0.1:8554/dock
    factory: bravo
zones:
  - id: s01
    camera: pets
    kind: station
    station: s01
    clock_skew_s: 2.0
    scan_before_s: 60
    scan_grace_s: 10
    polygon: [[520, 110], [740, 110], [740, 240], [520, 240]]
  - id: s02
    camera: dock
    kind: station
    station: s02
    polygon: [[100, 100], [300, 100], [300, 250], [100, 250]]
stations:
  - id: s09
    name: 发货台
    step: out
"""
T0 = 1_780_000_000.0  # the scans' wall clock, fixed so windows are exact


def make_accounts(db: Path) -> Accounts:
    """One user per role (name = role); the operator works for factory acme (camera pets)."""
    accounts = Accounts(f"sqlite:///{db}")
    for role, password in PASSWORDS.items():
        accounts.add(role, role, password, factory="acme" if role == "operator" else None)
    return accounts


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[TestClient, AlertStore, ScanListener]]:
    """The dashboard and the service's scan listener on one real Redis and one database."""
    db = tmp_path / "bondwatch.db"
    store = AlertStore(f"sqlite:///{db}")
    accounts = make_accounts(tmp_path / "accounts.db")
    with redis_server() as url:
        bus = AlertBus(url)
        listener = ScanListener(ScanReader(url, since_s=0), ScanLog(store.engine))
        listener.start()
        app = create_app(PetsLive(parse_site(SITE_YAML), n_frames=2), store, bus, accounts, title="T")
        with TestClient(app) as client:
            sign_in(client)
            yield client, store, listener
        listener.stop()
        bus.close()
    store.close()


def post_scans(client: TestClient, scans: list[dict]) -> None:
    res = client.post("/api/scans", json={"scans": scans})
    assert res.status_code == 200, res.text


def test_scans_on_the_stream_are_stored_once_and_traced_in_order(stack):
    client, _store, listener = stack
    scans = [
        {"id": "a3", "ts": iso(T0 + 3600), "station": "s02", "serial": "SN0001", "operator": "李"},
        {"id": "a1", "ts": iso(T0), "station": "s01", "serial": "SN0001"},
        {"id": "a2", "ts": iso(T0 + 600), "station": "s01", "serial": "SN0001"},
        {"id": "b1", "ts": iso(T0 + 5), "station": "s01", "serial": "SN00012"},
    ]
    post_scans(client, scans)
    post_scans(client, scans[:2])  # a client retrying part of the batch
    trace = wait_for(
        lambda: (r := client.get("/api/trace/SN0001").json()) and len(r["scans"]) == 3 and r, 10
    )
    assert trace, "the listener did not store the scans"
    assert [s["id"] for s in trace["scans"]] == ["a1", "a2", "a3"]
    assert [(s["step"], s["step_from"]) for s in trace["scans"]] == [
        ("in", "order"), ("repair", "order"), ("out", "order"),
    ]  # fmt: skip
    assert trace["scans"][2]["operator"] == "李"
    # One click to the video: the station's camera, at the scan time on the camera clock.
    assert trace["scans"][0]["video"] == [{"camera": "pets", "name": "东门道路", "t": T0 - 2.0}]
    assert trace["scans"][2]["video"] == [{"camera": "dock", "name": "装卸区", "t": T0 + 3600}]
    # The retried scans never reached the stream, so the rules saw each scan exactly once too.
    got = []
    while not listener.scans.empty():
        got.append(listener.scans.get_nowait().serial)
    assert sorted(got) == ["SN0001", "SN0001", "SN0001", "SN00012"]
    assert client.get("/api/trace/SN00012").json()["scans"][0]["id"] == "b1"
    assert client.get("/api/trace/NOPE").json() == {"serial": "NOPE", "scans": [], "alerts": []}
    assert client.get("/api/trace", params={"prefix": "SN000"}).json() == {
        "serials": ["SN0001", "SN00012"]
    }


@pytest.mark.parametrize(
    ("extra", "step"),
    [({"step": "进"}, "in"), ({"step": "repair"}, "repair"), ({"direction": "out"}, "out")],
)
def test_the_senders_step_wins_over_the_order(stack, extra, step):
    client, store, _listener = stack
    log = ScanLog(store.engine)
    log.record([ScanEvent.model_validate({"ts": iso(T0), "station": "s01", "serial": "SNX", **extra})])
    scan = client.get("/api/trace/SNX").json()["scans"][0]
    assert (scan["step"], scan["step_from"]) == (step, "sender")


def test_a_station_configured_as_a_step_says_which_step_its_scans_are(stack):
    client, store, _listener = stack
    ScanLog(store.engine).record([
        ScanEvent.model_validate({"ts": iso(T0), "station": "s09", "serial": "SNY"}),
        ScanEvent.model_validate({"ts": iso(T0 + 5), "station": "s01", "serial": "SNY", "step": "修"}),
    ])  # fmt: skip
    scans = client.get("/api/trace/SNY").json()["scans"]
    got = [(s["station_name"], s["step"], s["step_from"]) for s in scans]
    assert got == [("发货台", "out", "station"), ("s01", "repair", "sender")]


def test_scan_log_is_idempotent_without_an_id(tmp_path: Path):
    log = ScanLog(f"sqlite:///{tmp_path / 'scans.db'}")
    scan = ScanEvent.model_validate({"ts": iso(T0), "station": "s01", "serial": "SN1"})
    later = ScanEvent.model_validate({"ts": iso(T0 + 1), "station": "s01", "serial": "SN1"})
    replay = ScanEvent.model_validate({"t": 3.0, "station": "s01", "serial": "SN1"})
    assert log.record([scan, scan]) == 1
    assert log.record([scan, later, replay]) == 1  # the replay scan has no wall clock to keep
    assert [r.ts for r in log.of_serial("SN1")] == [T0, T0 + 1]


def departure(ts: float, explanation: str, station: str = "s01", camera: str = "pets") -> Alert:
    return Alert(
        type="unscanned_departure", camera=camera, zone=station, station=station, t=10.0, ts=ts,
        track=3, explanation=explanation,
    )  # fmt: skip


def test_alerts_that_mention_the_serial_or_fall_in_its_scan_window(stack):
    client, store, _listener = stack
    ScanLog(store.engine).record(
        [ScanEvent.model_validate({"ts": iso(T0), "station": "s01", "serial": "SN0001"})]
    )
    # The scan, on the camera clock, is at T0 - 2 (skew 2 s); it covers departures from
    # 10 s before it (grace) to 60 s after it (before).
    mentions = departure(T0 + 900, "unit track 5 left; scan SN0001 at ... was used by track 3")
    near = departure(T0 - 2 + 50, "unit track 4 left station s01; no scan ...")
    edge = departure(T0 - 2 - 10, "unit track 6 left station s01")
    too_early = departure(T0 - 2 - 11, "unit track 7 left station s01")
    other_station = departure(T0 + 5, "unit track 8 left station s02", station="s02", camera="dock")
    longer_serial = departure(T0 + 2000, "scan SN00012 at ... was used by track 9")
    for a in (mentions, near, edge, too_early, other_station, longer_serial):
        store.add(a)
    alerts = client.get("/api/trace/SN0001").json()["alerts"]
    got = {a["alert"]["id"]: (a["match"], a.get("offset_s")) for a in alerts}
    assert got == {
        mentions.id: ("mentions", None),
        near.id: ("near_scan", 50.0),
        edge.id: ("near_scan", -10.0),
    }
    assert [a["alert"]["id"] for a in alerts] == [edge.id, near.id, mentions.id]  # time order
    assert alerts[0]["alert"]["state"] == "new"


def test_a_factory_operator_traces_only_through_its_own_cameras(stack):
    client, store, _listener = stack
    ScanLog(store.engine).record([
        ScanEvent.model_validate({"ts": iso(T0), "station": "s01", "serial": "SN5"}),
        ScanEvent.model_validate({"ts": iso(T0 + 60), "station": "s02", "serial": "SN5"}),
        ScanEvent.model_validate({"ts": iso(T0 + 90), "station": "s99", "serial": "SN5"}),
    ])  # fmt: skip
    theirs = departure(T0 + 70, "scan SN5 at ... was used by track 2", station="s02", camera="dock")
    ours = departure(T0 + 20, "scan SN5 at ... was used by track 1")
    store.add(theirs)
    store.add(ours)
    officer = client.get("/api/trace/SN5").json()
    assert [s["station"] for s in officer["scans"]] == ["s01", "s02", "s99"]  # s99: no camera
    assert {a["alert"]["id"] for a in officer["alerts"]} == {theirs.id, ours.id}
    client.post("/api/logout")
    assert client.get("/api/trace/SN5").status_code == 401
    sign_in(client, "operator")
    operator = client.get("/api/trace/SN5").json()
    assert [s["station"] for s in operator["scans"]] == ["s01"]
    assert [a["alert"]["id"] for a in operator["alerts"]] == [ours.id]


def test_listener_keeps_delivering_when_the_scan_log_fails(tmp_path: Path):
    """A broken database must not stop scans reaching the rules: the listener thread lives on."""
    log = ScanLog(f"sqlite:///{tmp_path / 'scans.db'}")
    with redis_server() as url:
        listener = ScanListener(ScanReader(url, since_s=0), log)
        listener.start()
        log.engine.dispose()
        (tmp_path / "scans.db").unlink()
        (tmp_path / "scans.db").mkdir()  # the database file is now a directory: writes fail
        bus = ScanBus(url)
        serials = []
        for serial in ("SN8", "SN9"):  # the second one arrives only if the first did no harm
            bus.publish([LiveScan.model_validate({"ts": iso(T0), "station": "s01", "serial": serial})])
            scan = wait_for(lambda: not listener.scans.empty() and listener.scans.get_nowait(), 10)
            serials.append(scan.serial if scan else None)
        bus.close()
        listener.stop()
    assert serials == ["SN8", "SN9"]
