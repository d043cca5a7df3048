"""The live view across machines: the worker that owns a camera publishes its newest frame, its
newest detections and its health into Redis, and `bondwatch web` reads them back as a `LiveView`
that the WebRTC code and the snapshot route use unchanged.

Pixels cross Redis only while someone watches. A web process that serves a camera's live view
or snapshot refreshes that camera's short-lived viewer key; the owner checks the viewer keys of
its cameras a few times a second and, for those watched, adds each new frame (JPEG) with the
detections of the moment to a stream capped at `STREAM_MAXLEN` entries, read by the web process
with a blocking XREAD. Health is tiny and always published, with an expiry, so the camera of a
worker that died reads as offline rather than live forever.

    bondwatch:live:viewer:CAM   "someone watches", expires after VIEWER_TTL_S (web, every second)
    bondwatch:live:frames:CAM   stream of (jpeg, index, t, ts, batch), at most 2 entries (owner)
    bondwatch:live:health:CAM   the camera's CameraHealth as JSON, expires (owner, every second)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping

import cv2
import numpy as np
import redis

from bondwatch.site import Site
from detectors.types import Detection, DetectionBatch
from streams.camera import CameraHealth
from streams.frame import Frame

logger = logging.getLogger(__name__)

PREFIX = "bondwatch:live"
VIEWER_TTL_S = 3.0  # a viewer key outlives two missed refreshes
VIEWER_REFRESH_S = 1.0
WANT_S = 3.0  # a camera whose frames were asked for within this long is still being watched
CHECK_S = 0.25  # how often an owner looks for viewers: at most this much delay to the first frame
HEALTH_EVERY_S = 1.0
HEALTH_TTL_S = 5.0
STREAM_MAXLEN = 2  # exact, not `~`: a JPEG entry is larger than a stream node, so it costs nothing
STREAM_TTL_S = 10.0  # the stream of a camera nobody watches any more goes away by itself
FRESH_S = 1.0  # a frame older than this (Redis clock) when a viewer starts is not shown
READ_BLOCK_MS = 200
JPEG_QUALITY = 80
MAX_FPS = 25.0  # the most frames per second published per camera
POLL_S = 0.005  # how long the publisher sleeps when no watched camera has a new frame
RETRY_S = 1.0


def viewer_key(camera: str) -> str:
    return f"{PREFIX}:viewer:{camera}"


def frames_key(camera: str) -> str:
    return f"{PREFIX}:frames:{camera}"


def health_key(camera: str) -> str:
    return f"{PREFIX}:health:{camera}"


def encode_batch(batch: DetectionBatch) -> bytes:
    d = dataclasses.asdict(batch)
    d["detections"] = [[x.cls, x.conf, list(x.box), x.track] for x in batch.detections]
    return json.dumps(d).encode()


def decode_batch(raw: bytes) -> DetectionBatch:
    d = json.loads(raw)
    detections = tuple(
        Detection(cls=c, conf=conf, box=(box[0], box[1], box[2], box[3]), track=track)
        for c, conf, box, track in d["detections"]
    )
    return DetectionBatch(
        camera=d["camera"], index=d["index"], t=d["t"], ts=d["ts"], width=d["width"],
        height=d["height"], detections=detections,
    )  # fmt: skip


_HEALTH_FIELDS = {f.name for f in dataclasses.fields(CameraHealth)}


def encode_health(health: CameraHealth) -> bytes:
    return json.dumps(dataclasses.asdict(health)).encode()


def decode_health(raw: bytes) -> CameraHealth:
    """A published health record; fields a newer worker adds are ignored by an older web."""
    d = json.loads(raw)
    return CameraHealth(**{k: v for k, v in d.items() if k in _HEALTH_FIELDS})


NO_WORKER = "no worker reports this camera"


def unreported(camera: str, why: str = NO_WORKER) -> CameraHealth:
    """The health of a camera no live worker reports (or that cannot be read): offline, and why."""
    return CameraHealth(
        camera=camera, state="offline", fps=0.0, frames=0, dropped=0, decode_errors=0, reconnects=0,
        last_frame_ts=None, error=why,
    )  # fmt: skip


def encode_frame(frame: Frame, quality: int = JPEG_QUALITY) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"camera {frame.camera}: frame {frame.index} could not be JPEG-encoded")
    return buf.tobytes()


def decode_frame(camera: str, fields: Mapping[bytes, bytes]) -> Frame:
    image = cv2.imdecode(np.frombuffer(fields[b"jpeg"], np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"camera {camera}: a published frame is not a JPEG")
    return Frame(
        camera=camera, index=int(fields[b"index"]), t=float(fields[b"t"]), ts=float(fields[b"ts"]),
        image=image,
    )  # fmt: skip


def _client(url: str) -> redis.Redis:
    # Bytes, not text: frames are JPEG. The timeout sits above the blocking read's.
    return redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)


class LivePublisher(threading.Thread):
    """On the worker: publishes the health of every camera it ingests and, while some web
    process watches a camera, that camera's new frames and detections.

    `latest` and `health` are the worker's `Cameras.latest` and `Cameras.health`: the cameras
    in `health()` are the ones this worker owns now. Frames are read with a peek, never taken
    from the slot, so the publisher changes neither detection's frames nor the drop counts.
    """

    def __init__(
        self,
        redis_url: str,
        latest: Callable[[str], tuple[Frame | None, DetectionBatch | None]],
        health: Callable[[], Mapping[str, CameraHealth]],
        *,
        max_fps: float = MAX_FPS,
        quality: int = JPEG_QUALITY,
    ):
        super().__init__(name="live-publisher", daemon=True)
        self.client = _client(redis_url)
        self.latest = latest
        self.health = health
        self.min_gap_s = 1.0 / max_fps
        self.quality = quality
        self.stopping = threading.Event()
        self.published = 0  # frames added to the streams, for tests and benches
        self.encode_s = 0.0  # time spent JPEG-encoding them
        self.bytes = 0
        self._failing = False  # Redis failed on the last try: warn once per outage, not each second

    def run(self) -> None:
        watched: list[str] = []
        sent_index: dict[str, int] = {}
        sent_at: dict[str, float] = {}
        batches: dict[str, tuple[int, bytes]] = {}
        next_check = next_health = 0.0
        while not self.stopping.is_set():
            try:
                now = time.monotonic()
                if now >= next_health:
                    self._publish_health()
                    next_health = now + HEALTH_EVERY_S
                if now >= next_check:
                    watched = self._watched()
                    next_check = now + CHECK_S
                sent = False
                for cam in watched:
                    frame, batch = self.latest(cam)
                    if frame is None or frame.index == sent_index.get(cam):
                        continue
                    if now - sent_at.get(cam, -1e9) < self.min_gap_s:
                        continue
                    raw_batch = b""
                    if batch is not None:
                        cached = batches.get(cam)
                        if cached is None or cached[0] != batch.index:
                            cached = batches[cam] = (batch.index, encode_batch(batch))
                        raw_batch = cached[1]
                    self._publish_frame(frame, raw_batch)
                    sent_index[cam], sent_at[cam] = frame.index, now
                    sent = True
                if self._failing:
                    self._failing = False
                    logger.info("live view: publishing to Redis again")
                if not sent:
                    self.stopping.wait(POLL_S)
            except redis.RedisError as e:
                if not self._failing:
                    logger.warning("live view: cannot publish to Redis (retry each %.0f s): %s", RETRY_S, e)
                self._failing = True
                self.stopping.wait(RETRY_S)
            except Exception:
                logger.exception("live view: publishing failed")
                self.stopping.wait(RETRY_S)

    def _watched(self) -> list[str]:
        cams = sorted(self.health())
        if not cams:
            return []
        values = self.client.mget([viewer_key(c) for c in cams])
        return [c for c, v in zip(cams, values, strict=True) if v is not None]

    def _publish_health(self) -> None:
        health = self.health()
        if not health:
            return
        ms = round(HEALTH_TTL_S * 1000)
        pipe = self.client.pipeline(transaction=False)
        for cam, h in health.items():
            pipe.set(health_key(cam), encode_health(h), px=ms)
        pipe.execute()

    def _publish_frame(self, frame: Frame, batch: bytes) -> None:
        start = time.perf_counter()
        jpeg = encode_frame(frame, self.quality)
        self.encode_s += time.perf_counter() - start
        key = frames_key(frame.camera)
        fields = {"jpeg": jpeg, "index": frame.index, "t": repr(frame.t), "ts": repr(frame.ts)}
        fields["batch"] = batch
        pipe = self.client.pipeline(transaction=False)
        pipe.xadd(key, fields, maxlen=STREAM_MAXLEN, approximate=False)  # type: ignore[arg-type]
        pipe.pexpire(key, round(STREAM_TTL_S * 1000))
        pipe.execute()
        self.published += 1
        self.bytes += len(jpeg)

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        self.join(timeout_s)
        self.client.close()


class RemoteLive(threading.Thread):
    """In `bondwatch web`: the `LiveView` of cameras ingested by workers on other machines.

    `latest(camera)` never waits: it notes that the camera is watched and returns what the
    reader thread last received (nothing on the very first call; the first frame follows within
    about `CHECK_S` plus a Redis round trip). The thread refreshes the viewer keys of the cameras
    asked for within `WANT_S`, reads their streams with one blocking XREAD, decodes only the
    newest entry of each, and reads every camera's health once a second.
    """

    def __init__(self, site: Site, redis_url: str):
        super().__init__(name="remote-live", daemon=True)
        self.site = site
        self.client = _client(redis_url)
        self.stopping = threading.Event()
        self.received = 0  # entries decoded, for tests and benches
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._asked: dict[str, float] = {}
        self._frames: dict[str, Frame] = {}
        self._batches: dict[str, DetectionBatch] = {}
        self._health: dict[str, CameraHealth] = {}
        self._why = NO_WORKER  # why a camera without a health record is offline
        self._ids: dict[str, bytes] = {}  # per watched camera, the last stream entry read
        self._refreshed: set[str] = set()

    def latest(self, camera: str) -> tuple[Frame | None, DetectionBatch | None]:
        with self._lock:
            self._asked[camera] = time.monotonic()
            known = camera in self._refreshed
            frame, batch = self._frames.get(camera), self._batches.get(camera)
        if not known:
            self._wake.set()  # a new viewer: tell the owner now, not at the next refresh
        return frame, batch

    def health(self) -> dict[str, CameraHealth]:
        with self._lock:
            return {c.id: self._health.get(c.id) or unreported(c.id, self._why) for c in self.site.cameras}

    def start(self) -> None:
        try:
            self._read_health()
        except redis.RedisError as e:
            self._lost(e)
        super().start()

    def run(self) -> None:
        next_refresh = 0.0
        while not self.stopping.is_set():
            try:
                now = time.monotonic()
                wanted = self._wanted(now)
                if now >= next_refresh or set(wanted) - self._refreshed:
                    self._refresh(wanted)
                    next_refresh = now + VIEWER_REFRESH_S
                if wanted:
                    self._read(wanted)
                else:
                    self._wake.wait(VIEWER_REFRESH_S)
                    self._wake.clear()
            except redis.RedisError as e:
                self._lost(e)
                self.stopping.wait(RETRY_S)
            except Exception:
                logger.exception("live view: reading failed")
                self.stopping.wait(RETRY_S)

    def _lost(self, e: redis.RedisError) -> None:
        """Without Redis nothing is known of any camera: say so rather than show the last health."""
        if self._why == NO_WORKER:  # once per outage
            logger.warning("live view: cannot read from Redis (retrying every %.0f s): %s", RETRY_S, e)
        with self._lock:
            self._health = {}
            self._why = f"the live view cannot reach Redis: {e}"
            # The streams' positions are forgotten too: a Redis that comes back empty starts over.
            self._ids.clear()
            self._refreshed.clear()

    def _wanted(self, now: float) -> list[str]:
        """The cameras still watched; those no longer are forgotten, pictures and all."""
        with self._lock:
            gone = [c for c, t in self._asked.items() if now - t >= WANT_S]
            for c in gone:
                del self._asked[c]
                self._frames.pop(c, None)
                self._batches.pop(c, None)
                self._ids.pop(c, None)
                self._refreshed.discard(c)
            return sorted(self._asked)

    def _refresh(self, wanted: list[str]) -> None:
        ms = round(VIEWER_TTL_S * 1000)
        pipe = self.client.pipeline(transaction=False)
        for cam in wanted:
            pipe.set(viewer_key(cam), b"1", px=ms)
        pipe.execute()
        fresh = [c for c in wanted if c not in self._ids]
        if fresh:
            self._start_reading(fresh)
        with self._lock:
            self._refreshed = set(wanted)
        self._read_health()

    def _start_reading(self, cameras: list[str]) -> None:
        """Where each new viewer starts in its camera's stream: at the newest entry if it is
        fresh (by Redis's clock, the one the entry ids carry), else after it."""
        pipe = self.client.pipeline(transaction=False)
        pipe.time()
        for cam in cameras:
            pipe.xrevrange(frames_key(cam), count=1)
        now_s, *newest = pipe.execute()
        now_ms = now_s[0] * 1000 + now_s[1] // 1000
        for cam, entries in zip(cameras, newest, strict=True):
            if not entries:
                self._ids[cam] = b"0-0"
                continue
            entry_id, fields = entries[0]
            self._ids[cam] = entry_id
            if now_ms - int(entry_id.split(b"-")[0]) <= FRESH_S * 1000:
                self._take(cam, fields)

    def _read(self, wanted: list[str]) -> None:
        streams = {frames_key(c): self._ids[c] for c in wanted if c in self._ids}
        if not streams:
            return
        reply = self.client.xread(streams, block=READ_BLOCK_MS)  # type: ignore[arg-type]
        for key, entries in reply or []:
            cam = key.decode().rsplit(":", 1)[1]
            if cam not in self._ids or not entries:
                continue
            entry_id, fields = entries[-1]  # only the newest is worth decoding
            self._ids[cam] = entry_id
            self._take(cam, fields)

    def _take(self, cam: str, fields: Mapping[bytes, bytes]) -> None:
        frame = decode_frame(cam, fields)
        batch = decode_batch(fields[b"batch"]) if fields.get(b"batch") else None
        with self._lock:
            if cam in self._asked:
                self._frames[cam] = frame
                if batch is not None:
                    self._batches[cam] = batch
        self.received += 1

    def _read_health(self) -> None:
        cams = [c.id for c in self.site.cameras]
        if not cams:
            return
        values = self.client.mget([health_key(c) for c in cams])
        health = {}
        for cam, raw in zip(cams, values, strict=True):
            if raw is None:
                continue
            try:
                health[cam] = decode_health(raw)
            except (ValueError, TypeError) as e:
                logger.warning("camera %s: unreadable health record in Redis: %s", cam, e)
        with self._lock:
            if self._why != NO_WORKER:
                logger.info("live view: reading from Redis again")
            self._health = health
            self._why = NO_WORKER

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout_s)
        self.client.close()
