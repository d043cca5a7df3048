"""Glass-to-glass latency of the live view: from a frame's creation at the camera to its
display in Chromium, through the real service, on loopback.

    python bench/glass_to_glass.py [--seconds 20] [--fps 25]

The "camera" is this script: it draws the wall-clock time (ms, 24 bits) as black and white
stripes into each frame, pipes the frames to ffmpeg (x264, zerolatency) which streams
MPEG-TS over UDP on loopback, as an IP camera would. `bondwatch run` ingests it (PyAV),
re-encodes it for WebRTC (aiortc) and the dashboard shows it in Debian's Chromium. In the
page, `requestVideoFrameCallback` reads the stripes of every presented frame back from a
canvas, so latency = presentation time - time drawn into the frame, with one clock.

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

from bondwatch.redis_server import free_port  # noqa: E402

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="how long to sample in the browser")
    ap.add_argument("--fps", type=float, default=25.0, help="the camera's frame rate")
    ap.add_argument("--shot", help="save a screenshot of the video element here (PNG)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bondwatch-g2g-"))
    udp, http = free_port(), free_port()
    (tmp / "site.yaml").write_text(SITE.format(port=udp))
    stop = threading.Event()
    cam = threading.Thread(target=camera, args=(udp, args.fps, stop), daemon=True)
    cam.start()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    service = subprocess.Popen(
        [sys.executable, "-m", "bondwatch.cli", "run", "--site", str(tmp / "site.yaml"), "--data",
         str(tmp / "data"), "--port", str(http)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    password = ""
    assert service.stdout is not None
    for line in service.stdout:
        if m := re.search(r"as admin / (\S+)", line):
            password = m.group(1)
        if "BondWatch dashboard:" in line:
            break
    threading.Thread(target=lambda: [None for _ in service.stdout or []], daemon=True).start()
    url = f"http://127.0.0.1:{http}"
    try:
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
            result = page.evaluate(PAGE_SAMPLER, [args.seconds, BITS, list(BAND), STRIPE])
            if args.shot:
                page.locator('video[data-camera="g2g"]').screenshot(path=args.shot)
            browser.close()
    finally:
        service.terminate()
        service.wait(15)
        stop.set()
        cam.join(5)
    lat = sorted(result["lat"])
    if not lat:
        sys.exit(f"no frame decoded in {args.seconds} s ({result['bad']} unreadable)")
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
    print(f"glass-to-glass on loopback, {args.fps:g} fps camera, {len(lat)} frames "
          f"({result['bad']} unreadable)")  # fmt: skip
    median = statistics.median(lat)
    print(f"  median {median:.0f} ms   p95 {p95:.0f} ms   max {lat[-1]:.0f} ms   (bar: 500 ms)")


if __name__ == "__main__":
    main()
