"""What each live viewer costs the service: CPU of `bondwatch run` against viewers of one camera.

    python bench/live_viewers.py [--viewers 1,2,4] [--seconds 20]

Starts the service on the PETS clip (one camera, looping), then for each viewer count opens
that many WebRTC viewers (aiortc receivers in this process, as browsers would be) and reads
the service's CPU time from /proc over `--seconds`. The live view encodes each camera once
and shares the packets (dashboard/webrtc.py), so the cost should barely grow with viewers;
with one encoder per viewer (aiortc's default) it grows by one encoder's CPU per viewer.
Prints CPU-seconds per second for each count and the ratio to one viewer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from bondwatch.redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]
PETS = ROOT.parent / "shared" / "data" / "pets2009-s2l1" / "vtest.avi"
SITE = """
cameras: [{{id: pets, url: {video}, detect_fps: 2}}]
"""
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


async def viewer(url: str, cookies: dict[str, str], frames: list[int], stop: asyncio.Event) -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    got: asyncio.Future = asyncio.get_running_loop().create_future()
    pc.on("track", got.set_result)
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(cookies=cookies) as client:
        body = {"camera": "pets", "sdp": pc.localDescription.sdp, "type": "offer"}
        res = await client.post(f"{url}/api/webrtc/offer", json=body, timeout=30)
        res.raise_for_status()
    await pc.setRemoteDescription(RTCSessionDescription(**res.json()))
    track = await asyncio.wait_for(got, 30)
    try:
        while not stop.is_set():
            await asyncio.wait_for(track.recv(), 10)
            frames[0] += 1
    finally:
        await pc.close()


async def measure(url: str, cookies: dict[str, str], pid: int, n: int, seconds: float) -> tuple[float, float]:
    stop = asyncio.Event()
    frames = [0]
    tasks = [asyncio.create_task(viewer(url, cookies, frames, stop)) for _ in range(n)]
    await asyncio.sleep(5)  # connect and settle
    c0, f0, t0 = cpu_seconds(pid), frames[0], time.monotonic()
    await asyncio.sleep(seconds)
    c1, f1, t1 = cpu_seconds(pid), frames[0], time.monotonic()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return (c1 - c0) / (t1 - t0), (f1 - f0) / (t1 - t0) / n


def start_service(tmp: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bondwatch.cli", "run", "--site", str(tmp / "site.yaml"), "--data",
         str(tmp / "data"), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    password = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        if m := re.search(r"as admin / (\S+)", line):
            password = m.group(1)
        if "BondWatch dashboard:" in line:
            break
    else:
        sys.exit("the service exited before serving the dashboard")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, password


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--viewers", default="1,2,4")
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bondwatch-viewers-"))
    (tmp / "site.yaml").write_text(SITE.format(video=PETS))
    port = free_port()
    proc, password = start_service(tmp, port)
    url = f"http://127.0.0.1:{port}"
    try:
        res = httpx.post(f"{url}/api/login", json={"name": "admin", "password": password})
        res.raise_for_status()
        cookies = dict(res.cookies)
        rows = []
        idle0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(args.seconds / 2)
        idle = (cpu_seconds(proc.pid) - idle0) / (time.monotonic() - t0)
        for n in (int(x) for x in args.viewers.split(",")):
            cpu, fps = asyncio.run(measure(url, cookies, proc.pid, n, args.seconds))
            rows.append((n, cpu, fps))
    finally:
        proc.terminate()
        proc.wait(15)
    print(f"service CPU with no viewer: {idle:.2f} CPU-s/s (ingest, detection at 2 fps, recording)")
    print(f"{'viewers':>7} {'CPU-s/s':>8} {'over idle':>9} {'per viewer':>10} {'fps each':>8}")
    for n, cpu, fps in rows:
        print(f"{n:>7} {cpu:>8.2f} {cpu - idle:>9.2f} {(cpu - idle) / n:>10.3f} {fps:>8.1f}")


if __name__ == "__main__":
    main()
