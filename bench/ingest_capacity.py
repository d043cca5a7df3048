"""How many 720p RTSP cameras one machine ingests and records (decode + remux, detection off).

    python bench/ingest_capacity.py [--steps 1,2,4,8,12,16,24,32] [--seconds 20] [--video PATH]

N simulated cameras: one real RTSP server process (tests/rtsp_server.py, GStreamer) serves a
1280x720 H.264 10 fps clip (the PETS clip scaled up, a keyframe every 2 s) on N mounts over
loopback. N `CameraStream`s ingest them with recording on (segments of 10 s into a SQLite
store), and one reader thread takes frames the way the service's detection worker does
(`slot.get(after_index, timeout=0)` on every camera, sampled to 5 fps by `RateSampler`).
Each step runs `--seconds` after every camera is live and prints per camera: input fps
(min/median), the frames the slot dropped, the recorder's pending queue (recording lag),
CPU seconds per camera-second of this process (decode, remux, tamper check, reader) and of
the server process, and that CPU against N=1 of the same run (1.00 = linear scaling). The
machine's CPU count and load average are printed too: on a shared machine the numbers say
what was left for us, not what the hardware can do.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the RTSP server and clip helpers of the tests

from rtsp import RtspServer, make_mp4  # noqa: E402

from bondwatch.site import Camera  # noqa: E402
from streams.camera import CameraStream  # noqa: E402
from streams.rate import RateSampler  # noqa: E402
from streams.recordings import RecordingStore  # noqa: E402

PETS = ROOT.parent / "shared" / "data" / "pets2009-s2l1" / "vtest.avi"
MIN_FPS = 9.5  # a camera below this is not keeping up with its 10 fps
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Step:
    n: int
    seconds: float
    fps: list[float]
    detect_fps: list[float]
    dropped: int
    frames: int
    pending_max: int
    segments: int
    cpu_per_cam_s: float
    server_cpu_per_cam_s: float
    load1: float


def process_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def server_cpu_s(pid: int) -> float:
    """utime + stime of another process, from /proc (it is not our child until it ends)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Reader(threading.Thread):
    """The detection worker's loop without the detector: newest frame per camera, 5 fps taken."""

    def __init__(self, streams: list[CameraStream], detect_fps: float) -> None:
        super().__init__(name="reader", daemon=True)
        self.streams = streams
        self.samplers = [RateSampler(detect_fps) for _ in streams]
        self.seen = [-1] * len(streams)
        self.taken = [0] * len(streams)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            took = False
            for i, stream in enumerate(self.streams):
                frame = stream.slot.get(after_index=self.seen[i], timeout=0)
                if frame is None:
                    continue
                self.seen[i] = frame.index
                if self.samplers[i].take(frame.t):
                    self.taken[i] += 1
                    took = True
            if not took:
                self.stopping.wait(0.01)


def run_step(server: RtspServer, n: int, seconds: float, detect_fps: float, work: Path) -> Step:
    data = work / f"n{n}"
    store = RecordingStore(f"sqlite:///{data}/db.sqlite", data / "recordings")
    streams = [
        CameraStream(Camera(id=f"cam{i:02d}", url=server.url(f"/cam{i:02d}")), recording=store)
        for i in range(n)
    ]
    reader = Reader(streams, detect_fps)
    for s in streams:
        s.start()
    reader.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(s.health().state == "live" for s in streams):
            time.sleep(0.1)
        time.sleep(2.0)  # past the RTSP start-up burst
        assert server.pid is not None
        frames0 = [s.slot.frames for s in streams]
        dropped0 = sum(s.slot.dropped for s in streams)
        taken0 = list(reader.taken)
        cpu0, srv0, t0 = process_cpu_s(), server_cpu_s(server.pid), time.monotonic()
        pending_max = 0
        while time.monotonic() - t0 < seconds:
            time.sleep(0.5)
            pending_max = max([pending_max] + [s.recorder.stats().pending for s in streams if s.recorder])
        cpu, srv, elapsed = process_cpu_s() - cpu0, server_cpu_s(server.pid) - srv0, time.monotonic() - t0
        frames = [s.slot.frames - f0 for s, f0 in zip(streams, frames0, strict=True)]
        dropped = sum(s.slot.dropped for s in streams) - dropped0
        taken = [t - t0_ for t, t0_ in zip(reader.taken, taken0, strict=True)]
        load1 = os.getloadavg()[0]
    finally:
        reader.stopping.set()
        reader.join(2)
        for s in streams:
            s.stop(5.0)
    segments = len(store.segments())
    store.engine.dispose()
    return Step(
        n=n,
        seconds=elapsed,
        fps=[f / elapsed for f in frames],
        detect_fps=[t / elapsed for t in taken],
        dropped=dropped,
        frames=sum(frames),
        pending_max=pending_max,
        segments=segments,
        cpu_per_cam_s=cpu / (n * elapsed),
        server_cpu_per_cam_s=srv / (n * elapsed),
        load1=load1,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="1,2,4,8,12,16,24,32", help="camera counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per step")
    parser.add_argument("--video", type=Path, default=PETS, help="source scaled to 1280x720")
    parser.add_argument("--detect-fps", type=float, default=5.0)
    args = parser.parse_args()
    steps = [int(n) for n in args.steps.split(",")]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    clip = make_mp4(args.video, seconds=45, fps=10, size=(1280, 720), keyframe_every=20)
    cpus = len(os.sched_getaffinity(0))
    print(f"clip: {clip} (1280x720 H.264 10 fps, {clip.stat().st_size * 8 / 45 / 1e6:.1f} Mbit/s)")
    print(f"CPUs: {os.cpu_count()} (usable by this process: {cpus}); load average at start: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip

    mounts = {f"/cam{i:02d}": clip for i in range(max(steps))}
    results: list[Step] = []
    header = (
        f"{'N':>3} {'fps min':>7} {'fps med':>7} {'det fps':>7} {'dropped':>9} {'pending':>7} "
        f"{'segs':>4} {'cpu/cam-s':>9} {'x N=1':>6} {'srv/cam-s':>9} {'total cpu':>9} {'load1':>5}"
    )
    with tempfile.TemporaryDirectory(prefix="bondwatch-ingest-") as tmp, RtspServer(mounts) as server:
        print(header, flush=True)
        for n in steps:
            r = run_step(server, n, args.seconds, args.detect_fps, Path(tmp))
            results.append(r)
            base = results[0].cpu_per_cam_s
            total = (r.cpu_per_cam_s + r.server_cpu_per_cam_s) * n
            print(
                f"{r.n:>3} {min(r.fps):>7.2f} {statistics.median(r.fps):>7.2f} "
                f"{statistics.median(r.detect_fps):>7.2f} {r.dropped:>4}/{r.frames:<4} "
                f"{r.pending_max:>7} {r.segments:>4} {r.cpu_per_cam_s:>9.3f} "
                f"{r.cpu_per_cam_s / base:>6.2f} {r.server_cpu_per_cam_s:>9.3f} "
                f"{total:>9.2f} {r.load1:>5.2f}",
                flush=True,
            )
    keeping_up = [r.n for r in results if min(r.fps) >= MIN_FPS]
    best = max(keeping_up, default=0)
    print(
        f"\nlargest N with every camera at >= {MIN_FPS} fps: {best}"
        + (
            f" (the next step, N={next(r.n for r in results if r.n > best)}, did not)"
            if best < steps[-1]
            else " (every step kept up: try larger N)"
        )
    )
    if best:
        r = next(r for r in results if r.n == best)
        print(
            f"at N={best}: {r.cpu_per_cam_s:.3f} CPU s per camera-second in the ingest process "
            f"(+{r.server_cpu_per_cam_s:.3f} in the RTSP server), "
            f"{(r.cpu_per_cam_s + r.server_cpu_per_cam_s) * best:.2f} of {cpus} CPUs in all"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
