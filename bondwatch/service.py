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
from typing import TYPE_CHECKING

import redis
import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from alerts.bus import AlertBus
from alerts.evidence import Evidence, FrameRing
from alerts.notify import NotifyError, NotifyService
from alerts.outbox import Outbox, Publisher
from alerts.store import AlertStore
from alerts.types import Alert, AlertType
from bondwatch.accounts import Accounts
from bondwatch.db import DatabaseError, database_url, migrate
from bondwatch.demo import Demo, DemoScanner
from bondwatch.leases import FenceCheck
from bondwatch.redis_server import RedisServer, RedisServerError
from bondwatch.retention import Retention, RetentionWorker
from bondwatch.scanbus import LiveScan, ScanBus, ScanReader
from bondwatch.scanlog import ScanLog
from bondwatch.scans import ScanEvent
from bondwatch.site import Camera, Site
from dashboard.app import create_app
from detectors.types import DetectionBatch
from streams.camera import CameraHealth, CameraStream
from streams.frame import Frame
from streams.rate import RateSampler
from streams.recordings import RecordingStore, open_store
from streams.tamper import TamperEvent

if TYPE_CHECKING:  # the model stack (torch) loads only where a detector is built
    from alerts.pipeline import Pipeline
    from detectors.yolo import Detector

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

    Each alert also holds the recording around it, so retention never deletes its evidence,
    and gets its snapshot from `evidence` right after it is stored; a snapshot that fails is
    logged, never a reason to lose the alert.
    """

    def __init__(self, outbox: Outbox, recording: RecordingStore | None, evidence: Evidence | None = None):
        self.outbox = outbox
        self.recording = recording
        self.evidence = evidence
        self._lock = threading.Lock()

    def offline_cameras(self) -> set[str]:
        return self.outbox.store.offline_cameras()

    def emit(self, alert: Alert) -> None:
        with self._lock:
            if not self.outbox.emit(alert):
                return  # stored before (it has its hold), or refused by the camera's fence
            if self.recording is not None and alert.ts is not None:
                self.recording.hold(
                    f"alert {alert.id}", alert.ts - EVIDENCE_PRE_S, alert.ts + EVIDENCE_POST_S,
                    camera=alert.camera,
                )  # fmt: skip
        if self.evidence is not None:
            try:
                self.evidence.take_snapshot(alert)
            except Exception:
                logger.exception("camera %s: no snapshot for alert %s", alert.camera, alert.id)
        logger.warning("ALERT %s", alert.to_json(live=True))


class Cameras:
    """The live view the dashboard reads: newest frame and newest detections per camera."""

    def __init__(
        self, site: Site, sink: AlertSink, recording: RecordingStore | None, *, owned: bool = False
    ):
        """Streams for every camera of `site`; with `owned` (a `bondwatch worker`) none until
        `open` is called for each camera the worker holds a lease on."""
        self.site = site
        self.sink = sink
        self.recording = recording
        self.batches: dict[str, DetectionBatch] = {}
        # Dark when the service last looked (the store says): coming back is then reported.
        self._offline: set[str] = sink.offline_cameras()
        self.streams = {} if owned else {c.id: self._stream(c) for c in site.cameras}

    def _stream(self, camera: Camera) -> CameraStream:
        return CameraStream(
            camera,
            on_state=self._on_state,
            on_tamper=self._on_tamper,
            recording=self.recording,
            segment_s=self.site.recording.segment_s,
        )

    def open(self, camera: Camera) -> None:
        """Start ingesting `camera` (its lease was just taken)."""
        if camera.id in self.sink.offline_cameras():
            self._offline.add(camera.id)  # its last owner saw it go dark
        stream = self._stream(camera)
        stream.start()
        self.streams = {**self.streams, camera.id: stream}  # readers iterate the old dict meanwhile

    def close(self, camera: str) -> None:
        """Stop ingesting and recording `camera` (its lease moved or was lost)."""
        stream = self.streams.get(camera)
        if stream is None:
            return
        self.streams = {cid: s for cid, s in self.streams.items() if cid != camera}
        self.batches.pop(camera, None)
        self._offline.discard(camera)
        stream.stop()

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

    def __init__(self, reader: ScanReader, log: ScanLog | None = None):
        super().__init__(name="scans", daemon=True)
        self.reader = reader
        self.log = log
        self.scans: queue.SimpleQueue[ScanEvent] = queue.SimpleQueue()
        self.stopping = threading.Event()

    def run(self) -> None:
        retry_s = 1.0
        while not self.stopping.is_set():
            try:
                batch = self.reader.read(block_ms=SCAN_BLOCK_MS)
                for scan in batch:
                    self.scans.put(scan)
                retry_s = 1.0
                if batch and self.log is not None:
                    self._keep(batch)
            except redis.RedisError as e:
                logger.error("cannot read the scan stream (retrying in %.0f s): %s", retry_s, e)
                self.stopping.wait(retry_s)
                retry_s = min(retry_s * 2, SCAN_RETRY_MAX_S)

    def _keep(self, scans: list[LiveScan]) -> None:
        """Store the scans for serial trace; the rules have them already, whatever the database does."""
        assert self.log is not None
        try:
            self.log.record(scans)
        except SQLAlchemyError as e:
            logger.error("could not store %d scans for serial trace: %s", len(scans), e)

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
        self._streams: dict[str, CameraStream] = {}  # the stream each camera's state belongs to
        # Held from the rules' decision to the alerts' emission: rule state read under it (a
        # worker's checkpoint for the camera's next owner) never lacks an event whose alert
        # is not stored yet.
        self.busy = threading.Lock()

    def run(self) -> None:
        while not self.stopping.is_set():
            with self.busy:
                try:
                    deliver_scans(self.scans, self.pipeline.scan, self.sink.emit)
                except Exception:
                    logger.exception("a scan could not be applied to the rules")
            frames = self.collect()
            if not frames:
                continue
            with self.busy:
                self._detect(frames)

    def _detect(self, frames: list[Frame]) -> None:
        try:
            batches, alerts = self.pipeline.process(frames)
        except Exception:
            logger.exception("detection failed on %s", [f.camera for f in frames])
            return
        evidence = self.sink.evidence
        by_camera = {f.camera: f for f in frames}
        for b in batches:
            self.cameras.batches[b.camera] = b
            if evidence is not None and evidence.ring is not None and b.camera in by_camera:
                evidence.ring.add(by_camera[b.camera], b)
        for a in alerts:
            self.sink.emit(a)

    def _restart(self, camera: str, stream: CameraStream) -> None:
        """A camera's stream was replaced (a worker took the camera back after a handover): its
        frames start a new time line, so its sampling and tracks start over, and the rule events
        it left pending are decided now rather than lost. (A `bondwatch worker` has replaced the
        camera's rule state by its last owner's checkpoint already, so none are left here.)"""
        again = camera in self._streams
        self._streams[camera] = stream
        if not again:
            return
        self.seen.pop(camera, None)
        self.samplers[camera] = RateSampler(stream.camera.detect_fps)
        self.pipeline.detector.reset(camera)
        for alert in self.pipeline.flush(camera=camera):
            self.sink.emit(alert)

    def collect(self) -> list[Frame]:
        """The due frames of up to `batch_size` cameras; [] when none came within ~10 ms."""
        frames: dict[str, Frame] = {}
        deadline = time.monotonic() + 0.01
        while not self.stopping.is_set():
            for cid, stream in self.cameras.streams.items():
                if cid in frames or len(frames) >= self.batch_size:
                    continue
                if self._streams.get(cid) is not stream:
                    self._restart(cid, stream)
                # Frame indices only grow, across file loops and reconnects alike.
                frame = stream.slot.get(after_index=self.seen.get(cid, -1), timeout=0)
                if frame is None:
                    continue
                self.seen[cid] = frame.index
                if self.samplers[cid].take(frame.t):
                    if not frames:
                        deadline = time.monotonic() + self.batch_timeout_s
                    frames[cid] = frame
            full = bool(frames) and len(frames) >= min(self.batch_size, len(self.cameras.streams))
            if full or time.monotonic() >= deadline:
                break
            self.stopping.wait(0.002)
        return list(frames.values())

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        self.join(timeout_s)


def recording_store(site: Site, data_dir: Path, fence: FenceCheck | None = None) -> RecordingStore | None:
    """The site's recording store under `data_dir` with its retention; None when it records nothing."""
    rec = site.recording
    if not rec.enabled:
        return None
    return open_store(
        data_dir,
        max_age_s=rec.max_age_days * 86400 if rec.max_age_days else None,
        quota_bytes=int(rec.quota_gb * 1e9) if rec.quota_gb else None,
        fence=fence,
    )


def serve(
    site: Site, data_dir: Path, *, host: str, port: int, model: Detector, demo: Demo | None = None,
    site_path: Path | None = None,
) -> int:
    """Run the service; `site_path`, the file `site` was read from, is where the dashboard's zone
    editor saves (None: zones are read-only)."""
    return asyncio.run(
        _serve(site, data_dir, host=host, port=port, model=model, demo=demo, site_path=site_path)
    )


async def _serve(
    site: Site, data_dir: Path, *, host: str, port: int, model: Detector, demo: Demo | None,
    site_path: Path | None = None,
) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        migrate(database_url(data_dir))  # before anything starts: an unusable database stops here
    except DatabaseError as e:
        raise ServiceError(str(e)) from None
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
    recording = recording_store(site, data_dir)
    outbox = Outbox(store)
    publisher = Publisher(outbox, bus)
    retention = RetentionWorker(Retention(db_url, data_dir, site.retention))
    evidence = Evidence(data_dir, store, recording, site, FrameRing(), prepare_clips=True)
    sink = AlertSink(outbox, recording, evidence)
    cameras = Cameras(site, sink, recording)
    # Read back as far as a scan can still cover a departure, for scans made while we were down.
    stations = [z for z in site.zones if z.kind == "station"]
    backlog_s = max((z.scan_before_s + z.scan_grace_s for z in stations), default=0.0)
    listener = ScanListener(ScanReader(redis_url, since_s=backlog_s), ScanLog(store.engine))
    from alerts.pipeline import Pipeline  # not at the top: workers without a model never load torch

    pipeline = Pipeline(site, model)
    worker = DetectionWorker(cameras, pipeline, sink, listener.scans)

    def apply_zones(edited: Site) -> None:
        """The zone editor saved `edited`: the rules take its zones between two batches."""
        cameras.site = edited
        evidence.site = edited  # snapshots draw the zones the rules use
        for alert in pipeline.reload_zones(edited):
            sink.emit(alert)

    scanner = DemoScanner(demo, ScanBus(redis_url), cameras.position) if demo is not None else None
    app = create_app(
        cameras, store, bus, accounts, title="BondWatch", recording=recording, evidence=evidence,
        site_path=site_path, on_site=apply_zones,
    )  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    notify: NotifyService | None = None  # started after the publisher, stopped before it
    try:
        publisher.start()
        retention.start()
        notify = start_notify(site, store, redis_url, data_dir, f"http://{host}:{port}")
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
        if notify is not None:
            notify.stop()
        publisher.stop()
        retention.stop()
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


def start_notify(
    site: Site, store: AlertStore, redis_url: str, data_dir: Path, dashboard_url: str
) -> NotifyService | None:
    """The notifier (see `bondwatch notify`) as threads of this process, when the site file
    configures notification channels."""
    if not site.notifications.channels:
        return None
    try:
        notify = NotifyService(site, store, redis_url, data_dir, dashboard_url=dashboard_url)
    except NotifyError as e:
        raise ServiceError(str(e)) from None
    notify.start()
    return notify
