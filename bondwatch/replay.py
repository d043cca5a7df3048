"""`bondwatch replay`: the live detection, tracking and rule code run over recorded video."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TextIO, TypeVar

from alerts.pipeline import Pipeline
from alerts.types import Alert
from bondwatch.scans import ScanEvent
from bondwatch.site import Site
from detectors.types import DetectionBatch
from detectors.yolo import Detector
from streams.rate import RateSampler
from streams.source import open_frames

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ReplayError(Exception):
    pass


@dataclass(frozen=True)
class ReplayStats:
    alerts: int
    frames: int  # frames that went through detection, all cameras
    seconds: float


def parse_sources(site: Site, pairs: list[str]) -> dict[str, str]:
    """`CAM=PATH` pairs over the site's own URLs; every camera must end up with a source."""
    sources = {c.id: c.url for c in site.cameras}
    for pair in pairs:
        cam, sep, path = pair.partition("=")
        if not sep or not path:
            raise ReplayError(f"--source {pair!r} is not CAM=PATH")
        if cam not in sources:
            raise ReplayError(f"--source names unknown camera {cam!r} (site has {', '.join(sources)})")
        if not Path(path).is_file():
            raise ReplayError(f"--source {cam}: video file {path} does not exist")
        sources[cam] = path
    return sources


def replay(
    site: Site,
    sources: dict[str, str],
    out: TextIO,
    *,
    detector: Detector,
    scans: list[ScanEvent] | None = None,
    tracks_dir: str | Path | None = None,
    realtime: bool = False,
) -> ReplayStats:
    """Process every camera's video; write each alert as a JSON line as soon as it is raised.

    Frames are decoded on a thread of their own, ahead of the model, and taken through
    detection in groups (the detector's batch size times its parallel sessions), so the
    model calls of a group run side by side; tracking, scans and rules then go frame by
    frame in video order, as live. A camera with a motion gate, or a real-time replay, goes
    one frame at a time: the gate of a frame needs the units tracked in the frame before.
    """
    pipeline = Pipeline(site, detector, replay=True)
    class_ids = {name: i for i, name in detector.names.items()}
    count = total_frames = 0
    t0 = time.monotonic()

    def emit(alerts: list[Alert]) -> None:
        nonlocal count
        for alert in alerts:
            out.write(alert.to_json() + "\n")
            out.flush()
            count += 1

    for cam in site.cameras:
        # Scans and badges carry the video time of their zone's camera: feed each one just before
        # the first frame that passes it, so the rules see them and frames in the order they
        # happened.
        zones = site.zones_of(cam.id)
        stations = {z.station for z in zones if z.station}
        doors = {z.id for z in zones if z.kind == "restricted"}
        ours = [s for s in scans or [] if s.t is not None
                and (s.zone in doors if s.kind == "badge" else s.station in stations)]  # fmt: skip
        pending = deque(sorted(ours, key=lambda s: s.t or 0.0))
        tracks_file = None
        if tracks_dir is not None:
            Path(tracks_dir).mkdir(parents=True, exist_ok=True)
            tracks_file = open(Path(tracks_dir) / f"{cam.id}.txt", "w", encoding="utf-8")  # noqa: SIM115
        detector.reset(cam.id)  # a detector used for an earlier replay keeps no track of it
        sampler = RateSampler(cam.detect_fps)
        group = 1 if realtime or cam.motion_gate else detector.batch_size * detector.parallel
        sampled = (f for f in open_frames(sources[cam.id], camera=cam.id) if sampler.take(f.t))
        start = time.monotonic()
        frames = 0
        try:
            for chunk in _groups(_read_ahead(sampled, 2 * group), group):
                if realtime and (lag := chunk[0].t - (time.monotonic() - start)) > 0:
                    time.sleep(lag)
                for batch in pipeline.track(chunk):
                    while pending and (pending[0].t or 0.0) <= batch.t:
                        emit(pipeline.scan(pending.popleft()))
                    if tracks_file is not None:
                        _write_mot(tracks_file, batch, class_ids)
                    emit(pipeline.apply(batch))
                frames += len(chunk)
            while pending:
                emit(pipeline.scan(pending.popleft()))
            emit(pipeline.flush(camera=cam.id))
        finally:
            if tracks_file is not None:
                tracks_file.close()
        total_frames += frames
        elapsed = time.monotonic() - start
        logger.info(
            "camera %s: %d frames in %.1fs (%.1f fps)", cam.id, frames, elapsed,
            frames / elapsed if elapsed else 0.0,
        )  # fmt: skip
    return ReplayStats(alerts=count, frames=total_frames, seconds=time.monotonic() - t0)


def _groups(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _read_ahead(items: Iterator[T], depth: int) -> Iterator[T]:
    """`items`, produced on a thread of their own up to `depth` ahead; its errors re-raised here."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))  # type: ignore[type-arg]
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)

    thread = threading.Thread(target=produce, name="replay-decode", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _write_mot(f: TextIO, batch: DetectionBatch, class_ids: dict[str, int]) -> None:
    for d in batch.detections:
        x1, y1, x2, y2 = d.box
        f.write(
            f"{batch.index + 1},{d.track},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},"
            f"{d.conf:.4f},{class_ids.get(d.cls, -1)},-1,-1\n"
        )
