"""The alert desk and the evidence search in a real browser, against real parts.

Thirty seconds of PETS 2009 are recorded twice into a real recording store (H.264 segments,
SQLite index) with a reported camera outage in between, so the timeline has two recorded spans
and one gap. Alerts go through the service's own AlertSink (store, outbox, recording hold,
snapshot from the frame ring), the outbox publisher and a real Redis stream to the page.
Debian's Chromium plays the clips; screenshots of each view go to tests/artifacts/.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, expect
from rtsp import make_h264_mp4
from test_browser import serve
from test_dashboard import PetsLive, ground_truth, redis_server, wait_for_follower

from alerts.bus import AlertBus
from alerts.evidence import Evidence, FrameRing
from alerts.outbox import Outbox, Publisher
from alerts.store import AlertStore
from alerts.types import Alert, iso
from bondwatch.accounts import Accounts
from bondwatch.service import AlertSink
from bondwatch.site import parse_site
from dashboard.app import create_app
from detectors.types import DetectionBatch
from streams.frame import Frame
from streams.recorder import Recorder
from streams.recordings import RecordingStore
from streams.source import VideoSource

PETS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pets2009-s2l1"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
TZ = ZoneInfo("Asia/Shanghai")  # the browser's time zone in these tests
SECONDS = 30  # each recorded session
OUTAGE = "camera unreachable: connection refused"
SITE_YAML = """
name: 保税维修车间 A
timezone: Asia/Shanghai
cameras:
  - id: pets
    name: 东门道路
    url: rtsp://127.0.0.1:8554/pets
    factory: f1
  - id: dock
    name: 装卸区
    url: rtsp://127.0.0.1:8554/dock
    factory: f2
zones:
  - id: lawn
    camera: pets
    kind: restricted
    polygon: [[300, 150], [700, 150], [700, 420], [300, 420]]
  - id: s01
    camera: pets
    kind: station
    station: s01
    polygon: [[520, 110], [740, 110], [740, 240], [520, 240]]
"""
DAY = r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}"  # a full time as the page writes it in zh-CN
PASSWORDS = {"admin": "admin-pass-1", "officer": "officer-pass-1", "operator": "operator-pass-1"}


@dataclass(frozen=True)
class Desk:
    url: str
    redis_url: str
    store: AlertStore
    recording: RecordingStore
    sink: AlertSink
    t0: float  # wall clock of the first session's video time 0
    t1: float  # ... of the second session's, after the outage
    departure: Alert  # in the first session
    offline: Alert  # of camera dock (another factory)


def record(recording: RecordingStore, video: Path, start_ts: float, ring: FrameRing) -> None:
    """Feed `video` into a recorder as if it arrived live from `start_ts`; every fifth frame
    (with the ground-truth boxes as detections) goes into the snapshot ring."""
    recorder = Recorder(recording, "pets", segment_s=4.0)
    truth = ground_truth(400)
    with VideoSource(str(video), camera="pets") as src:
        on_packet = lambda p: recorder.write(dataclasses.replace(p, ts=start_ts + p.t))  # noqa: E731
        for frame in src.frames(on_packet=on_packet):
            if frame.index % 5 == 0:
                live = Frame("pets", frame.index, frame.t, start_ts + frame.t, frame.image)
                ring.add(live, DetectionBatch("pets", frame.index, live.t, live.ts, 768, 576,
                                              truth.get(frame.index, ())))  # fmt: skip
    assert recorder.close()


def make_accounts(url: str) -> Accounts:
    accounts = Accounts(url)
    accounts.add("admin", "admin", PASSWORDS["admin"])
    accounts.add("officer", "officer", PASSWORDS["officer"])
    accounts.add("operator", "operator", PASSWORDS["operator"], factory="f1")
    return accounts


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    data = tmp_path_factory.mktemp("desk")
    db = f"sqlite:///{data / 'bondwatch.db'}"
    video = make_h264_mp4(PETS / "vtest.avi", seconds=SECONDS)
    site = parse_site(SITE_YAML)
    store = AlertStore(db)
    recording = RecordingStore(db, data / "recordings")
    ring = FrameRing(keep_s=3600)
    # A window counts as recorded by age only after ten minutes: longer than this module runs.
    evidence = Evidence(data, store, recording, site, ring, settle_s=600.0)
    outbox = Outbox(store)
    sink = AlertSink(outbox, recording, evidence)
    now = time.time()
    t0, t1 = now - 200, now - 120
    record(recording, video, t0, ring)
    recording.note_outage("pets", OUTAGE)
    record(recording, video, t1, ring)
    departure = Alert(type="unscanned_departure", camera="pets", zone="s01", station="s01",
                      track=3, t=5.0, ts=t0 + 5.0)  # fmt: skip
    offline = Alert(type="camera_offline", camera="dock", t=0.0, ts=t0 - 30)
    sink.emit(departure)
    sink.emit(offline)
    accounts = make_accounts(db)
    with redis_server() as redis_url:
        bus = AlertBus(redis_url)
        publisher = Publisher(outbox, bus)
        publisher.start()
        app = create_app(PetsLive(site), store, bus, accounts, title="BondWatch 监控台",
                         recording=recording, evidence=evidence)  # fmt: skip
        with serve(app) as url:
            yield Desk(url, redis_url, store, recording, sink, t0, t1, departure, offline)
        publisher.stop()
        bus.close()
    store.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1600, "height": 1000}, locale="zh-CN", timezone_id=str(TZ),
        accept_downloads=True,
    )  # fmt: skip
    pg = context.new_page()
    yield pg
    context.close()


def sign_in(page: Page, url: str, name: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#login-name", name)
    page.fill("#login-password", PASSWORDS[name])
    page.click("#login-submit")
    page.wait_for_url(f"{url}/")


def local(ts: float) -> str:
    """`ts` as a datetime-local input wants it, in the browser's time zone."""
    return datetime.fromtimestamp(ts, TZ).strftime("%Y-%m-%dT%H:%M:%S")


def wait_playing(page: Page, video: str) -> None:
    """The video element `video` (a CSS selector) has decoded a frame and its time advances."""
    page.wait_for_function(
        f"""() => {{ const v = document.querySelector('{video}');
                    return v.readyState >= 2 && v.currentTime > 0 && !v.paused; }}""",
        timeout=60_000,
    )
    at = page.evaluate(f"document.querySelector('{video}').currentTime")
    page.wait_for_function(f"document.querySelector('{video}').currentTime > {at} + 0.3", timeout=30_000)


def test_an_alert_arrives_plays_and_is_worked_from_the_desk(desk: Desk, page: Page):
    ARTIFACTS.mkdir(exist_ok=True)
    sign_in(page, desk.url, "officer")
    expect(page.locator(f'.alert[data-id="{desk.departure.id}"]')).to_have_count(1)
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    new_before = int(page.locator("#alert-count").inner_text())
    assert page.evaluate("window.bondwatch.beeps()") == 0

    # An entry through the service's sink: stored, held, snapshotted, published by the outbox.
    wait_for_follower(desk.redis_url)
    entry = Alert(type="unauthorized_entry", camera="pets", zone="lawn", track=15, t=12.0,
                  ts=desk.t1 + 12.0, confidence=0.87)  # fmt: skip
    desk.sink.emit(entry)
    item = page.locator(f'.alert[data-id="{entry.id}"]')
    expect(page.locator(".alert").first).to_have_attribute("data-id", entry.id, timeout=15_000)
    expect(item.locator(".alert-type")).to_have_text("未授权进入")
    expect(page.locator("#alert-count")).to_have_text(str(new_before + 1))
    assert page.evaluate("window.bondwatch.beeps()") == 1  # the arrival sounded once

    # The alert's clip plays in the case panel; the snapshot is the burned-in frame.
    item.click()
    expect(page.locator("#case-title")).to_have_text("未授权进入")
    wait_playing(page, "#case-video")
    assert page.evaluate("document.querySelector('#case-video').videoWidth") == 768
    page.click("#media-snapshot")
    page.wait_for_function("document.querySelector('#case-snapshot').naturalWidth === 768")
    page.click("#media-clip")
    original = page.evaluate("document.querySelector('#case-video').src")
    page.click("#clip-annotated")  # the re-encoded copy with the time burned in
    expect(page.locator("#clip-annotated")).to_have_class("active")
    page.wait_for_function(f"document.querySelector('#case-video').src.startsWith('blob:')"
                           f" && document.querySelector('#case-video').src !== '{original}'", timeout=60_000)
    wait_playing(page, "#case-video")
    expect(page.locator("#media-status")).to_be_empty()
    expect(page.locator("#case-deliveries")).to_contain_text("无通知记录")  # no channel routes it
    page.screenshot(path=ARTIFACTS / "desk-case-zh-CN.png")

    # Acknowledge, then resolve (a note is required), then a note: the history grows.
    page.click("#act-acknowledge")
    expect(page.locator("#case-state")).to_have_text("已确认")
    expect(page.locator("#alert-count")).to_have_text(str(new_before))
    page.click("#act-resolve")
    expect(page.locator("#case-error")).to_have_text("处理告警需要填写说明。")
    page.select_option("#act-resolution", "confirmed_violation")
    page.fill("#case-text", "人员越界进入草坪区域")
    page.click("#act-resolve")
    expect(page.locator("#case-state")).to_have_text("已处理")
    expect(item.locator(".alert-state")).to_have_text("已处理")
    page.fill("#case-text", "已通知车间主管")
    page.click("#act-note")
    expect(page.locator("#case-history li .step-action")).to_have_text(
        ["产生告警", "确认", "处理 · 确认违规", "备注"]
    )
    case = desk.store.case(entry.id)
    assert case is not None and (case.state, case.resolution) == ("resolved", "confirmed_violation")

    # The evidence package downloads as a zip.
    with page.expect_download() as download:
        page.click("#act-export")
    package = Path(tempfile.mkdtemp()) / download.value.suggested_filename
    download.value.save_as(package)
    assert zipfile.is_zipfile(package)
    expect(page.locator("#case-error")).to_contain_text("已下载")

    # Filters are server queries: camera, state, time range.
    page.click("#case-close")
    page.select_option("#filter-camera", "dock")
    expect(page.locator(".alert")).to_have_count(1)
    expect(page.locator(".alert").first).to_have_attribute("data-id", desk.offline.id)
    page.select_option("#filter-camera", "")
    page.select_option("#filter-state", "resolved")
    expect(page.locator(".alert")).to_have_count(1)
    expect(page.locator(".alert").first).to_have_attribute("data-id", entry.id)
    page.select_option("#filter-state", "")
    page.fill("#filter-from", local(desk.t0))
    page.fill("#filter-to", local(desk.t0 + 60))
    page.locator("#filter-to").dispatch_event("change")
    expect(page.locator(".alert")).to_have_count(1)
    expect(page.locator(".alert").first).to_have_attribute("data-id", desk.departure.id)
    page.screenshot(path=ARTIFACTS / "desk-filters-zh-CN.png")
    page.click("#filter-reset")
    expect(page.locator(f'.alert[data-id="{entry.id}"]')).to_have_count(1)

    # Muted: the next alert makes no sound.
    page.click("#sound-toggle")
    expect(page.locator("#sound-label")).to_have_text("提示音 关")
    wait_for_follower(desk.redis_url)
    quiet = Alert(type="unauthorized_entry", camera="pets", zone="lawn", track=16, t=20.0, ts=desk.t1 + 20)
    desk.sink.emit(quiet)
    expect(page.locator(f'.alert[data-id="{quiet.id}"]')).to_have_count(1, timeout=15_000)
    assert page.evaluate("window.bondwatch.beeps()") == 1

    page.click("[data-lang=en]")
    page.locator(f'.alert[data-id="{entry.id}"]').click()
    expect(page.locator("#case-title")).to_have_text("Unauthorized entry")
    expect(page.locator("#act-export")).to_have_text("Export evidence")
    wait_playing(page, "#case-video")
    page.screenshot(path=ARTIFACTS / "desk-case-en.png")

    # One click from the alert to the camera's recording around it, playing from just before.
    page.click("#case-recordings")
    expect(page.locator("#recordings-view")).to_be_visible()
    expect(page.locator(f'.tl-marker[data-id="{entry.id}"]')).to_have_count(1)
    wait_playing(page, "#rec-video")
    cursor = page.evaluate("window.bondwatch.recordingCursor()") / 1000
    assert entry.ts is not None and entry.ts - 6 < cursor < entry.ts + 3


def timeline_x(page: Page, desk: Desk, ts: float, start: float, end: float) -> tuple[float, float]:
    box = page.locator("#timeline").bounding_box()
    assert box is not None
    return box["x"] + box["width"] * (ts - start) / (end - start), box["y"] + box["height"] * 0.7


def test_recordings_timeline_shows_the_gap_plays_and_downloads(desk: Desk, page: Page):
    ARTIFACTS.mkdir(exist_ok=True)
    sign_in(page, desk.url, "officer")
    page.click("[data-view=recordings]")
    expect(page.locator("#recordings-view")).to_be_visible()
    start, end = desk.t0 - 40, time.time()
    page.select_option("#rec-camera", "pets")
    page.fill("#rec-from", local(start))
    page.fill("#rec-to", local(end))
    page.click("#rec-search")

    # Two recorded stretches around one reported outage, and the alerts on their moments.
    expect(page.locator(".tl-span")).to_have_count(2)
    expect(page.locator(".tl-gap")).to_have_count(1)
    expect(page.locator("#rec-gaps")).to_contain_text(OUTAGE)
    expect(page.locator(".tl-gap")).to_have_attribute("title", re.compile(f"^{DAY}.* – {DAY}.*: {OUTAGE}$"))
    marker = page.locator(f'.tl-marker[data-id="{desk.departure.id}"]')
    expect(marker).to_have_count(1)

    # Click inside the second stretch: playback starts at that moment.
    page.mouse.click(*timeline_x(page, desk, desk.t1 + 10, start, end))
    wait_playing(page, "#rec-video")
    cursor = page.evaluate("window.bondwatch.recordingCursor()") / 1000
    assert desk.t1 + 9 < cursor < desk.t1 + 14
    expect(page.locator("#rec-now")).not_to_be_empty()
    page.screenshot(path=ARTIFACTS / "recordings-zh-CN.png")

    # Inside the gap: nothing to play, and why.
    page.mouse.click(*timeline_x(page, desk, desk.t0 + SECONDS + 20, start, end))
    expect(page.locator("#rec-status")).to_have_text(f"该时刻没有录像。 {OUTAGE}")

    # An alert marker opens its case.
    marker.click()
    expect(page.locator("#case-title")).to_have_text("未扫码离开")
    page.click("#case-close")

    # A chosen window downloads as the original recording (not re-encoded), audited as export.
    page.fill("#dl-from", local(desk.t1 + 5))
    page.fill("#dl-to", local(desk.t1 + 15))
    with page.expect_download() as download:
        page.click("#dl-button")
    clip = Path(tempfile.mkdtemp()) / download.value.suggested_filename
    download.value.save_as(clip)
    with VideoSource(str(clip)) as src:
        packets = list(src.packets())
    assert 100 <= len(packets) <= 115  # 10 s at 10 fps, from the keyframe at or before the start
    exports = desk.store.audit.entries("evidence_export")
    assert exports and exports[-1].actor == "officer" and exports[-1].target == "camera:pets"

    page.click("[data-lang=en]")
    expect(page.locator("#timeline-title")).to_have_text("Recording timeline")
    n = len(desk.store.recent(camera="pets", from_ts=start, to_ts=end))  # other tests add some
    expect(page.locator("#tl-summary")).to_have_text(f"2 recorded spans · 1 gap · {n} alert{'s' * (n != 1)}")
    expect(page.locator("#rec-status")).to_have_text(f"Nothing was recorded at this moment. {OUTAGE}")
    page.mouse.click(*timeline_x(page, desk, desk.t0 + 12, start, end))
    wait_playing(page, "#rec-video")
    page.screenshot(path=ARTIFACTS / "recordings-en.png")


def test_an_operator_watches_recordings_but_cannot_export(desk: Desk, page: Page):
    sign_in(page, desk.url, "operator")
    page.goto(f"{desk.url}/#recordings")
    expect(page.locator(".tl-span").first).to_be_visible()  # the last hour of its own camera
    expect(page.locator("#rec-download-box")).to_be_hidden()
    api = page.request  # the page's session cookie
    en = {"Accept-Language": "en"}
    window = {"from": str(desk.t1 + 5), "to": str(desk.t1 + 8)}
    clip = f"{desk.url}/api/recordings/pets/clip.mp4"
    assert api.get(clip, params=window, headers=en).status == 200
    refused = api.get(clip, params=window | {"download": "1"}, headers=en)
    assert refused.status == 403
    assert refused.json()["detail"] == "the operator role may watch recordings but not download them"
    other = api.get(f"{desk.url}/api/recordings/dock/timeline", params=window, headers=en)
    assert other.status == 403  # another factory's camera
    page.click("[data-view=live]")
    page.locator(f'.alert[data-id="{desk.departure.id}"]').click()
    expect(page.locator("#case-title")).to_have_text("未扫码离开")
    expect(page.locator("#act-export")).to_be_hidden()
    assert api.post(f"{desk.url}/api/alerts/{desk.departure.id}/export", headers=en).status == 403


@pytest.fixture(scope="module")
def officer(desk: Desk) -> Iterator[httpx.Client]:
    """The same server's API, signed in as an officer (no browser needed for its tables)."""
    with httpx.Client(base_url=desk.url, headers={"Accept-Language": "en"}) as client:
        res = client.post("/api/login", json={"name": "officer", "password": PASSWORDS["officer"]})
        assert res.status_code == 200, res.text
        yield client


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"camera": "dock"}, {"offline"}),
        ({"type": "camera_offline"}, {"offline"}),
        ({"type": ["camera_offline", "unscanned_departure"]}, {"offline", "departure"}),
        ({"station": "s01"}, {"departure"}),
        ({"camera": "pets", "type": "camera_offline"}, set()),
        ({"from": -35, "to": -25}, {"offline"}),  # seconds from the first session's start
        ({"from": 0, "to": SECONDS}, {"departure"}),
        ({"from": -60}, {"offline", "departure"}),
        ({"to": -60}, set()),
    ],
)
def test_the_desk_filters_on_the_server(
    desk: Desk, officer: httpx.Client, query: dict[str, object], expected: set[str]
):
    named = {"departure": desk.departure.id, "offline": desk.offline.id}
    params = {k: iso(desk.t0 + v) if k in ("from", "to") else v for k, v in query.items()}
    res = officer.get("/api/alerts", params=params)  # type: ignore[arg-type]
    assert res.status_code == 200, res.text
    alerts = res.json()
    assert {a["id"] for a in alerts} & set(named.values()) == {named[n] for n in expected}
    for a in alerts:  # and nothing else that does not match
        assert a["type"] in (query.get("type") or a["type"])
        assert a["camera"] == query.get("camera", a["camera"])
        assert a.get("station") == query.get("station", a.get("station"))


def test_the_desk_filters_by_case_state(desk: Desk, officer: httpx.Client):
    alert = Alert(type="unscanned_departure", camera="pets", zone="s01", station="s01", track=9,
                  t=25.0, ts=desk.t0 + 25)  # fmt: skip
    desk.sink.emit(alert)
    desk.store.act(alert.id, "acknowledge", "officer", "officer")
    ids = lambda state: {a["id"] for a in officer.get("/api/alerts", params={"state": state}).json()}  # noqa: E731
    assert alert.id in ids("acknowledged")
    assert alert.id not in ids("new") | ids("resolved")
    assert officer.get("/api/alerts", params={"state": "closed"}).status_code == 422


@pytest.mark.parametrize(
    ("path", "window", "status", "detail"),
    [
        ("timeline", (10, 5), 422, "the end of the window must come after its start"),
        ("clip.mp4", (10, 10), 422, "the end of the window must come after its start"),
        ("clip.mp4", (0, 2 * 3600 + 1), 422, "the window may be at most 1 h long"),
        ("timeline", (0, 8 * 86400), 422, "the window may be at most 168 h long"),
        ("clip.mp4", (SECONDS + 5, SECONDS + 15), 404, "no recording of camera pets between "),
    ],
)
def test_recording_requests_that_cannot_be_served(
    desk: Desk, officer: httpx.Client, path: str, window: tuple[float, float], status: int, detail: str
):
    params = {"from": iso(desk.t0 + window[0]), "to": iso(desk.t0 + window[1])}
    res = officer.get(f"/api/recordings/pets/{path}", params=params)
    assert res.status_code == status, res.text
    assert res.json()["detail"].startswith(detail)


def test_the_timeline_and_a_played_clip(desk: Desk, officer: httpx.Client):
    res = officer.get(
        "/api/recordings/pets/timeline", params={"from": iso(desk.t0 - 10), "to": iso(desk.t1 + 60)}
    )
    assert res.status_code == 200, res.text
    body = res.json()
    spans = [(parse(s["start"]), parse(s["end"])) for s in body["spans"]]
    assert len(spans) == 2
    assert spans[0][0] == pytest.approx(desk.t0, abs=0.01)
    assert spans[0][1] == pytest.approx(desk.t0 + SECONDS, abs=0.2)
    assert spans[1][0] == pytest.approx(desk.t1, abs=0.01)
    [gap] = body["gaps"]
    assert (parse(gap["start"]), parse(gap["end"]), gap["reason"]) == (
        pytest.approx(spans[0][1], abs=0.01), pytest.approx(desk.t1, abs=0.01), OUTAGE
    )  # fmt: skip
    assert desk.departure.id in [a["id"] for a in body["alerts"]]
    assert desk.offline.id not in [a["id"] for a in body["alerts"]]  # another camera's

    views = len(desk.store.audit.entries("evidence_view"))
    clip = officer.get(
        "/api/recordings/pets/clip.mp4", params={"from": iso(desk.t1 + 5.5), "to": iso(desk.t1 + 7)}
    )
    assert clip.status_code == 200
    assert clip.headers["content-type"] == "video/mp4"
    assert clip.headers["content-disposition"].startswith("inline")
    start = parse(clip.headers["x-clip-start"])
    assert desk.t1 + 4.5 < start <= desk.t1 + 5.5  # the keyframe at or before (one a second)
    entries = desk.store.audit.entries("evidence_view")
    assert len(entries) == views + 1
    assert entries[-1].target == "camera:pets"
    assert entries[-1].detail["sha256"] == clip.headers["x-clip-sha256"]


def test_a_site_without_recording_says_so(desk: Desk, tmp_path: Path):
    accounts = make_accounts(f"sqlite:///{tmp_path / 'accounts.db'}")
    bus = AlertBus(desk.redis_url)
    app = create_app(PetsLive(parse_site(SITE_YAML)), desk.store, bus, accounts, title="BondWatch")
    client = TestClient(app)
    client.post("/api/login", json={"name": "officer", "password": PASSWORDS["officer"]})
    res = client.get("/api/recordings/pets/timeline", params={"from": "0", "to": "60"})
    assert res.status_code == 503
    assert res.json()["detail"] == "this site records no video: recording is disabled in its site file"
    bus.close()


def parse(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
