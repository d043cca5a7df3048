"""Soak: many 720p RTSP cameras for minutes, one restarted every period; outages, recordings, isolation.

    python bench/soak_cameras.py [--cameras 16] [--minutes 10] [--restart-every-s 120]
                                 [--down-s 15] [--stall-s 5] [--keep]

Issue 4's acceptance check. Each simulated camera is its own RTSP server process
(tests/rtsp_server.py, GStreamer) serving one 1280x720 H.264 10 fps clip on loopback, so that
killing one camera's server (SIGKILL, as when it loses power) leaves the others streaming.
`CameraStream`s ingest all of them with recording on (10 s segments into a RecordingStore in a
temp data dir). In each restart period one camera's server, round robin, is killed a quarter
into the period, kept down `--down-s`, and started again. At the end it checks:

(a) every outage was reported (the camera's state left "live", seen through `on_state`) within
    stall_s + 1 s of the kill;
(b) each camera's recorded segment time covers its streamed wall time minus its outages
    (kill until live again) within one segment length + stall_s + 1 s, each outage is one
    recorded gap, and no camera has a gap that no outage explains;
(c) in every period, each camera not restarted in it kept >= 9.5 input fps and never left
    "live" (no camera disturbs another);
(d) `verify-recordings` passes over the whole store.

It prints a table per camera, the outages, and PASS/FAIL per check; exit 0 only if all pass.
The load average is printed each period: on a shared machine a slow camera may be the
neighbours' fault, which the table's period fps and the load show side by side.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ingest_capacity import MIN_FPS, PETS, process_cpu_s  # also puts tests/ on sys.path
from rtsp import CACHE_DIR, RtspServer

from bondwatch.site import Camera
from streams.camera import CameraHealth, CameraStream
from streams.recordings import open_store, verify_recordings

REPORT_SLACK_S = 1.0  # an outage must be reported within stall_s + this


@dataclass
class Outage:
    """One scheduled server kill and what the camera reported about it (monotonic seconds)."""

    camera: int
    period: int
    kill: float
    kill_ts: float  # wall clock of the kill, to match recorded gaps
    restart: float | None = None  # when the server was started again (its start-up follows)
    restart_ts: float | None = None
    left_live: float | None = None  # the first state change away from "live" after the kill
    left_state: str = ""
    live_again: float | None = None  # the first "live" after the restart
    gap_s: float | None = None  # the recorded gap that matches it
    gap_from_kill_s: float | None = None  # where that gap begins, against the kill (wall clock)

    @property
    def report_s(self) -> float | None:
        return None if self.left_live is None else self.left_live - self.kill

    @property
    def outage_s(self) -> float | None:
        return None if self.live_again is None else self.live_again - self.kill


class StateLog:
    """Every state change of every camera, stamped on arrival (from the camera threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[float, float, str, str]] = []  # (mono, wall, camera, state)

    def on_state(self, health: CameraHealth) -> None:
        with self.lock:
            self.events.append((time.monotonic(), time.time(), health.camera, health.state))

    def of(self, camera: str) -> list[tuple[float, float, str]]:
        with self.lock:
            return [(m, w, s) for m, w, c, s in self.events if c == camera]


def make_long_clip(seconds: float, kbps: int) -> Path:
    """The PETS clip looped to `seconds`, 1280x720 10 fps H.264, a keyframe a second, at `kbps`.

    The test server does not loop files, so the clip must outlast the run; a low bitrate keeps
    sixteen cameras' recordings of ten minutes under a gigabyte. Cached like the tests' clips.
    """
    key = hashlib.sha1(f"{PETS.resolve()}|{PETS.stat().st_mtime}|{seconds}|{kbps}".encode())
    dst = CACHE_DIR / f"soak-720p-{key.hexdigest()[:10]}.mp4"
    if dst.exists():
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.mp4")
    rate = f"{kbps}k"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-y", "-v", "error", "-stream_loop", "-1", "-i", str(PETS),
         "-t", str(seconds), "-r", "10", "-vf", "scale=1280:720", "-an", "-c:v", "libx264",
         "-preset", "ultrafast", "-bf", "0", "-g", "10", "-b:v", rate, "-maxrate", rate,
         "-bufsize", rate, "-pix_fmt", "yuv420p", str(tmp)],
        check=True, timeout=900,
    )  # fmt: skip
    tmp.replace(dst)
    return dst


def fmt(x: float | None) -> str:
    return "never" if x is None else f"{x:.2f}"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--restart-every-s", type=float, default=120.0)
    parser.add_argument("--down-s", type=float, default=15.0, help="how long a killed camera stays down")
    parser.add_argument("--stall-s", type=float, default=5.0)
    parser.add_argument("--segment-s", type=float, default=10.0)
    parser.add_argument("--kbps", type=int, default=600, help="bitrate of the simulated cameras")
    parser.add_argument("--keep", action="store_true", help="keep the temp data dir")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")

    run_s = args.minutes * 60
    periods = int(run_s // args.restart_every_s)
    clip = make_long_clip(run_s + 90, args.kbps)
    print(f"clip: {clip} (1280x720 H.264 10 fps, {clip.stat().st_size * 8 / (run_s + 90) / 1e6:.2f} Mbit/s)")
    print(f"{args.cameras} cameras, {args.minutes:g} min, {periods} restarts (every "
          f"{args.restart_every_s:g} s, down {args.down_s:g} s), stall {args.stall_s:g} s, "
          f"segments {args.segment_s:g} s")  # fmt: skip
    print(f"CPUs: {os.cpu_count()}; load average at start: {load()}", flush=True)

    data = Path(tempfile.mkdtemp(prefix="bondwatch-soak-"))
    names = [f"cam{i:02d}" for i in range(args.cameras)]
    servers = [RtspServer({"/cam": clip}) for _ in names]
    log = StateLog()
    store = open_store(data)
    streams = [
        CameraStream(
            Camera(id=name, url=server.url("/cam")),
            on_state=log.on_state,
            stall_s=args.stall_s,
            recording=store,
            segment_s=args.segment_s,
        )
        for name, server in zip(names, servers, strict=True)
    ]
    outages: list[Outage] = []
    period_fps: list[list[float]] = []  # [period][camera]
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda s: s.start(), servers))
        for s in streams:
            s.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(s.health().state == "live" for s in streams):
            time.sleep(0.2)
        not_live = [s.camera.id for s in streams if s.health().state != "live"]
        if not_live:
            print(f"FAIL: not live after 60 s: {', '.join(not_live)}")
            if not args.keep:
                shutil.rmtree(data, ignore_errors=True)
            return 1
        time.sleep(2.0)  # past the RTSP start-up burst
        cpu0, t0 = process_cpu_s(), time.monotonic()
        print(f"all live; soak starts (load {load()})", flush=True)
        for k in range(periods):
            start = t0 + k * args.restart_every_s
            frames0 = [s.slot.frames for s in streams]
            victim = k % args.cameras
            kill_at, restart_at = start + args.restart_every_s / 4, None
            outage = None
            end = start + args.restart_every_s
            while (now := time.monotonic()) < end:
                # stamped before acting: the camera may report before kill() or start() return
                if outage is None and now >= kill_at:
                    outage = Outage(victim, k, time.monotonic(), time.time())
                    outages.append(outage)
                    servers[victim].kill()
                    restart_at = outage.kill + args.down_s
                elif outage is not None and outage.restart is None and restart_at and now >= restart_at:
                    outage.restart, outage.restart_ts = time.monotonic(), time.time()
                    servers[victim].start()
                time.sleep(0.05)
            elapsed = time.monotonic() - start
            period_fps.append(
                [(s.slot.frames - f0) / elapsed for s, f0 in zip(streams, frames0, strict=True)]
            )
            others = [f for i, f in enumerate(period_fps[-1]) if i != victim]
            print(f"period {k}: restarted {names[victim]}; others' fps min {min(others):.2f}; "
                  f"load {load()}", flush=True)  # fmt: skip
        stop_mono, stop_wall = time.monotonic(), time.time()
        cpu_per_cam = (process_cpu_s() - cpu0) / (args.cameras * (stop_mono - t0))
        with ThreadPoolExecutor(len(streams)) as pool:
            stopped = list(pool.map(lambda s: s.stop(15.0), streams))
    finally:
        for s in streams:
            s.stop(5.0)
        for server in servers:
            server.stop()
    if not all(stopped):
        print("WARNING: some cameras did not stop in time")
    print(f"load average at end: {load()}; ingest CPU {cpu_per_cam:.3f} s per camera-second\n")

    ok = {"a": True, "b": True, "c": True, "d": True}

    # (a) outages reported in time, and back live after the restart
    for o in outages:
        events = log.of(names[o.camera])
        after_kill = [(m, s) for m, _w, s in events if m >= o.kill]
        left = next(((m, s) for m, s in after_kill if s != "live"), None)
        if left is not None:
            o.left_live, o.left_state = left
        if o.restart is not None:
            o.live_again = next((m for m, s in after_kill if s == "live" and m >= o.restart), None)
        if o.report_s is None or o.report_s > args.stall_s + REPORT_SLACK_S or o.live_again is None:
            ok["a"] = False

    # (b) recorded time vs streamed time minus outages; gaps match outages one to one
    tolerance = args.segment_s + args.stall_s + REPORT_SLACK_S
    rows = []
    for i, name in enumerate(names):
        first_live = next(w for _m, w, s in log.of(name) if s == "live")
        mine = [o for o in outages if o.camera == i]
        away = sum(o.outage_s or (stop_mono - o.kill) for o in mine)
        expected = stop_wall - first_live - away
        segments = store.segments(name)
        recorded = sum(s.end_t - s.start_t for s in segments)
        # stopping the soak stops recording too: that last, open gap is no outage
        gaps = [g for g in store.gaps(name) if g.to_ts is not None or g.from_ts < stop_wall - args.segment_s]
        matched = 0
        for o in mine:
            hits = [
                g
                for g in gaps
                if g.from_ts < (o.restart_ts or stop_wall) and (g.to_ts or stop_wall) > o.kill_ts
            ]
            matched += len(hits) == 1
            if len(hits) == 1:
                o.gap_s = (hits[0].to_ts or stop_wall) - hits[0].from_ts
                o.gap_from_kill_s = hits[0].from_ts - o.kill_ts
        cover_ok = abs(recorded - expected) <= tolerance
        gaps_ok = matched == len(mine) and len(gaps) == len(mine)
        ok["b"] &= cover_ok and gaps_ok
        others = [period_fps[k][i] for k in range(periods) if k % args.cameras != i]
        states = [s for m, _w, s in log.of(name) if t0 <= m <= stop_mono]
        rows.append((name, len(segments), expected, recorded, recorded - expected, len(gaps), len(mine),
                     min(others, default=float("nan")), len(states), cover_ok and gaps_ok))  # fmt: skip

    # (c) cameras not restarted in a period kept their frame rate and stayed live
    for k in range(periods):
        start, end = t0 + k * args.restart_every_s, t0 + (k + 1) * args.restart_every_s
        victim = k % args.cameras
        for i, name in enumerate(names):
            if i == victim:
                continue
            changed = [s for m, _w, s in log.of(name) if start <= m < end]
            if period_fps[k][i] < MIN_FPS or changed:
                ok["c"] = False
                print(f"period {k}: {name} {period_fps[k][i]:.2f} fps, state changes {changed}")

    # (d) the hash chains and files
    out = io.StringIO()
    ok["d"] = verify_recordings(data, out=out) == 0
    store.engine.dispose()

    print(f"{'camera':<7} {'segs':>4} {'streamed-out s':>14} {'recorded s':>10} {'diff s':>7} "
          f"{'gaps':>4} {'outages':>7} {'min fps*':>8} {'state chg':>9}  ok")  # fmt: skip
    for name, nseg, exp, rec, diff, ngap, nout, fps, nchg, good in rows:
        print(f"{name:<7} {nseg:>4} {exp:>14.1f} {rec:>10.1f} {diff:>+7.1f} {ngap:>4} {nout:>7} "
              f"{fps:>8.2f} {nchg:>9}  {'ok' if good else 'NO'}")  # fmt: skip
    print("* lowest input fps over the periods in which the camera was not restarted\n")
    print(f"{'outage':<7} {'camera':<7} {'reported s':>10} {'as':<8} {'down s':>6} "
          f"{'restart->live s':>15} {'kill->live s':>12} {'gap s':>6} {'gap-kill s':>10}")  # fmt: skip
    for n, o in enumerate(outages):
        down = None if o.restart is None else o.restart - o.kill
        back = None if o.live_again is None or o.restart is None else o.live_again - o.restart
        print(f"{n:<7} {names[o.camera]:<7} {fmt(o.report_s):>10} {o.left_state:<8} "
              f"{fmt(down):>6} {fmt(back):>15} {fmt(o.outage_s):>12} {fmt(o.gap_s):>6} "
              f"{fmt(o.gap_from_kill_s):>10}")  # fmt: skip
    print(f"\nverify-recordings: {out.getvalue().strip()}\n")

    checks = {
        "a": f"every outage reported within stall_s + {REPORT_SLACK_S:g} s = "
        f"{args.stall_s + REPORT_SLACK_S:g} s and live again after the restart",
        "b": f"recorded time = streamed time minus outages within {tolerance:g} s; "
        "one recorded gap per outage, no other gaps",
        "c": f"cameras not restarted in a period kept >= {MIN_FPS} fps and stayed live",
        "d": "verify-recordings passes",
    }
    for key, text in checks.items():
        print(f"{'PASS' if ok[key] else 'FAIL'} ({key}) {text}")
    if args.keep:
        print(f"data kept in {data}")
    else:
        shutil.rmtree(data, ignore_errors=True)
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
