"""`bondwatch web` across processes: a web process that ingests nothing shows, through its API
and the Redis live feed, a camera ingested by a separate `bondwatch worker` process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import redis
from conftest import CHROMIUM, CHROMIUM_ARGS, pattern_clip, wait_for
from playwright.sync_api import sync_playwright

from bondwatch.redis_server import free_port
from bondwatch.site import load_site, parse_site
from dashboard.remote import (
    HEALTH_TTL_S,
    VIEWER_TTL_S,
    WANT_S,
    LivePublisher,
    RemoteLive,
    decode_batch,
    decode_health,
    encode_batch,
    encode_health,
    frames_key,
    unreported,
)
from detectors.types import Detection, DetectionBatch
from streams.camera import CameraHealth
from streams.frame import Frame

PASSWORD = "web-test-password-1"
CLI = "import sys; from bondwatch.cli import main; sys.exit(main())"


@pytest.mark.parametrize(
    "batch",
    [
        DetectionBatch("cam", 0, 0.0, 1.5, 320, 240, ()),
        DetectionBatch(
            "cam", 41, 8.2, 1_800_000_000.25, 1280, 720,
            (Detection("person", 0.91, (1.0, 2.5, 30.0, 80.0), 7), Detection("unit", 0.4, (5, 6, 7, 8))),
        ),
    ],
)  # fmt: skip
def test_detections_cross_redis_unchanged(batch):
    assert decode_batch(encode_batch(batch)) == batch


@pytest.mark.parametrize(
    "health",
    [
        CameraHealth("cam", "live", 9.8, 120, 3, 0, 1, 1_800_000_000.5, "", tamper="covered", drift_s=0.02),
        unreported("cam"),
    ],
)
def test_health_crosses_redis_unchanged(health):
    assert decode_health(encode_health(health)) == health


class Owner:
    """What a worker's `Cameras` hands the publisher: the newest frame of the one camera it owns,
    numbered from `first` at 20 fps, every pixel `shade` so a test can tell owners apart."""

    def __init__(self, camera: str, first: int, shade: int):
        self.camera, self.first, self.shade = camera, first, shade
        self.t0 = time.monotonic()

    def latest(self, camera: str) -> tuple[Frame | None, DetectionBatch | None]:
        n = int((time.monotonic() - self.t0) * 20)
        image = np.full((120, 160, 3), self.shade, np.uint8)
        return Frame(camera, self.first + n, n / 20, time.time(), image), None

    def health(self) -> dict[str, CameraHealth]:
        return {self.camera: CameraHealth(self.camera, "live", 20.0, 1, 0, 0, 0, time.time(), "")}


def _owner(camera: str, first: int, shade: int):  # type: ignore[no-untyped-def]
    owner = Owner(camera, first, shade)
    return owner.latest, owner.health


def _frames(live: RemoteLive, camera: str, seconds: float) -> list[Frame]:
    """The distinct frames a viewer of `camera` receives in `seconds`."""
    seen: list[Frame] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame, _ = live.latest(camera)
        if frame is not None and (not seen or seen[-1] is not frame):
            seen.append(frame)
        time.sleep(0.01)
    return seen


def test_live_view_follows_a_camera_to_its_new_owner(redis_server):
    """A camera handed to another worker: its frames count from zero again, from the new owner."""
    live = RemoteLive(parse_site("cameras:\n  - id: cam\n    url: x.mp4\n"), redis_server.url)
    old = LivePublisher(redis_server.url, *_owner("cam", first=5000, shade=40))
    new = LivePublisher(redis_server.url, *_owner("cam", first=0, shade=200))
    live.start()
    old.start()
    try:
        before = _frames(live, "cam", 2.0)
        assert before and all(f.index >= 5000 for f in before), [f.index for f in before]
        assert int(before[-1].image.mean()) in range(35, 46)  # JPEG moves a flat shade by a little
        old.stop()
        new.start()
        after = wait_for(lambda: [f for f in _frames(live, "cam", 0.5) if f.index < 5000], 10)
        assert after, "the viewer stayed on the old owner's last frame"
        assert int(after[-1].image.mean()) in range(195, 206)
        assert old.published > 0 and new.published > 0
    finally:
        for t in (live, old, new):
            if t.is_alive():
                t.stop()


def test_live_view_without_redis_reports_cameras_offline(redis_server):
    live = RemoteLive(parse_site("cameras:\n  - id: cam\n    url: x.mp4\n"), redis_server.url)
    publisher = LivePublisher(redis_server.url, *_owner("cam", first=0, shade=90))
    publisher.start()
    try:
        assert wait_for(lambda: redis.Redis.from_url(redis_server.url).exists("bondwatch:live:health:cam"), 5)
        live.start()
        assert live.health()["cam"].state == "live"
        live.latest("cam")  # watched: the reader is in its blocking read when Redis goes
        assert wait_for(lambda: live.latest("cam")[0] is not None, 5)
        redis_server.kill()
        gone = wait_for(lambda: live.health()["cam"].state == "offline", 5)
        assert gone, live.health()
        assert "Redis" in live.health()["cam"].error
    finally:
        live.stop()
        publisher.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """Four seconds of a moving test pattern, 320x240 at 10 fps, a keyframe every second."""
    return pattern_clip(tmp_path_factory.mktemp("clip") / "pattern.mp4", 10)


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *args], stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env
    )


def _stop(proc: subprocess.Popen[bytes]) -> int | None:
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None


def test_web_shows_a_camera_ingested_by_a_worker_process(tmp_path, clip, redis_server):
    site_file = tmp_path / "site.yaml"
    site_file.write_text(
        f"recording:\n  segment_s: 2\ncameras:\n  - id: pattern\n    url: {clip}\n    detect_fps: 1\n"
    )
    data = tmp_path / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
    client = redis.Redis.from_url(redis_server.url)
    web = _start(
        ["web", "--site", str(site_file), "--data", str(data), "--redis", redis_server.url,
         "--port", str(port)],
        web_log,
    )  # fmt: skip
    worker = None
    try:
        assert wait_for(lambda: "BondWatch web:" in web_log.read_text(), 60), web_log.read_text()
        subprocess.run(
            [sys.executable, "-c", CLI, "user", "add", "admin", "--role", "admin", "--data", str(data)],
            input=PASSWORD.encode(), check=True, capture_output=True,
        )  # fmt: skip
        http = httpx.Client(base_url=base, timeout=10)
        http.post("/api/login", json={"name": "admin", "password": PASSWORD}).raise_for_status()

        def state() -> str:
            [camera] = http.get("/api/cameras").raise_for_status().json()
            return camera["health"]["state"]

        assert state() == "offline", "no worker yet: the web must not pretend the camera is live"
        worker = _start(
            ["worker", "--site", str(site_file), "--data", str(data), "--redis", redis_server.url,
             "--worker-id", "w1", "--capacity", "4", "--lease-s", "3", "--model", "none"],
            worker_log,
        )  # fmt: skip
        assert wait_for(lambda: state() == "live", 60), worker_log.read_text()[-3000:]
        # Nobody watches yet: health crosses Redis, pixels do not.
        time.sleep(1.0)
        assert client.exists(frames_key("pattern")) == 0, "frames published with no viewer"

        # The web's snapshot: the worker's frame, through Redis, with the overlays drawn here.
        def snapshot() -> bytes | None:
            res = http.get("/api/cameras/pattern/snapshot.jpg")
            return res.content if res.status_code == 200 else None

        jpeg = wait_for(snapshot, 15, interval_s=0.2)
        assert jpeg, web_log.read_text()[-3000:]
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (240, 320, 3)
        assert image.std() > 20, "a test pattern, not a placeholder"

        # A second reader, as another web process would be: frames keep coming, newer each time.
        live = RemoteLive(load_site(site_file), redis_server.url)
        live.start()
        try:
            seen = []
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                frame, _ = live.latest("pattern")
                if frame is not None and (not seen or seen[-1].index != frame.index):
                    seen.append(frame)
                time.sleep(0.02)
        finally:
            live.stop()
        assert len(seen) >= 10, f"only {len(seen)} frames in 4 s of a 10 fps camera"
        assert all(b.index > a.index and b.ts > a.ts for a, b in zip(seen, seen[1:], strict=False))
        assert all(f.image.shape == (240, 320, 3) for f in seen)
        assert time.time() - seen[-1].ts < 2.0, "the newest frame is stale"

        # Nobody watches any more: within the viewer keys' lifetime the worker stops publishing.
        time.sleep(WANT_S + VIEWER_TTL_S + 1.0)
        last = client.xrevrange(frames_key("pattern"), count=1)
        time.sleep(1.0)
        assert client.xrevrange(frames_key("pattern"), count=1) == last, "still published, unwatched"

        # Watched again, in Chromium: WebRTC video of the worker's camera, served by the web process.
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(base)
                page.fill("#login-name", "admin")
                page.fill("#login-password", PASSWORD)
                page.click("#login-form button[type=submit]")
                video = """document.querySelector('video[data-camera="pattern"]')"""
                played = f"() => {video}?.getVideoPlaybackQuality().totalVideoFrames || 0"
                page.wait_for_function(f"({played})() > 12", timeout=30_000)
                size = page.evaluate(f"() => [{video}.videoWidth, {video}.videoHeight]")
                assert size == [320, 240]
                before = page.evaluate(played)
                time.sleep(2.0)
                assert page.evaluate(played) >= before + 10, "the video stopped"
            finally:
                browser.close()

        # The worker stops: its health runs out and the web reports the camera offline.
        assert _stop(worker) == 0
        assert wait_for(lambda: state() == "offline", HEALTH_TTL_S + 5), "stale health shown as live"
    finally:
        codes = [_stop(p) for p in (web, worker) if p is not None]
    assert codes[0] == 0, web_log.read_text()[-3000:]


def test_web_without_redis_says_what_to_do(tmp_path, monkeypatch, capsys):
    from bondwatch.cli import main

    monkeypatch.delenv("REDIS_URL", raising=False)
    site = tmp_path / "site.yaml"
    site.write_text("cameras:\n  - id: cam\n    url: x.mp4\n")
    assert main(["web", "--site", str(site), "--data", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "--redis" in err and "REDIS_URL" in err and len(err.strip().splitlines()) == 1
