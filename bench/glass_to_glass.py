"""Glass-to-glass latency of the live view: from a frame's creation at the camera to its
display in Chromium, through the real service, on loopback.

    python bench/glass_to_glass.py [--seconds 20] [--fps 25] [--mode single|cross|both]

The "camera" is this script: it draws the wall-clock time (ms, 24 bits) as black and white
stripes into each frame, pipes the frames to ffmpeg (x264, zerolatency) which streams
MPEG-TS over UDP on loopback, as an IP camera would. `bondwatch run` ingests it (PyAV),
re-encodes it for WebRTC (aiortc) and the dashboard shows it in Debian's Chromium. In the
page, `requestVideoFrameCallback` reads the stripes of every presented frame back from a
canvas, so latency = presentation time - time drawn into the frame, with one clock.

With `--mode cross` the camera is ingested by a `bondwatch worker` process and the dashboard
served by a separate `bondwatch web` process; the frames travel between them as JPEG through a
real redis-server (dashboard/remote.py). `--mode both` runs one after the other in one go.

Prints the median, p95 and max over all decoded frames, and the share of frames whose
stripes did not decode (they would bias nothing: they are left out and counted).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

from bondwatch.redis_server import RedisServer, free_port  # noqa: E402

WIDTH, HEIGHT = 640, 360
BITS = 24
BAND = (300, 320)  # rows of the stripes: low and flat, nothing like a person to the model
STRIPE = WIDTH // BITS

SITE = """
cameras:
  - id: g2g
    url: "udp://127.0.0.1:{port}?fifo_size=1000000&overrun_nonfatal=1"
    detect_fps: 2
"""

# Runs in the page: samples presented frames of the camera's <video>, decodes the stripes.
PAGE_SAMPLER = """
async ([seconds, bits, band, stripe]) => {
  const video = document.querySelector('video[data-camera="g2g"]');
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const out = {lat: [], bad: 0};
  const end = performance.now() + seconds * 1000;
  await new Promise(resolve => {
    const onFrame = (now, meta) => {
      const shown = performance.timeOrigin + now;
      const w = video.videoWidth, h = video.videoHeight;
      if (w && h) {
        canvas.width = w; canvas.height = h;
        ctx.drawImage(video, 0, 0, w, h);
        const y = Math.round((band[0] + band[1]) / 2 * h / 360);
        const row = ctx.getImageData(0, y, w, 1).data;
        let value = 0, ok = true;
        for (let b = 0; b < bits; b++) {
          const x = Math.round((b + 0.5) * stripe * w / 640);
          const v = row[4 * x];
          if (v > 80 && v < 170) ok = false;  // mid-grey: a stripe edge or a broken frame
          value = value * 2 + (v >= 128 ? 1 : 0);
        }
        if (ok) {
          const drawn = Date.now() - ((Date.now() - value) % (1 << bits) + (1 << bits)) % (1 << bits);
          out.lat.push(shown - drawn);
        } else out.bad++;
      }
      if (performance.now() < end) video.requestVideoFrameCallback(onFrame); else resolve();
    };
    video.requestVideoFrameCallback(onFrame);
  });
  return out;
}
"""


def stripes(now_ms: int) -> np.ndarray:
    image = np.full((HEIGHT, WIDTH), 60, np.uint8)
    value = now_ms % (1 << BITS)
    for b in range(BITS):
        bit = (value >> (BITS - 1 - b)) & 1
        image[BAND[0] : BAND[1], b * STRIPE : (b + 1) * STRIPE] = 235 if bit else 16
    return image


def camera(port: int, fps: float, stop: threading.Event) -> None:
    """Draw the time into frames at `fps` and stream them like an IP camera."""
    ffmpeg = subprocess.Popen(
        ["ffmpeg", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{WIDTH}x{HEIGHT}",
         "-r", str(fps), "-i", "-", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
         "-g", str(int(fps)), "-pix_fmt", "yuv420p", "-f", "mpegts",
         f"udp://127.0.0.1:{port}?pkt_size=1316"],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    assert ffmpeg.stdin is not None
    start = time.monotonic()
    n = 0
    try:
        while not stop.is_set():
            ffmpeg.stdin.write(stripes(int(time.time() * 1000)).tobytes())
            ffmpeg.stdin.flush()
            n += 1
            time.sleep(max(0.0, start + n / fps - time.monotonic()))
    finally:
        ffmpeg.stdin.close()
        ffmpeg.wait(5)


def sample(url: str, password: str, seconds: float, shot: str | None) -> dict:
    """Sign in to the dashboard at `url`, watch the camera, decode the stripes of every frame."""
    httpx.get(f"{url}/healthz", timeout=10).raise_for_status()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url)
        page.fill("#login-name", "admin")
        page.fill("#login-password", password)
        page.click("#login-form button[type=submit]")
        page.wait_for_function(
            "() => (document.querySelector('video[data-camera=\"g2g\"]')"
            "?.getVideoPlaybackQuality().totalVideoFrames || 0) > 25",
            timeout=60_000,
        )
        time.sleep(3)  # let the jitter buffer settle after the first frames
        result = page.evaluate(PAGE_SAMPLER, [seconds, BITS, list(BAND), STRIPE])
        if shot:
            page.locator('video[data-camera="g2g"]').screenshot(path=shot)
        browser.close()
    return result


def _cli(*args: str, log: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    return subprocess.Popen(
        [sys.executable, "-m", "bondwatch.cli", *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
        text=True, env=env,
    )  # fmt: skip


def _wait_line(log: Path, pattern: str, proc: subprocess.Popen[str], timeout_s: float = 120) -> re.Match:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if m := re.search(pattern, log.read_text(errors="replace")):
            return m
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    sys.exit(f"{pattern!r} never appeared in {log}:\n{log.read_text(errors='replace')[-2000:]}")


def run_single(tmp: Path, http: int, seconds: float, shot: str | None) -> dict:
    """`bondwatch run`: ingest, detection and the dashboard in one process."""
    log = tmp / "run.log"
    service = _cli("run", "--site", str(tmp / "site.yaml"), "--data", str(tmp / "data-run"),
                   "--port", str(http), log=log)  # fmt: skip
    try:
        password = _wait_line(log, r"as admin / (\S+)", service).group(1)
        _wait_line(log, "BondWatch dashboard:", service)
        return sample(f"http://127.0.0.1:{http}", password, seconds, shot)
    finally:
        service.terminate()
        service.wait(15)


def run_cross(tmp: Path, http: int, seconds: float, shot: str | None) -> dict:
    """`bondwatch worker` ingests and detects, `bondwatch web` serves the dashboard; the frames
    go from one process to the other through a real redis-server (JPEG in a Redis stream)."""
    data = tmp / "data-cross"
    procs: list[subprocess.Popen[str]] = []
    with RedisServer(tmp / "redis", persist=False) as rs:
        try:
            common = ["--site", str(tmp / "site.yaml"), "--data", str(data), "--redis", rs.url]
            procs.append(web := _cli("web", *common, "--port", str(http), log=tmp / "web.log"))
            _wait_line(tmp / "web.log", "BondWatch web:", web)
            password = "g2g-" + os.urandom(6).hex()
            subprocess.run([sys.executable, "-m", "bondwatch.cli", "user", "add", "admin", "--role", "admin",
                            "--data", str(data)], input=password, text=True, check=True,
                           capture_output=True)  # fmt: skip
            procs.append(
                _cli("worker", *common, "--worker-id", "g2g", "--lease-s", "5", log=tmp / "worker.log")
            )
            return sample(f"http://127.0.0.1:{http}", password, seconds, shot)
        finally:
            for proc in reversed(procs):
                proc.terminate()
                proc.wait(20)


def report(name: str, fps: float, result: dict) -> tuple[float, float] | None:
    lat = sorted(result["lat"])
    if not lat:
        print(f"{name}: no frame decoded ({result['bad']} unreadable)")
        return None
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
    median = statistics.median(lat)
    print(f"{name}: glass-to-glass on loopback, {fps:g} fps camera, {len(lat)} frames "
          f"({result['bad']} unreadable)")  # fmt: skip
    print(f"  median {median:.0f} ms   p95 {p95:.0f} ms   max {lat[-1]:.0f} ms   (bar: 500 ms)", flush=True)
    return median, p95


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="how long to sample in the browser")
    ap.add_argument("--fps", type=float, default=25.0, help="the camera's frame rate")
    ap.add_argument("--shot", help="save a screenshot of the video element here (PNG)")
    ap.add_argument(
        "--mode", choices=["single", "cross", "both"], default="single",
        help="single: `bondwatch run`; cross: `bondwatch worker` + `bondwatch web` through Redis; both, "
        "one after the other against the same camera",
    )  # fmt: skip
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bondwatch-g2g-"))
    udp = free_port()
    (tmp / "site.yaml").write_text(SITE.format(port=udp))
    stop = threading.Event()
    cam = threading.Thread(target=camera, args=(udp, args.fps, stop), daemon=True)
    cam.start()
    modes = ["single", "cross"] if args.mode == "both" else [args.mode]
    figures = {}
    try:
        for mode in modes:
            run = run_single if mode == "single" else run_cross
            result = run(tmp, free_port(), args.seconds, args.shot)
            figures[mode] = report({"single": "one process (run)", "cross": "worker -> Redis -> web"}[mode],
                                   args.fps, result)  # fmt: skip
    finally:
        stop.set()
        cam.join(5)
    if figures.get("single") and figures.get("cross"):
        (m1, p1), (m2, p2) = figures["single"], figures["cross"]
        print(f"cross-process minus one process, same run: median {m2 - m1:+.0f} ms, p95 {p2 - p1:+.0f} ms")
    if not all(figures.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
