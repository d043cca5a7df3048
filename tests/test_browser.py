"""The dashboard in a real browser: sign-in, live video decodes, alerts arrive by themselves, i18n.

Chromium (the system one, never a downloaded build) opens the page served by uvicorn; the
alerts travel through a real Redis server; the video is real PETS 2009 footage over WebRTC.
Screenshots go to tests/artifacts/ for a human to look at.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect
from test_dashboard import (
    PASSWORDS,
    SITE_YAML,
    PetsLive,
    make_accounts,
    make_alert,
    redis_server,
    wait_for_follower,
)

from alerts.bus import AlertBus
from alerts.store import AlertStore
from bondwatch.redis_server import free_port
from bondwatch.site import parse_site
from dashboard.app import create_app

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@dataclass(frozen=True)
class Stack:
    url: str
    redis_url: str
    store: AlertStore
    bus: AlertBus
    live: PetsLive


@contextlib.contextmanager
def serve(app: object) -> Iterator[str]:
    """Run `app` under uvicorn on a free loopback port in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A running dashboard with two past alerts."""
    db = tmp_path_factory.mktemp("browser") / "bondwatch.db"
    store = AlertStore(f"sqlite:///{db}")
    accounts = make_accounts(db)
    now = time.time()
    store.add(make_alert("camera_offline", camera="dock", ts=now - 3600, t=0.0))
    store.add(make_alert("unscanned_departure", ts=now - 600, t=73.0))
    with redis_server() as redis_url:
        bus = AlertBus(redis_url)
        live = PetsLive(parse_site(SITE_YAML))
        app = create_app(live, store, bus, accounts, title="BondWatch 监控台")
        with serve(app) as url:
            yield Stack(url, redis_url, store, bus, live)
        bus.close()
    store.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1600, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai"
    )
    pg = context.new_page()
    yield pg
    context.close()


def frames_decoded(page: Page, camera: str) -> int:
    return page.evaluate(
        """cam => {
            const v = document.querySelector(`video[data-camera="${cam}"]`);
            return v ? v.getVideoPlaybackQuality().totalVideoFrames : 0;
        }""",
        camera,
    )


def test_live_view_alerts_and_language(stack: Stack, page: Page):
    url, redis_url = stack.url, stack.redis_url
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(url)

    # Not signed in: the dashboard sends the browser to the sign-in page.
    page.wait_for_url(f"{url}/login")
    expect(page.locator("#login-title")).to_have_text("登录监控台")
    expect(page.locator("#site-name")).to_have_text("保税维修车间 A")
    page.screenshot(path=ARTIFACTS / "login-zh-CN.png")
    page.fill("#login-name", "officer")
    page.fill("#login-password", "not-the-password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_have_text("用户名或密码错误。")
    page.fill("#login-password", PASSWORDS["officer"])
    page.click("#login-submit")
    page.wait_for_url(f"{url}/")
    expect(page.locator("#user-name")).to_have_text("officer")
    expect(page.locator("#user-role")).to_have_text("海关关员")

    # The page: site name, both camera tiles with their health, the stored alerts.
    expect(page.locator("#site-name")).to_have_text("保税维修车间 A")
    expect(page.locator('.tile[data-camera="pets"] .health')).to_have_text("在线")
    expect(page.locator('.tile[data-camera="dock"] .health')).to_have_text("离线")
    expect(page.locator('.tile[data-camera="dock"] .stats')).to_have_text("connection refused")
    # A live camera whose lens is covered is not supervising: its badge says so, and why.
    stack.live.tamper = "covered"
    expect(page.locator('.tile[data-camera="pets"] .health')).to_have_text("遮挡/移位", timeout=10_000)
    expect(page.locator('.tile[data-camera="pets"] .stats')).to_contain_text("画面异常: covered")
    stack.live.tamper = ""
    expect(page.locator('.tile[data-camera="pets"] .health')).to_have_text("在线", timeout=10_000)
    expect(page.locator(".alert")).to_have_count(2)
    expect(page.locator(".alert").first).to_contain_text("未扫码离开")

    # Live video: the browser decodes frames of the PETS camera (WebRTC, VP8 from aiortc).
    page.wait_for_function(
        """() => document.querySelector('video[data-camera="pets"]')
            .getVideoPlaybackQuality().totalVideoFrames > 5""",
        timeout=60_000,
    )
    first = frames_decoded(page, "pets")
    size = page.evaluate(
        """() => { const v = document.querySelector('video[data-camera="pets"]');
                   return [v.videoWidth, v.videoHeight]; }"""
    )
    assert size == [768, 576]

    # A new alert on the bus appears on top of the list without a reload.
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    wait_for_follower(redis_url)
    alert = make_alert("unauthorized_entry")
    stack.store.add(alert)  # as the service does: stored first, then published
    stack.bus.publish(alert)
    newest = page.locator(".alert").first
    expect(newest).to_have_attribute("data-id", alert.id, timeout=15_000)
    expect(newest.locator(".alert-type")).to_have_text("未授权进入")
    expect(newest.locator(".alert-meta")).to_contain_text("区域 lawn")
    expect(newest.locator(".alert-meta")).to_contain_text("目标 #7")
    expect(page.locator("#alert-count")).to_have_text("3")
    page.wait_for_timeout(2600)  # let the new-alert highlight fade before the screenshot
    assert frames_decoded(page, "pets") > first  # still playing
    page.screenshot(path=ARTIFACTS / "dashboard-zh-CN.png")

    # The single-camera view: one camera fills the wall, the other is hidden; Escape goes back.
    pets, dock = page.locator('.tile[data-camera="pets"]'), page.locator('.tile[data-camera="dock"]')
    wall_width = pets.bounding_box()["width"]  # type: ignore[index]
    pets.locator(".solo-btn").click()
    expect(dock).to_be_hidden()
    expect(pets.locator(".solo-btn")).to_have_text("返回多画面")
    assert pets.bounding_box()["width"] > 1.5 * wall_width  # type: ignore[index]
    playing = frames_decoded(page, "pets")
    page.wait_for_function(
        f"""() => document.querySelector('video[data-camera="pets"]')
            .getVideoPlaybackQuality().totalVideoFrames > {playing}""",
        timeout=10_000,
    )
    page.screenshot(path=ARTIFACTS / "single-camera-zh-CN.png")
    page.keyboard.press("Escape")
    expect(dock).to_be_visible()
    expect(pets.locator(".solo-btn")).to_have_text("单画面")

    # English, remembered across a reload.
    page.click("[data-lang=en]")
    expect(newest.locator(".alert-type")).to_have_text("Unauthorized entry")
    expect(page.locator("#alerts-title")).to_have_text("Alerts")
    page.reload()
    expect(page.locator(".alert").first.locator(".alert-type")).to_have_text("Unauthorized entry")
    expect(page.locator(".alert").nth(1).locator(".alert-type")).to_have_text("Unscanned departure")
    expect(page.locator(".alert").nth(2).locator(".alert-type")).to_have_text("Camera offline")
    expect(page.locator('.tile[data-camera="dock"] .health')).to_have_text("Offline")
    page.wait_for_function(
        """() => document.querySelector('video[data-camera="pets"]')
            .getVideoPlaybackQuality().totalVideoFrames > 5""",
        timeout=60_000,
    )
    page.screenshot(path=ARTIFACTS / "dashboard-en.png")

    # Signing out ends the session: the dashboard is out of reach until the next sign-in.
    page.click("#logout")
    page.wait_for_url(f"{url}/login")
    expect(page.locator("#login-title")).to_have_text("Sign in to the dashboard")
    assert page.request.get(f"{url}/api/alerts").status == 401
    close_code = page.evaluate(
        """() => new Promise((resolve) => {
            const ws = new WebSocket(`ws://${location.host}/ws/alerts`);
            ws.onclose = (ev) => resolve(ev.code);
        })"""
    )
    assert close_code == 4401  # what the dashboard page reacts to by going to the sign-in page
    page.goto(url)
    page.wait_for_url(f"{url}/login")


def sign_in(page: Page, url: str, name: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#login-name", name)
    page.fill("#login-password", PASSWORDS[name])
    page.click("#login-submit")
    page.wait_for_url(f"{url}/")


def test_alert_desk_acknowledge_and_resolve(stack: Stack, page: Page):
    """An officer works a case in the page: acknowledge, then resolve as a false alarm."""
    head = next(a for a in stack.store.recent(limit=50) if a.type == "unscanned_departure")
    assert head.ts is not None
    repeat = make_alert("unscanned_departure", ts=head.ts + 20, t=head.t + 20)
    stack.store.add(repeat)  # the same unit again within the window: it joins the head's case
    ARTIFACTS.mkdir(exist_ok=True)
    sign_in(page, stack.url, "officer")

    item = page.locator(f'.alert[data-id="{head.id}"]')
    expect(item.locator(".alert-group")).to_have_text("+1")  # the repeat is folded under it
    expect(page.locator(f'.alert[data-id="{repeat.id}"]')).to_have_count(0)
    expect(item.locator(".alert-state")).to_have_text("新")

    # Filters: by state, then by type.
    page.select_option("#filter-state", "resolved")
    expect(item).to_have_count(0)
    page.select_option("#filter-state", "new")
    expect(item).to_have_count(1)
    page.select_option("#filter-type", "camera_offline")
    expect(item).to_have_count(0)
    page.select_option("#filter-type", "")
    page.select_option("#filter-state", "")

    item.click()
    panel = page.locator("#case-panel")
    expect(panel).to_be_visible()
    expect(page.locator("#case-title")).to_have_text("未扫码离开")
    expect(page.locator("#case-state")).to_have_text("新")
    expect(page.locator("#case-fields")).to_contain_text("合并告警: 1 条")
    expect(page.locator("#act-resolve")).to_be_hidden()
    expect(page.locator("#act-reopen")).to_be_hidden()

    page.click("#act-acknowledge")
    expect(page.locator("#case-state")).to_have_text("已确认")
    expect(item.locator(".alert-state")).to_have_text("已确认")
    expect(page.locator("#act-acknowledge")).to_be_hidden()

    # A resolution without a note is refused in the page, in one sentence.
    page.select_option("#act-resolution", "false_alarm")
    page.click("#act-resolve")
    expect(page.locator("#case-error")).to_have_text("处理告警需要填写说明。")
    page.fill("#case-text", "叉车司机路过，非设备离开")
    page.click("#act-resolve")
    expect(page.locator("#case-state")).to_have_text("已处理")
    expect(page.locator("#case-error")).to_have_text("")
    expect(item.locator(".alert-state")).to_have_text("已处理")
    expect(page.locator("#act-reopen")).to_be_visible()

    history = page.locator("#case-history li")
    expect(history.locator(".step-action")).to_have_text(["产生告警", "合并", "确认", "处理 · 误报"])
    expect(history.nth(2).locator(".step-actor")).to_have_text("officer")
    expect(history.nth(3)).to_contain_text("叉车司机路过，非设备离开")
    page.screenshot(path=ARTIFACTS / "alert-desk.png")

    case = stack.store.case(repeat.id)  # acting through the page changed the stored case
    assert case is not None and (case.state, case.resolution) == ("resolved", "false_alarm")

    # Someone else reopens the case meanwhile: the page's reopen is refused in one sentence
    # (409) and the panel and the list catch up with the case.
    stack.store.act(head.id, "reopen", "admin", "admin", text="new evidence")
    page.fill("#case-text", "再看一次")
    page.click("#act-reopen")
    expect(page.locator("#case-error")).to_contain_text("并未结案")  # the server's sentence, in zh-CN
    expect(page.locator("#case-state")).to_have_text("已确认")
    expect(item.locator(".alert-state")).to_have_text("已确认")
    expect(page.locator("#act-resolve")).to_be_visible()
