"""`bondwatch run` end to end, as a user starts it: RTSP camera → YOLO → rule → alert → browser.

Real parts only: GStreamer's RTSP server serving PETS footage, the service as a subprocess
with its embedded redis-server and SQLite, the bundled model, and Chromium over WebRTC.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, wait_for
from playwright.sync_api import expect, sync_playwright
from rtsp import RtspServer, free_port, make_h264_mp4

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# People cross the road area of the PETS plaza many times in the first minute.
SITE = """\
name: E2E workshop
cameras:
  - id: plaza
    name: Plaza
    url: {url}
    detect_fps: 5
zones:
  - id: road
    camera: plaza
    kind: restricted
    dwell_s: 0.5
    polygon: [[450, 195], [700, 160], [768, 250], [768, 470], [600, 420], [450, 330]]
"""


@dataclass
class Service:
    proc: subprocess.Popen[str]
    url: str
    data: Path
    password: str
    rtsp: RtspServer
    output: list[str]

    def alerts(self) -> list[dict]:
        return httpx.get(f"{self.url}/api/alerts", cookies=self.cookies, timeout=10).json()

    @property
    def cookies(self) -> dict[str, str]:
        r = httpx.post(f"{self.url}/api/login", json={"name": "admin", "password": self.password})
        return dict(r.cookies) if r.status_code == 200 else {}


@pytest.fixture(scope="module")
def service(tmp_path_factory, pets_video) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("service")
    clip = make_h264_mp4(pets_video)  # 79.5 s; each new RTSP session starts it over
    with RtspServer({"/plaza": clip}) as rtsp:
        site = tmp / "site.yaml"
        site.write_text(SITE.format(url=rtsp.url("/plaza")))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "bondwatch.cli", "run", "--site", str(site), "--data",
             str(tmp / "data"), "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        output: list[str] = []
        password = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if m := re.search(r"as admin / (\S+)", line):
                password = m.group(1)
            if "BondWatch dashboard:" in line:
                break
        else:
            pytest.fail("service exited at start:\n" + "".join(output))
        svc = Service(proc, f"http://127.0.0.1:{port}", tmp / "data", password, rtsp, output)
        threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True).start()
        try:
            yield svc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_first_start_prints_url_and_login(service: Service):
    assert service.password, "".join(service.output)
    assert any(f"BondWatch dashboard: {service.url}/" in line for line in service.output)


def test_live_video_and_alert_in_browser(service: Service):
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 900}, locale="zh-CN")
        page.goto(service.url)
        if page.locator("#login-form").count():
            page.fill("#login-name", "admin")
            page.fill("#login-password", service.password)
            page.click("#login-form button[type=submit]")
        tile = page.locator('.tile[data-camera="plaza"]')
        expect(tile.locator(".health")).to_have_text("在线", timeout=30_000)
        assert wait_for(
            lambda: page.evaluate(
                "() => document.querySelector('video[data-camera=\"plaza\"]')"
                "?.getVideoPlaybackQuality().totalVideoFrames || 0"
            ) > 10,
            60, interval_s=0.5,
        ), "no WebRTC video frames decoded in Chromium"  # fmt: skip
        # A person walks into the restricted road area: the model, tracker and rule raise it,
        # and the alert arrives over the WebSocket without a reload.
        expect(page.locator(".alert").filter(has_text="未授权进入").first).to_be_visible(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "service-live.png"))
        browser.close()
    alerts = [a for a in service.alerts() if a["type"] == "unauthorized_entry"]
    assert alerts and all(a["camera"] == "plaza" and a["zone"] == "road" for a in alerts)
    assert all("track" in a and "ts" in a for a in alerts)


def test_camera_outage_is_an_alert_and_recovers(service: Service):
    def since(kind: str, t0: float) -> list[dict]:
        return [
            a for a in service.alerts()
            if a["type"] == kind and datetime.fromisoformat(a["ts"]).timestamp() >= t0
        ]  # fmt: skip

    killed = time.time()
    service.rtsp.kill()
    offline = wait_for(lambda: since("camera_offline", killed), 30, interval_s=0.5)
    assert offline, "no camera_offline alert after the camera's server was killed"
    assert offline[0]["camera"] == "plaza"
    restarted = time.time()
    service.rtsp.start()
    assert wait_for(lambda: since("camera_online", restarted), 60, interval_s=0.5), "no recovery alert"


def test_alerts_list_cli_and_clean_shutdown(service: Service):
    service.proc.send_signal(signal.SIGINT)
    assert service.proc.wait(timeout=30) == 0, "".join(service.output)
    r = subprocess.run(
        [sys.executable, "-m", "bondwatch.cli", "alerts", "list", "--data", str(service.data), "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    types = {a["type"] for a in rows}
    assert {"unauthorized_entry", "camera_offline", "camera_online"} <= types
    assert all(re.match(r"\d{4}-\d\d-\d\dT", a["ts"]) for a in rows)
    # The embedded redis-server went down with the service.
    redis_procs = subprocess.run(["pgrep", "-f", "--", f"--dir {service.data}/redis"], capture_output=True)
    assert redis_procs.returncode == 1, redis_procs.stdout


def test_embedded_redis_starts_from_a_relative_data_dir(tmp_path, monkeypatch):
    """`bondwatch run --data data` (the default) passes a relative path to redis-server."""
    from bondwatch.redis_server import RedisServer

    monkeypatch.chdir(tmp_path)
    with RedisServer("data/redis", persist=True) as server:
        assert (tmp_path / "data" / "redis" / "redis.log").is_file()
        assert server.url.startswith("redis://127.0.0.1:")
