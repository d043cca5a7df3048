"""Alert latency: from a frame's capture to its alert on the Redis stream, on N cameras.

Runs the service's own camera streams and detection worker (real-time paced file cameras,
the PETS clip looped, a restricted zone over the walkway that people cross all the time)
against a real redis-server. For every alert, latency = the stream entry id's millisecond
timestamp (the XADD time) minus the decode time `ts` of the frame whose batch raised it.

    python bench/latency.py [--cameras 8] [--fps 5] [--seconds 60] [--model PATH] [--sessions N]
"""

from __future__ import annotations

import argparse
import logging
import queue
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alerts.bus import ALERT_STREAM, AlertBus  # noqa: E402
from alerts.pipeline import Pipeline  # noqa: E402
from alerts.types import Alert  # noqa: E402
from bondwatch.redis_server import RedisServer  # noqa: E402
from bondwatch.service import Cameras, DetectionWorker  # noqa: E402
from bondwatch.site import parse_site  # noqa: E402
from detectors.types import DetectionBatch  # noqa: E402
from detectors.yolo import DEFAULT_MODEL, Detector  # noqa: E402
from streams.frame import Frame  # noqa: E402

PETS = ROOT.parent / "shared" / "data" / "pets2009-s2l1" / "vtest.avi"
ZONE = "[[0, 330], [768, 330], [768, 576], [0, 576]]"  # the lower walkway of the PETS scene


class TimedPipeline(Pipeline):
    """The shared pipeline, noting which frame's capture time raised each alert."""

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.trigger_ts: dict[str, float] = {}
        self.frames = 0

    def process(self, frames: list[Frame]) -> tuple[list[DetectionBatch], list[Alert]]:
        batches, alerts = super().process(frames)
        ts = {f.camera: f.ts for f in frames}
        for a in alerts:
            self.trigger_ts[a.id] = ts[a.camera]
        self.frames += len(frames)
        return batches, alerts


class BusSink:
    """Publishes straight to the alert stream (the service stores to SQLite first, a few ms)."""

    evidence = None  # no snapshots: the service takes them after the alert is stored

    def __init__(self, bus: AlertBus):
        self.bus = bus

    def emit(self, alert: Alert) -> None:
        self.bus.publish(alert)

    def offline_cameras(self) -> set[str]:
        return set()  # nothing stored: every camera starts as never seen dark


def site_yaml(cameras: int, fps: float, video: Path) -> str:
    lines = ["recording: {enabled: false}", "cameras:"]
    lines += [f"  - {{id: cam{i}, url: '{video}', detect_fps: {fps}}}" for i in range(cameras)]
    lines.append("zones:")
    lines += [
        f"  - {{id: walk{i}, camera: cam{i}, kind: restricted, dwell_s: 0.5, exit_s: 0.5, polygon: {ZONE}}}"
        for i in range(cameras)
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--video", default=str(PETS))
    ap.add_argument("--sessions", type=int, default=1, help="model sessions side by side")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)

    site = parse_site(site_yaml(args.cameras, args.fps, Path(args.video)))
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis", persist=False) as rs:
        bus = AlertBus(rs.url)
        sink = BusSink(bus)
        cameras = Cameras(site, sink, None)  # type: ignore[arg-type]
        pipeline = TimedPipeline(site, Detector(args.model, conf=site.detection.conf, parallel=args.sessions))
        worker = DetectionWorker(cameras, pipeline, sink, queue.SimpleQueue())  # type: ignore[arg-type]
        for stream in cameras.streams.values():
            stream.start()
        worker.start()
        t0 = time.monotonic()
        time.sleep(args.seconds)
        elapsed = time.monotonic() - t0
        worker.stop()
        for stream in cameras.streams.values():
            stream.stop()
        entries = bus._sync.xrange(ALERT_STREAM)
        bus.close()

    lat = []
    for entry_id, fields in entries:
        ts = pipeline.trigger_ts.get(fields[b"id"].decode())
        if ts is not None:
            lat.append(int(entry_id.decode().split("-")[0]) / 1000.0 - ts)
    print("| cameras | detect fps/camera asked | done | alerts | median s | p95 s |")
    print("| --- | --- | --- | --- | --- | --- |")
    if not lat:
        print(f"| {args.cameras} | {args.fps} | {pipeline.frames / elapsed / args.cameras:.2f} | 0 | - | - |")
        return 1
    p95 = statistics.quantiles(lat, n=20)[-1] if len(lat) > 1 else lat[0]
    print(
        f"| {args.cameras} | {args.fps} | {pipeline.frames / elapsed / args.cameras:.2f} |"
        f" {len(lat)} | {statistics.median(lat):.3f} | {p95:.3f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
