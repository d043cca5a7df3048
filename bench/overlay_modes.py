"""Live overlays burned into the video against drawn in the browser from a data channel: what
each costs the service, per viewer count, measured in one run against one 1280x720 camera.

    python bench/overlay_modes.py [--viewers 1,4] [--seconds 15] [--g2g-seconds 15]

The camera is this script: the first PETS 2009 frames (people walking, so the detector finds
boxes) scaled to 1280x640 over an 80-pixel strip that carries the wall-clock time as stripes
(bench/glass_to_glass.py's code, read back the same way), piped to ffmpeg (x264, zerolatency)
and streamed as MPEG-TS over UDP on loopback, as an IP camera would. One `bondwatch run`
ingests it, detects at 2 fps and serves the live view; the site has a restricted zone and a
station on the picture, so both ways draw zones, states and boxes.

1. Service CPU: for each viewer count, aiortc viewers in this process (as browsers would be,
   with the "overlay" data channel) watch the camera with `?overlays=burned`, then `browser`,
   then `browser`, then `burned` again (ABBA, so a drift in the machine's load cancels out),
   and the service's CPU time is read from /proc. Prints CPU-seconds per second, over the
   service with no viewer, video frames per second each viewer got, overlay messages per
   second each viewer got, and the browser/burned ratios.
2. Glass-to-glass in Chromium in both ways (ABBA again, `--g2g-seconds` per mode), on the same
   camera; the canvas's counters show the browser-drawn overlay was drawn, and how it synced.

The viewers decode the video in this process, and a training job may be running: absolute
figures are pessimistic and noisy; compare the modes within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
from conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from glass_to_glass import BITS, PAGE_SAMPLER  # noqa: E402
from live_viewers import start_service  # noqa: E402

from bondwatch.redis_server import free_port  # noqa: E402

PETS = ROOT.parent / "shared" / "data" / "pets2009-s2l1" / "vtest.avi"
WIDTH, HEIGHT = 1280, 720
PICTURE_H = 640  # PETS above, the time stripes in the strip below
# The stripes, in glass_to_glass's 640x360 coordinates (its page sampler scales them).
BAND = (330, 350)
STRIPE = 640 // BITS
CAMERA = "g2g"  # the id glass_to_glass's page sampler looks for
SITE = """
cameras:
  - id: g2g
    url: "udp://127.0.0.1:{port}?fifo_size=1000000&overrun_nonfatal=1"
    detect_fps: 2
zones:
  - {{id: lawn, camera: g2g, kind: restricted, polygon: [[33, 333], [667, 333], [667, 630], [33, 630]]}}
  - {{id: s01, camera: g2g, kind: station, station: s01,
     polygon: [[867, 122], [1233, 122], [1233, 267], [867, 267]]}}
"""
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def pets_frames(n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(PETS))
    frames = []
    while len(frames) < n:
        ok, image = cap.read()
        if not ok:
            break
        frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        frame[:PICTURE_H] = cv2.resize(image, (WIDTH, PICTURE_H), interpolation=cv2.INTER_AREA)
        frames.append(frame)
    cap.release()
    if not frames:
        sys.exit(f"could not read {PETS}")
    return frames


def draw_time(frame: np.ndarray, now_ms: int) -> None:
    value = now_ms % (1 << BITS)
    y0, y1 = BAND[0] * HEIGHT // 360, BAND[1] * HEIGHT // 360
    step = STRIPE * WIDTH // 640
    for b in range(BITS):
        bit = (value >> (BITS - 1 - b)) & 1
        frame[y0:y1, b * step : (b + 1) * step] = 235 if bit else 16


def camera(port: int, fps: float, stop: threading.Event) -> None:
    """PETS frames with the time drawn in, at `fps`, streamed like an IP camera."""
    frames = pets_frames(int(fps * 8))
    ffmpeg = subprocess.Popen(
        ["ffmpeg", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{WIDTH}x{HEIGHT}",
         "-r", str(fps), "-i", "-", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
         "-g", str(int(fps)), "-pix_fmt", "yuv420p", "-f", "mpegts", f"udp://127.0.0.1:{port}?pkt_size=1316"],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    assert ffmpeg.stdin is not None
    start = time.monotonic()
    n = 0
    try:
        while not stop.is_set():
            frame = frames[n % len(frames)]
            draw_time(frame, int(time.time() * 1000))
            ffmpeg.stdin.write(frame.tobytes())
            ffmpeg.stdin.flush()
            n += 1
            time.sleep(max(0.0, start + n / fps - time.monotonic()))
    finally:
        ffmpeg.stdin.close()
        ffmpeg.wait(5)


class Counts:
    def __init__(self) -> None:
        self.frames = 0
        self.messages = 0
        self.boxes = 0
        self.overlays: set[str] = set()


async def viewer(url: str, cookies: dict[str, str], mode: str, counts: Counts, stop: asyncio.Event) -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    channel = pc.createDataChannel("overlay")  # as the page does, in both modes

    @channel.on("message")
    def _message(data: str) -> None:
        msg = json.loads(data)
        if "overlays" in msg:
            counts.overlays.add(msg["overlays"])
        else:
            counts.messages += 1
            counts.boxes += len(msg["boxes"])

    got: asyncio.Future = asyncio.get_running_loop().create_future()
    pc.on("track", got.set_result)
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(cookies=cookies) as client:
        body = {"camera": CAMERA, "sdp": pc.localDescription.sdp, "type": "offer"}
        res = await client.post(f"{url}/api/webrtc/offer?overlays={mode}", json=body, timeout=30)
        res.raise_for_status()
    await pc.setRemoteDescription(RTCSessionDescription(**res.json()))
    track = await asyncio.wait_for(got, 30)
    try:
        while not stop.is_set():
            await asyncio.wait_for(track.recv(), 10)
            counts.frames += 1
    finally:
        await pc.close()


async def measure(url: str, cookies: dict[str, str], pid: int, mode: str, n: int, seconds: float) -> dict:
    stop = asyncio.Event()
    counts = Counts()
    tasks = [asyncio.create_task(viewer(url, cookies, mode, counts, stop)) for _ in range(n)]
    await asyncio.sleep(5)  # connect and settle
    c0, f0, m0, t0 = cpu_seconds(pid), counts.frames, counts.messages, time.monotonic()
    await asyncio.sleep(seconds)
    c1, f1, m1, t1 = cpu_seconds(pid), counts.frames, counts.messages, time.monotonic()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    if counts.overlays != {mode}:
        sys.exit(f"asked for {mode} overlays, the service said {sorted(counts.overlays)}")
    dt = t1 - t0
    boxes = counts.boxes / counts.messages if counts.messages else 0.0
    return {"cpu": (c1 - c0) / dt, "fps": (f1 - f0) / dt / n, "msgs": (m1 - m0) / dt / n, "boxes": boxes}


def idle_cpu(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def glass_to_glass(url: str, password: str, seconds: float) -> dict[str, dict]:
    """Chromium watches the camera each way in turn (ABBA); latency of every presented frame."""
    out: dict[str, dict] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{url}/login")
        page.fill("#login-name", "admin")
        page.fill("#login-password", password)
        page.click("#login-form button[type=submit]")
        page.wait_for_url(f"{url}/")
        for mode in ("burned", "browser", "browser", "burned"):
            page.goto(f"{url}/?overlays={mode}")
            page.wait_for_function(
                f"() => (document.querySelector('video[data-camera=\"{CAMERA}\"]')"
                "?.getVideoPlaybackQuality().totalVideoFrames || 0) > 25",
                timeout=60_000,
            )
            time.sleep(3)  # let the jitter buffer settle after the first frames
            result = page.evaluate(PAGE_SAMPLER, [seconds / 2, BITS, list(BAND), STRIPE])
            canvas = f'.tile[data-camera="{CAMERA}"] canvas.overlay'
            result["canvas"] = page.evaluate(f"() => ({{...document.querySelector('{canvas}').dataset}})")
            page.locator(f'.tile[data-camera="{CAMERA}"]').screenshot(
                path=str(Path(tempfile.gettempdir()) / f"overlay-{mode}.png")
            )
            seen = out.setdefault(mode, {"lat": [], "bad": 0, "passes": []})
            seen["lat"] += result["lat"]
            seen["bad"] += result["bad"]
            seen["passes"].append(statistics.median(result["lat"]) if result["lat"] else None)
            seen["canvas"] = result["canvas"]
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--viewers", default="1,4")
    ap.add_argument("--seconds", type=float, default=15.0, help="measured seconds per mode and pass")
    ap.add_argument("--fps", type=float, default=15.0, help="the camera's frame rate")
    ap.add_argument("--g2g-seconds", type=float, default=15.0, help="0 skips glass-to-glass")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bondwatch-overlays-"))
    udp = free_port()
    (tmp / "site.yaml").write_text(SITE.format(port=udp))
    stop = threading.Event()
    cam = threading.Thread(target=camera, args=(udp, args.fps, stop), daemon=True)
    cam.start()
    port = free_port()
    proc, password = start_service(tmp, port)
    url = f"http://127.0.0.1:{port}"
    rows: list[tuple[int, str, dict]] = []
    g2g: dict[str, dict] = {}
    try:
        res = httpx.post(f"{url}/api/login", json={"name": "admin", "password": password})
        res.raise_for_status()
        cookies = dict(res.cookies)
        time.sleep(5)  # ingest and detection warm up
        idle = [idle_cpu(proc.pid, args.seconds / 2)]
        for n in (int(x) for x in args.viewers.split(",")):
            for mode in ("burned", "browser", "browser", "burned"):
                rows.append((n, mode, asyncio.run(measure(url, cookies, proc.pid, mode, n, args.seconds))))
                print(f"  {n} viewer(s), {mode}: {rows[-1][2]}", flush=True)
        idle.append(idle_cpu(proc.pid, args.seconds / 2))
        if args.g2g_seconds > 0:
            g2g = glass_to_glass(url, password, args.g2g_seconds)
    finally:
        proc.terminate()
        proc.wait(15)
        stop.set()
        cam.join(5)

    base = statistics.mean(idle)
    print(f"\nservice CPU with no viewer: {base:.2f} CPU-s/s (before {idle[0]:.2f}, after {idle[1]:.2f}; "
          f"ingest of 1280x720 at {args.fps:g} fps, detection at 2 fps, recording)")  # fmt: skip
    print(f"{'viewers':>7} {'overlays':>8} {'CPU-s/s':>8} {'over idle':>9} {'fps each':>8} "
          f"{'msgs/s each':>11} {'boxes/msg':>9}")  # fmt: skip
    means: dict[tuple[int, str], dict] = {}
    for n in sorted({r[0] for r in rows}):
        for mode in ("burned", "browser"):
            runs = [r for k, m, r in rows if k == n and m == mode]
            avg = {key: statistics.mean(r[key] for r in runs) for key in runs[0]}
            means[(n, mode)] = avg
            spread = ", ".join(f"{r['cpu']:.2f}" for r in runs)
            print(f"{n:>7} {mode:>8} {avg['cpu']:>8.2f} {avg['cpu'] - base:>9.2f} {avg['fps']:>8.1f} "
                  f"{avg['msgs']:>11.1f} {avg['boxes']:>9.1f}   (passes: {spread})")  # fmt: skip
    for n in sorted({r[0] for r in rows}):
        b, d = means[(n, "burned")], means[(n, "browser")]
        over_b, over_d = b["cpu"] - base, d["cpu"] - base
        ratio = f"{over_d / over_b:.2f}" if over_b > 0 else "n/a"
        print(f"{n} viewer(s): browser/burned CPU {d['cpu'] / b['cpu']:.2f} (over idle {ratio}), "
              f"fps {d['fps'] / b['fps']:.2f}")  # fmt: skip
    for mode, result in g2g.items():
        lat = sorted(result["lat"])
        if not lat:
            print(f"glass-to-glass, {mode}: no frame decoded ({result['bad']} unreadable)")
            continue
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
        passes = ", ".join("-" if m is None else f"{m:.0f}" for m in result["passes"])
        print(f"glass-to-glass, {mode}: median {statistics.median(lat):.0f} ms, p95 {p95:.0f} ms, "
              f"{len(lat)} frames ({result['bad']} unreadable; pass medians {passes}); "
              f"canvas {result['canvas']}")  # fmt: skip


if __name__ == "__main__":
    main()
