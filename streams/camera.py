"""One thread per camera: keep a source open, feed its FrameSlot, report health, never give up.

A camera that fails is retried with capped exponential backoff and reported through
`on_state`; it never takes the other cameras down. A camera that streams but is covered,
moved, blurred or frozen is reported through `on_tamper`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bondwatch.site import Camera
from streams.frame import Frame
from streams.recorder import Recorder
from streams.recordings import RecordingStore
from streams.slot import FrameSlot
from streams.source import (
    ClockSource,
    SourceError,
    SourceTimeout,
    VideoPacket,
    VideoSource,
    is_file_source,
    mask_url,
)
from streams.tamper import TamperConfig, TamperDetector, TamperEvent

logger = logging.getLogger(__name__)

State = Literal["connecting", "live", "stalled", "offline"]


@dataclass(frozen=True)
class CameraHealth:
    """A snapshot of one camera's ingest, for the dashboard and for offline alerts.

    `state`: connecting (first attempt), live (frames flowing), stalled (the stream went silent
    for `stall_s`), offline (it failed or cannot be opened; retrying). `fps` is the measured
    input rate, `last_frame_ts` the wall-clock time of the newest frame (None before the first),
    `error` the last failure as one sentence with credentials masked ("" while live).
    `tamper` names the tamper conditions raised now ("covered", "moved, blurred"; "" none).
    `clock` is where frames' wall-clock times come from: the camera's RTCP/NTP time or our
    arrival time; `drift_s` is the camera clock minus arrival time (None without RTCP).
    `recording_pending` counts closed segments not yet hashed and indexed (the recording lag,
    in segments); `recording_error` is the recorder's last failure ("" none, or no recording).
    """

    camera: str
    state: State
    fps: float
    frames: int
    dropped: int
    decode_errors: int
    reconnects: int
    last_frame_ts: float | None
    error: str
    tamper: str = ""
    clock: ClockSource = "arrival"
    drift_s: float | None = None
    recording_pending: int = 0
    recording_error: str = ""


class CameraStream:
    """Decodes one camera in its own thread into `slot`, reconnecting with backoff.

    `index` and `t` of the frames put in the slot keep increasing across file loops and
    reconnects: a looped file continues one frame step after its last frame, a reconnected
    camera continues by the wall-clock time it was away. Files are paced at their own speed
    (`realtime`) and looped forever (`loop_files`), which is what the live demo needs.

    With a `recording` store, the same connection's packets are also recorded, without
    re-encoding, in segments of about `segment_s` (see `streams.recorder`); their video time is
    the frames' `t`. `recorder` is then set.

    Every frame also goes past a `TamperDetector` (configured by `tamper`), which looks at a
    small thumbnail twice a second of video time; its raised and cleared conditions go to
    `on_tamper` and into the health's `tamper`.
    """

    def __init__(
        self,
        camera: Camera,
        on_state: Callable[[CameraHealth], None] | None = None,
        *,
        realtime: bool = True,
        loop_files: bool = True,
        stall_s: float = 5.0,
        open_timeout_s: float = 5.0,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 10.0,
        good_s: float = 60.0,
        recording: RecordingStore | None = None,
        segment_s: float = 10.0,
        on_tamper: Callable[[TamperEvent], None] | None = None,
        tamper: TamperConfig | None = None,
    ) -> None:
        self.camera = camera
        self.recorder = Recorder(recording, camera.id, segment_s=segment_s) if recording is not None else None
        self.slot = FrameSlot()
        self._on_state = on_state
        self._on_tamper = on_tamper
        self._tamper = TamperDetector(camera.id, tamper)
        self._tampered = ""
        self._clock: ClockSource = "arrival"
        self._drift_s: float | None = None
        self._realtime = realtime
        self._loop_files = loop_files
        self._stall_s = stall_s
        self._open_timeout_s = open_timeout_s
        self._backoff = (backoff_min_s, backoff_max_s)
        self._good_s = good_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera.id}", daemon=True)
        self._lock = threading.Lock()
        self._state: State = "connecting"
        self._error = ""
        self._reconnects = 0
        self._decode_errors = 0
        self._ever_live = False
        self._recent: deque[float] = deque(maxlen=30)  # wall times of the latest frames
        self._last: Frame | None = None
        self._offset = 0.0  # added to the source's t in the current session
        self._begun = False  # whether the current session's offset is fixed yet
        self._step = 0.1  # the latest frame-to-frame step of t, to continue a looped file

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop and join; True when the thread ended within `timeout_s`.

        The thread notices between frames and during waits; only a blocking open or read can
        hold it longer, and those are bounded by `open_timeout_s` and `stall_s`.
        """
        self._stop.set()
        self.slot.close()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._thread.is_alive():
            logger.warning("camera %s: still closing after %.1f s", self.camera.id, timeout_s)
            return False
        if self.recorder is not None and not self.recorder.close(timeout_s):
            logger.warning("camera %s: recordings still indexing after %.1f s", self.camera.id, timeout_s)
            return False
        return True

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def health(self) -> CameraHealth:
        with self._lock:
            return self._health()

    def _health(self) -> CameraHealth:
        fps = 0.0
        if self._state == "live" and len(self._recent) > 1:
            span = self._recent[-1] - self._recent[0]
            fps = (len(self._recent) - 1) / span if span > 0 else 0.0
        return CameraHealth(
            camera=self.camera.id,
            state=self._state,
            fps=fps,
            frames=self.slot.frames,
            dropped=self.slot.dropped,
            decode_errors=self._decode_errors,
            reconnects=self._reconnects,
            last_frame_ts=self._last.ts if self._last else None,
            error=self._error,
            tamper=self._tampered,
            clock=self._clock,
            drift_s=self._drift_s,
            **self._recording_health(),
        )

    def _recording_health(self) -> dict[str, int | str]:
        if self.recorder is None:
            return {}
        stats = self.recorder.stats()
        return {"recording_pending": stats.pending, "recording_error": stats.last_error}

    def _set_state(self, state: State, error: str = "") -> None:
        with self._lock:
            changed = state != self._state
            if state == "live" and changed:
                if self._ever_live or self._state != "connecting":
                    self._reconnects += 1
                self._ever_live = True
            self._state = state
            self._error = error
            if state != "live":
                self._recent.clear()  # the input rate restarts from the next frame
            health = self._health()
        if not changed:
            return
        if error:
            logger.warning("camera %s: %s: %s", self.camera.id, state, error)
        else:
            logger.info("camera %s: %s", self.camera.id, state)
        if self._on_state is not None:
            try:
                self._on_state(health)
            except Exception:
                logger.exception("camera %s: the on_state callback failed", self.camera.id)

    def _run(self) -> None:
        delay = self._backoff[0]
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                ended = self._session()
            except SourceTimeout as e:
                self._end_recording(str(e))
                self._set_state("stalled" if self._state == "live" else "offline", str(e))
            except SourceError as e:
                self._end_recording(str(e))
                self._set_state("offline", str(e))
            except Exception as e:  # a bug must not kill the camera silently
                logger.exception("camera %s: ingest failed", self.camera.id)
                self._end_recording(mask_url(f"camera {self.camera.id}: {e}"))
                self._set_state("offline", mask_url(f"camera {self.camera.id}: {e}"))
            else:
                if ended:
                    self._end_recording(f"camera {self.camera.id}: recording stopped")
                    return
                self._end_recording(None)
                continue  # a file played to its end: loop it at once
            if time.monotonic() - started >= self._good_s:
                delay = self._backoff[0]
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self._backoff[1])

    def _end_recording(self, reason: str | None) -> None:
        if self.recorder is not None:
            self.recorder.end(reason)

    def _session(self) -> bool:
        """One open-and-decode pass. True to end the thread, False to play a file again."""
        cam = self.camera
        self._begun = False
        on_packet = self._record if self.recorder is not None else None
        with VideoSource(
            cam.url,
            camera=cam.id,
            transport=cam.transport,
            open_timeout_s=self._open_timeout_s,
            read_timeout_s=self._stall_s,
        ) as source:
            errors_before = self._decode_errors
            got = 0
            frames = source.frames(
                realtime=self._realtime and source.is_file, stop=self._stop, on_packet=on_packet
            )
            for frame in frames:
                with self._lock:
                    self._clock, self._drift_s = source.clock, source.drift_s
                self._deliver(frame, first=got == 0)
                got += 1
                if source.decode_errors:
                    with self._lock:
                        self._decode_errors = errors_before + source.decode_errors
                if self._stop.is_set():
                    return True
            with self._lock:
                self._decode_errors = errors_before + source.decode_errors
        if self._stop.is_set():
            return True
        if not is_file_source(cam.url):
            raise SourceError(f"camera {cam.id}: {source.url} ended the stream")
        if got == 0:
            raise SourceError(f"camera {cam.id}: {source.url} has no decodable video frames")
        if not self._loop_files:
            self._set_state("offline", f"camera {cam.id}: {source.url} played to its end")
            return True
        return False

    def _begin(self, t: float, ts: float) -> None:
        """Fix the session's offset at its first packet or frame, whichever comes first."""
        last = self._last
        if last is not None:
            self._offset = last.t + max(self._step, ts - last.ts) - t
        self._begun = True

    def _record(self, packet: VideoPacket) -> None:
        """Hand a packet to the recorder, on the same time line as the frames."""
        assert self.recorder is not None
        if not self._begun:
            self._begin(packet.t, packet.ts)
        self.recorder.write(dataclasses.replace(packet, t=packet.t + self._offset))

    def _deliver(self, frame: Frame, *, first: bool) -> None:
        """Renumber the frame so index and t keep increasing over loops and reconnects."""
        if not self._begun:
            self._begin(frame.t, frame.ts)
        last = self._last
        if last is not None:
            frame = dataclasses.replace(frame, index=last.index + 1, t=frame.t + self._offset)
            if not first:
                self._step = frame.t - last.t
        with self._lock:
            self._last = frame
            self._recent.append(frame.ts)
        self.slot.put(frame)
        if self._state != "live":
            self._set_state("live")
        self._check_tamper(frame)

    def _check_tamper(self, frame: Frame) -> None:
        events = self._tamper.feed(frame)
        if not events:
            return
        with self._lock:
            self._tampered = ", ".join(self._tamper.active)
        for event in events:
            if self._on_tamper is None:
                continue
            try:
                self._on_tamper(event)
            except Exception:
                logger.exception("camera %s: the on_tamper callback failed", self.camera.id)
