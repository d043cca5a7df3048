"""`bondwatch run`: wires ingest, detection, rules, alert storage and the dashboard.

Start order: Redis, database, cameras, detection, web. Stop order is the reverse, each step
bounded in time, so Ctrl-C always returns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import secrets
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
import uvicorn

from alerts.bus import AlertBus
from alerts.outbox import Outbox, Publisher
from alerts.pipeline import Pipeline
from alerts.store import AlertStore
from alerts.types import Alert, AlertType
from bondwatch.accounts import Accounts
from bondwatch.db import database_url
from bondwatch.demo import Demo, DemoScanner
from bondwatch.redis_server import RedisServer, RedisServerError
from bondwatch.scanbus import ScanBus, ScanReader
from bondwatch.scans import ScanEvent
from bondwatch.site import Site
from dashboard.app import create_app
from detectors.types import DetectionBatch
from detectors.yolo import Detector
from streams.camera import CameraHealth, CameraStream
from streams.frame import Frame
from streams.rate import RateSampler
from streams.recordings import RecordingStore, open_store
from streams.tamper import TamperEvent

logger = logging.getLogger(__name__)

# The recording window an alert holds as evidence, around the event's wall-clock time.
EVIDENCE_PRE_S = 30.0
EVIDENCE_POST_S = 30.0
SCAN_BLOCK_MS = 1000  # how long the scan listener waits in Redis before it checks for stop
SCAN_RETRY_MAX_S = 30.0


class ServiceError(Exception):
    pass


class AlertSink:
    """Store first, with an outbox row the publisher sends on: an alert that reached the
    database is never lost, whatever Redis does.

    Each alert also holds the recording around it, so retention never deletes its evidence.
    """

    def __init__(self, outbox: Outbox, recording: RecordingStore | None):
        self.outbox = outbox
        self.recording = recording
        self._lock = threading.Lock()

    def emit(self, alert: Alert) -> None:
        with self._lock:
            self.outbox.emit(alert)
            if self.recording is not None and alert.ts is not None:
                self.recording.hold(
                    f"alert {alert.id}", alert.ts - EVIDENCE_PRE_S, alert.ts + EVIDENCE_POST_S,
                    camera=alert.camera,
                )  # fmt: skip
        logger.warning("ALERT %s", alert.to_json(live=True))


class Cameras:
    """The live view the dashboard reads: newest frame and newest detections per camera."""

    def __init__(self, site: Site, sink: AlertSink, recording: RecordingStore | None):
        self.site = site
        self.sink = sink
        self.streams = {
            c.id: CameraStream(
                c,
                on_state=self._on_state,
                on_tamper=self._on_tamper,
                recording=recording,
                segment_s=site.recording.segment_s,
            )
            for c in site.cameras
        }
        self.batches: dict[str, DetectionBatch] = {}
        self._offline: set[str] = set()

    def latest(self, camera: str) -> tuple[Frame | None, DetectionBatch | None]:
        stream = self.streams.get(camera)
        if stream is None:
            return None, None
        return stream.slot.peek(), self.batches.get(camera)

    def position(self, camera: str) -> tuple[float, float] | None:
        """Video time and wall-clock time of the newest frame of `camera`."""
        frame = self.streams[camera].slot.peek()
        return (frame.t, frame.ts) if frame is not None else None

    def health(self) -> dict[str, CameraHealth]:
        return {cid: s.health() for cid, s in self.streams.items()}

    def _on_state(self, h: CameraHealth) -> None:
        """A camera that goes dark is itself a loss of supervision: report it as an alert."""
        if h.state in ("offline", "stalled") and h.camera not in self._offline:
            self._offline.add(h.camera)
            self._emit("camera_offline", h, f"camera {h.camera} is {h.state}: {h.error or 'no frames'}")
        elif h.state == "live" and h.camera in self._offline:
            self._offline.discard(h.camera)
            self._emit("camera_online", h, f"camera {h.camera} is live again")

    def _on_tamper(self, e: TamperEvent) -> None:
        """A camera that streams but no longer shows the scene is blind too; its return is logged."""
        if e.active:
            alert = Alert(type="camera_tamper", camera=e.camera, t=e.t, ts=e.ts, explanation=e.detail)
            self.sink.emit(alert)

    def _emit(self, kind: AlertType, h: CameraHealth, explanation: str) -> None:
        last = self.streams[h.camera].slot.peek()
        t = last.t if last is not None else 0.0  # video time of the last frame seen
        self.sink.emit(Alert(type=kind, camera=h.camera, t=t, ts=time.time(), explanation=explanation))


class ScanListener(threading.Thread):
    """Reads the scan stream into a queue that the detection worker drains.

    Waiting on Redis stays off the detection loop, and the rules are touched by one thread only.
    """

    def __init__(self, reader: ScanReader):
        super().__init__(name="scans", daemon=True)
        self.reader = reader
        self.scans: queue.SimpleQueue[ScanEvent] = queue.SimpleQueue()
        self.stopping = threading.Event()

    def run(self) -> None:
        retry_s = 1.0
        while not self.stopping.is_set():
            try:
                for scan in self.reader.read(block_ms=SCAN_BLOCK_MS):
                    self.scans.put(scan)
                retry_s = 1.0
            except redis.RedisError as e:
                logger.error("cannot read the scan stream (retrying in %.0f s): %s", retry_s, e)
                self.stopping.wait(retry_s)
                retry_s = min(retry_s * 2, SCAN_RETRY_MAX_S)

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        self.join(timeout_s)
        self.reader.close()


def deliver_scans(
    scans: queue.SimpleQueue[ScanEvent],
    to_rules: Callable[[ScanEvent], list[Alert]],
    emit: Callable[[Alert], None],
) -> int:
    """Hand every waiting scan to the rules in arrival order, emitting the alerts they decide
    (a late scan can end the grace window of other departures); returns how many there were."""
    n = 0
    while True:
        try:
            scan = scans.get_nowait()
        except queue.Empty:
            return n
        for alert in to_rules(scan):
            emit(alert)
        n += 1


class DetectionWorker(threading.Thread):
    """Takes the newest frame of each camera at its detection rate, runs the shared pipeline.

    Frames are collected across cameras into one model call: up to `batch_size` frames (one
    per camera), waiting at most `batch_timeout_ms` after the first one for the others, so a
    camera never waits long for a batch to fill. Scans from `scans` go to the rules before each
    batch. Pending departures are decided by capture time as the station camera's batches pass
    their grace window, scan or no scan, so this loop needs nothing else to release them.
    """

    def __init__(
        self,
        cameras: Cameras,
        pipeline: Pipeline,
        sink: AlertSink,
        scans: queue.SimpleQueue[ScanEvent],
    ):
        super().__init__(name="detection", daemon=True)
        self.cameras = cameras
        self.pipeline = pipeline
        self.sink = sink
        self.scans = scans
        self.stopping = threading.Event()
        settings = cameras.site.detection
        self.batch_size = settings.batch_size
        self.batch_timeout_s = settings.batch_timeout_ms / 1000.0
        self.samplers = {c.id: RateSampler(c.detect_fps) for c in cameras.site.cameras}
        self.seen: dict[str, int] = {}

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                deliver_scans(self.scans, self.pipeline.scan, self.sink.emit)
            except Exception:
                logger.exception("a scan could not be applied to the rules")
            frames = self.collect()
            if not frames:
                continue
            try:
                batches, alerts = self.pipeline.process(frames)
            except Exception:
                logger.exception("detection failed on %s", [f.camera for f in frames])
                continue
            for b in batches:
                self.cameras.batches[b.camera] = b
            for a in alerts:
                self.sink.emit(a)

    def collect(self) -> list[Frame]:
        """The due frames of up to `batch_size` cameras; [] when none came within ~10 ms."""
        frames: dict[str, Frame] = {}
        deadline = time.monotonic() + 0.01
        while not self.stopping.is_set():
            for cid, stream in self.cameras.streams.items():
                if cid in frames or len(frames) >= self.batch_size:
                    continue
                # Frame indices only grow, across file loops and reconnects alike.
                frame = stream.slot.get(after_index=self.seen.get(cid, -1), timeout=0)
                if frame is None:
                    continue
                self.seen[cid] = frame.index
                if self.samplers[cid].take(frame.t):
                    if not frames:
                        deadline = time.monotonic() + self.batch_timeout_s
                    frames[cid] = frame
            full = len(frames) >= min(self.batch_size, len(self.cameras.streams))
            if full or time.monotonic() >= deadline:
                break
            self.stopping.wait(0.002)
        return list(frames.values())

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        self.join(timeout_s)


def serve(
    site: Site, data_dir: Path, *, host: str, port: int, model: Detector, demo: Demo | None = None
) -> int:
    return asyncio.run(_serve(site, data_dir, host=host, port=port, model=model, demo=demo))


async def _serve(
    site: Site, data_dir: Path, *, host: str, port: int, model: Detector, demo: Demo | None
) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    embedded: RedisServer | None = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        try:
            embedded = RedisServer(data_dir / "redis").start()
        except RedisServerError as e:
            raise ServiceError(str(e)) from None
        redis_url = embedded.url
    db_url = database_url(data_dir)
    store = AlertStore(db_url)
    accounts = Accounts(db_url)
    _first_login(accounts, host, port)
    bus = AlertBus(redis_url)
    rec = site.recording
    recording = (
        open_store(
            data_dir,
            max_age_s=rec.max_age_days * 86400 if rec.max_age_days else None,
            quota_bytes=int(rec.quota_gb * 1e9) if rec.quota_gb else None,
        )
        if rec.enabled
        else None
    )
    outbox = Outbox(store)
    publisher = Publisher(outbox, bus)
    sink = AlertSink(outbox, recording)
    cameras = Cameras(site, sink, recording)
    # Read back as far as a scan can still cover a departure, for scans made while we were down.
    stations = [z for z in site.zones if z.kind == "station"]
    backlog_s = max((z.scan_before_s + z.scan_grace_s for z in stations), default=0.0)
    listener = ScanListener(ScanReader(redis_url, since_s=backlog_s))
    worker = DetectionWorker(cameras, Pipeline(site, model), sink, listener.scans)
    scanner = DemoScanner(demo, ScanBus(redis_url), cameras.position) if demo is not None else None
    app = create_app(cameras, store, bus, accounts, title="BondWatch")
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    try:
        publisher.start()
        for stream in cameras.streams.values():
            stream.start()
        listener.start()
        worker.start()
        if scanner is not None:
            scanner.start()
        n = len(site.cameras)
        print(f"BondWatch dashboard: http://{host}:{port}/  ({n} camera{'s' * (n != 1)})", flush=True)
        await server.serve()
    finally:
        logger.info("shutting down")
        if scanner is not None:
            scanner.stop()
        worker.stop()
        listener.stop()
        if listener.reader.bad:
            logger.warning("%d unreadable entries were skipped on the scan stream", listener.reader.bad)
        for stream in cameras.streams.values():
            stream.stop()
        publisher.stop()
        bus.close()
        store.close()
        if embedded is not None:
            embedded.stop()
    return 0


def _first_login(accounts: Accounts, host: str, port: int) -> None:
    """On first start there is no account: create an admin and print its password once."""
    if accounts.count():
        return
    password = secrets.token_urlsafe(12)
    accounts.add("admin", "admin", password)
    print(f"First start: sign in at http://{host}:{port}/ as admin / {password}", flush=True)
