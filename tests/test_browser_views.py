"""The serial trace, overview and zone editor pages in a real browser, and the overview API.

Chromium (Debian's) drives the page served by uvicorn; the zone editor saves into a real site
file, and the polygon drawn with the mouse is then used by the real Pipeline (real model, real
PETS 2009 frames) to raise an unauthorized entry. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from conftest import MODEL
from playwright.sync_api import Browser, Page, expect
from test_browser import serve, sign_in
from test_dashboard import PetsLive, redis_server
from test_dashboard import sign_in as api_sign_in
from test_trace import make_accounts
from test_zone_editor import SITE_FILE, pets_frames

from alerts.bus import AlertBus
from alerts.pipeline import Pipeline
from alerts.store import AlertStore
from alerts.types import Alert
from bondwatch.scanlog import ScanLog
from bondwatch.scans import ScanEvent
from bondwatch.site import Site, load_site
from dashboard.app import create_app
from dashboard.routes.overview import UPTIME_BASIS
from detectors.yolo import Detector
from streams.recordings import NewSegment, RecordingStore

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DAY = 86400.0
STOPPED = 7  # the segment of `pets` not recorded: the service was not running
SERIAL = "SN0001234"
# Where the test draws the new restricted zone: right of the PETS frame, where people walk in.
GATE = [(520, 280), (760, 280), (760, 450), (520, 450)]


@dataclass
class Views:
    url: str
    path: Path
    store: AlertStore
    pipeline: Pipeline
    scan_ts: list[float]
    alerts: list[Alert]  # the overview's alerts, for the expected totals


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def add_history(store: AlertStore, now: float) -> list[Alert]:
    """A week of alerts: departures and entries on several days, and one outage of `dock`."""
    alerts = [
        Alert(type="unscanned_departure", camera="pets", zone="s01", station="s01", t=10.0,
              ts=now - 3 * DAY + 60 * k, track=k) for k in range(3)
    ] + [
        Alert(type="unauthorized_entry", camera="pets", zone="lawn", t=5.0, ts=now - DAY - 60 * k,
              track=10 + k) for k in range(2)
    ] + [
        Alert(type="camera_offline", camera="dock", t=0.0, ts=now - 5 * 3600),
        Alert(type="camera_online", camera="dock", t=0.0, ts=now - 4 * 3600),
    ]  # fmt: skip
    for a in alerts:
        store.add(a)
    return alerts


def add_recording(rec: RecordingStore, tmp: Path, now: float) -> None:
    """Two hours of `pets` in 10-minute segments (the files' content does not matter), less the
    eighth: the service was stopped for those 10 minutes."""
    for k in range(12):
        if k == STOPPED:
            continue
        part = tmp / f"part-{k}.mp4"
        part.write_bytes(b"segment %d" % k)
        final = rec.root / "pets" / f"{k:04d}.mp4"
        final.parent.mkdir(parents=True, exist_ok=True)
        start = now - 2 * 3600 + 600 * k
        rec.add_segment(NewSegment("pets", part, start, 600.0 * k, 600.0 * (k + 1), 6000), final)


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(MODEL, threads=1)


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory, detector: Detector) -> Iterator[Views]:
    tmp = tmp_path_factory.mktemp("views")
    path = tmp / "site.yaml"
    path.write_text(SITE_FILE, encoding="utf-8")
    site = load_site(path)
    db = f"sqlite:///{tmp / 'bondwatch.db'}"
    store = AlertStore(db)
    accounts = make_accounts(tmp / "accounts.db")
    rec = RecordingStore(db, tmp / "recordings")
    now = time.time()
    history = add_history(store, now)
    add_recording(rec, tmp, now)
    # The serial's way through the workshop: received at s01, repaired, shipped from dock's s02.
    scan_ts = [now - 2 * DAY, now - 2 * DAY + 3 * 3600, now - DAY + 600]
    stations = ["s01", "s01", "s02"]
    ScanLog(store.engine).record([
        ScanEvent.model_validate({"ts": iso(ts), "station": st, "serial": SERIAL, "operator": "王工"})
        for ts, st in zip(scan_ts, stations, strict=True)
    ])  # fmt: skip
    departure = Alert(
        type="unscanned_departure", camera="dock", zone="dock-s02", station="s02", t=30.0, ts=now - DAY + 900,
        track=4, explanation=f"unit track 4 left station s02; scan {SERIAL} at ... was used by track 2",
    )  # fmt: skip
    store.add(departure)
    pipeline = Pipeline(site, detector)
    raised: list[Alert] = []

    def apply(new: Site) -> None:
        raised.extend(pipeline.reload_zones(new))

    with redis_server() as redis_url:
        bus = AlertBus(redis_url)
        app = create_app(
            PetsLive(site), store, bus, accounts, title="BondWatch 监控台", recording=rec,
            site_path=path, on_site=apply,
        )  # fmt: skip
        with serve(app) as url:
            yield Views(url, path, store, pipeline, scan_ts, [*history, departure])
        bus.close()
    store.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1600, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai"
    )
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert errors == [], f"JavaScript errors in the page: {errors}"


def test_trace_a_serial_through_in_repair_out(views: Views, page: Page):
    ARTIFACTS.mkdir(exist_ok=True)
    sign_in(page, views.url, "officer")
    page.click("#views a[data-view=trace]")
    expect(page.locator("section[data-page=trace]")).to_be_visible()
    expect(page.locator("main.layout")).to_be_hidden()
    expect(page.locator("#trace-empty")).to_have_text("请输入序列号开始追溯。")
    page.fill("#trace-serial", SERIAL)
    page.click("#trace-submit")
    assert page.evaluate("location.hash") == f"#trace?serial={SERIAL}"

    steps = page.locator(".trace-step")
    expect(steps).to_have_count(3)
    expect(steps.locator(".step-marker")).to_have_text(["进", "修", "出"])
    expect(steps.locator(".step-station")).to_have_text(["工位 s01", "工位 s01", "工位 s02"])
    expect(steps.nth(0).locator(".step-meta")).to_contain_text("操作员 王工")
    summary = f"序列号 {SERIAL}：3 次扫码，经过 2 个工位，1 条相关告警"
    expect(page.locator("#trace-summary")).to_contain_text(summary)
    video = steps.nth(2).locator(".video-link")
    expect(video).to_have_count(1)
    expect(video).to_contain_text("装卸区")
    assert float(video.get_attribute("data-t")) == pytest.approx(views.scan_ts[2], abs=0.01)
    alert = page.locator(".trace-alert")
    expect(alert).to_have_count(1)
    expect(alert.locator(".alert-type")).to_have_text("未扫码离开")
    expect(alert.locator(".match")).to_have_text("告警说明中提及该序列号")
    page.screenshot(path=ARTIFACTS / "trace-zh-CN.png")

    page.click("[data-lang=en]")
    expect(steps.locator(".step-marker")).to_have_text(["In", "Repair", "Out"])
    expect(page.locator("#trace-title")).to_have_text("Serial trace · In—Repair—Out")
    expect(page.locator("section[data-page=trace]")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "trace-en.png")

    # The alert opens in the alert desk's case panel, over the trace.
    alert.click()
    expect(page.locator("#case-panel")).to_be_visible()
    expect(page.locator("#case-title")).to_have_text("Unscanned departure")
    page.click("#case-close")
    expect(page.locator("#case-panel")).to_be_hidden()

    # One click to the video at the scan: the recordings view opens on that camera.
    video.click()
    expect(page.locator("section[data-page=trace]")).to_be_hidden()
    expect(page.locator("#recordings-view")).to_be_visible()
    expect(page.locator("#rec-camera")).to_have_value("dock")

    # A reload of a trace URL traces again; an unknown serial says so.
    page.goto(f"{views.url}/#trace?serial=NOPE")
    expect(page.locator("#trace-empty")).to_have_text("No scans of serial NOPE were found.")


def test_overview_draws_alerts_uptime_and_coverage(views: Views, page: Page):
    ARTIFACTS.mkdir(exist_ok=True)
    sign_in(page, views.url, "officer")
    page.goto(f"{views.url}/#overview")
    expect(page.locator("#ov-alerts .seg-rect").first).to_be_visible()
    kinds = page.locator("#ov-alerts .seg-rect").evaluate_all("rs => rs.map(r => r.dataset.type)")
    assert set(kinds) == {"unscanned_departure", "unauthorized_entry", "camera_offline", "camera_online"}
    counted = sum(int(t) for t in page.locator("#ov-alerts g.day").evaluate_all(
        "gs => gs.map(g => g.dataset.total)"))  # fmt: skip
    assert counted == len(views.alerts)
    expect(page.locator(".kpi[data-kpi=total] .kpi-value")).to_have_text(str(len(views.alerts)))
    expect(page.locator(".kpi[data-kpi=unscanned_departure] .kpi-value")).to_have_text("4")
    expect(page.locator("#ov-legend .legend-item")).to_have_count(4)
    dock = page.locator('#ov-uptime .hbar[data-camera="dock"]')
    expect(dock.locator(".hbar-note")).to_have_text("1 次离线")
    uptime = float(dock.locator(".hbar-fill").get_attribute("data-value"))
    assert 0.97 < uptime < 1.0  # one hour down in the week
    expect(dock.locator(".hbar-part[data-part=down]")).to_have_count(1)
    expect(dock.locator(".hbar-part[data-part=unwatched]")).to_have_count(0)
    # pets: watched for the last two hours, 10 minutes of them with the service stopped.
    pets_up = page.locator('#ov-uptime .hbar[data-camera="pets"]')
    expect(pets_up.locator(".hbar-note")).to_contain_text("0 次离线 · 服务未运行 10 分钟 · 自 ")
    up = float(pets_up.locator(".hbar-fill").get_attribute("data-value"))
    unwatched = float(pets_up.locator(".hbar-part[data-part=unwatched]").get_attribute("data-value"))
    assert (up, unwatched) == (pytest.approx(11 / 12, abs=0.005), pytest.approx(1 / 12, abs=0.005))
    expect(page.locator("#ov-uptime-legend .legend-item")).to_have_text(["离线", "服务未运行"])
    pets = page.locator('#ov-coverage .hbar[data-camera="pets"] .hbar-fill')
    coverage = float(pets.get_attribute("data-value"))
    assert coverage > 0  # two hours recorded ...
    expect(page.locator('#ov-coverage .hbar[data-camera="dock"] .hbar-value')).to_have_text("0%")  # none
    page.screenshot(path=ARTIFACTS / "overview-zh-CN.png")
    page.click("#overview-days button[data-days='30']")
    expect(page.locator("#ov-alerts g.day")).to_have_count(30)
    page.click("[data-lang=en]")
    expect(page.locator("#overview-days button[data-days='30']")).to_have_text("Last 30 days")
    expect(page.locator("#ov-uptime-legend .legend-item")).to_have_text(["Offline", "Service not running"])
    expect(pets_up.locator(".hbar-note")).to_contain_text("0 outages · not running 10 min · since ")
    page.screenshot(path=ARTIFACTS / "overview-en.png")


def test_overview_api_counts_days_uptime_and_coverage(views: Views):
    with httpx.Client(base_url=views.url) as client:
        api_sign_in(client, "officer")  # type: ignore[arg-type]
        res = client.get("/api/overview", params={"days": 7, "tz": "Asia/Shanghai"})
        assert res.status_code == 200, res.text
        body = res.json()
        assert len(body["days"]) == 7 and body["timezone"] == "Asia/Shanghai"
        assert sum(sum(d["counts"].values()) for d in body["days"]) == len(views.alerts)
        assert body["types"][:2] == ["unscanned_departure", "unauthorized_entry"]
        pets = next(c for c in body["coverage"] if c["camera"] == "pets")
        assert pets["recorded_s"] == pytest.approx(2 * 3600 - 600, abs=1)
        dock = next(u for u in body["uptime"] if u["camera"] == "dock")
        assert (dock["down_s"], dock["outages"]) == (pytest.approx(3600, abs=1), 1)
        assert (dock["unwatched_s"], dock["since_ts"]) == (0, body["from_ts"])  # nothing recorded of it
        up = next(u for u in body["uptime"] if u["camera"] == "pets")
        window = body["to_ts"] - up["since_ts"]  # from its first segment, two hours before the fixture's now
        assert 2 * 3600 <= window < 2 * 3600 + 300
        assert (up["down_s"], up["unwatched_s"]) == (0, 600)
        assert up["up_s"] == pytest.approx(window - 600, abs=0.1)
        assert body["uptime_basis"] == UPTIME_BASIS
        assert client.get("/api/overview", params={"tz": "Mars/Base"}).status_code == 422
        assert client.get("/api/overview", params={"days": 0}).status_code == 422


def frame_to_page(page: Page, x: float, y: float) -> tuple[float, float]:
    box = page.locator("#zones-svg").bounding_box()
    assert box is not None
    return box["x"] + x * box["width"] / 768, box["y"] + y * box["height"] / 576


def test_zone_editor_saves_a_polygon_that_the_rule_then_uses(views: Views, page: Page):
    ARTIFACTS.mkdir(exist_ok=True)
    # Before the edit: the real model over real frames, and no zone where people walk in.
    before = [a for f in pets_frames(0, 20) for a in views.pipeline.process([f])[1]]
    assert before == []

    sign_in(page, views.url, "admin")
    page.goto(f"{views.url}/#zones")
    page.wait_for_function("() => document.getElementById('zones-frame').naturalWidth === 768")
    expect(page.locator("#zones-file")).to_contain_text("site.yaml")
    expect(page.locator(".zone-item")).to_have_count(1)  # s01 on camera pets
    page.click("#zones-add-restricted")
    for x, y in GATE:
        page.mouse.click(*frame_to_page(page, x, y))
    expect(page.locator(".zone-item.selected .zone-item-kind")).to_have_text("禁区 · 4 个顶点")
    page.click("#zone-finish")
    page.fill("#zone-id", "gate")
    page.fill("#zone-name", "东门")
    page.fill("#zone-dwell", "0.5")
    # Drag the first corner 10 px to the left, as an officer corrects a corner.
    page.mouse.move(*frame_to_page(page, *GATE[0]))
    page.mouse.down()
    page.mouse.move(*frame_to_page(page, GATE[0][0] - 10, GATE[0][1]), steps=5)
    page.mouse.up()
    page.screenshot(path=ARTIFACTS / "zones-editing.png")
    page.click("#zones-save")
    expect(page.locator("#zones-status")).to_contain_text("已保存并生效")
    expect(page.locator("#zones-errors li")).to_have_count(0)
    page.screenshot(path=ARTIFACTS / "zones-saved.png")

    saved = next(z for z in load_site(views.path).zones if z.id == "gate")
    assert (saved.kind, saved.camera, saved.name, saved.dwell_s) == ("restricted", "pets", "东门", 0.5)
    expected = [(GATE[0][0] - 10, GATE[0][1]), *GATE[1:]]
    assert len(saved.polygon) == 4
    for (x, y), (ex, ey) in zip(saved.polygon, expected, strict=True):
        assert abs(x - ex) <= 2 and abs(y - ey) <= 2, saved.polygon

    # The running pipeline now uses it: people walking in there are unauthorized entries.
    after = [a for f in pets_frames(22, 80) for a in views.pipeline.process([f])[1]]
    after += views.pipeline.flush()  # an entry waits the zone's badge window (10 s) for a badge
    gate = [a for a in after if a.zone == "gate"]
    assert gate and {a.type for a in gate} == {"unauthorized_entry"}

    # A bad polygon is refused by the server with the reason, in the page.
    page.click("#zones-add-station")
    for x, y in [(10, 10), (60, 10), (60, 60)]:
        page.mouse.click(*frame_to_page(page, x, y))
    page.click("#zone-finish")
    page.fill("#zone-id", "gate")  # taken
    page.click("#zones-save")
    expect(page.locator("#zones-errors li")).to_contain_text(["duplicate id 'gate'"])


def test_zone_editor_is_read_only_for_an_officer(views: Views, page: Page):
    sign_in(page, views.url, "officer")
    page.goto(f"{views.url}/#zones")
    expect(page.locator("#zones-file")).to_have_text("只有管理员可以编辑区域；当前为只读。")
    expect(page.locator("#zones-tools")).to_be_hidden()
    expect(page.locator(".zones-actions")).to_be_hidden()
    status = page.evaluate(
        """() => fetch('/api/zones/pets', {method: 'PUT', headers: {'Content-Type': 'application/json'},
                 body: JSON.stringify({zones: []})}).then(r => r.status)"""
    )
    assert status == 403
