"""Continuous recording of one camera: its demuxed packets cut into MP4 segments, no re-encoding.

The recorder sits on the camera's single connection next to the decoder. Muxing runs in the
camera thread because it only copies bytes into the page cache (about a tenth of a CPU second
per minute of 768x576 H.264, see the report in tests/test_recording.py), so there is no queue
that could drop packets silently. Hashing, the index and retention — the parts that read whole
files and wait on the database — run in the recorder's own thread behind an unbounded queue of
closed files, so they never hold decoding up. A write that fails (full disk) never stops
decoding either: the failure is logged, recorded as a gap, and the next keyframe tries again.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from streams.recordings import SEGMENT_SUFFIX, NewSegment, RecordingStore
from streams.source import MediaWriter, RecordingError, VideoPacket

logger = logging.getLogger(__name__)

PART_SUFFIX = ".part"  # a segment still being written; renamed once it is indexed


@dataclass(frozen=True)
class RecorderStats:
    """What the recorder did so far, for health pages: `pending` files wait to be indexed."""

    segments: int
    packets: int
    skipped: int  # packets before the first keyframe of a connection (not decodable alone)
    errors: int
    pending: int
    last_error: str


@dataclass(frozen=True)
class _Outage:
    reason: str


@dataclass(frozen=True)
class _Closed:
    segment: NewSegment
    final_path: Path


_STOP = object()


class Recorder:
    """Writes one camera's packets into segments of about `segment_s`, cut on keyframes.

    Feed it with `write` from the camera thread, call `end` when the connection ends (with the
    reason when it was lost: that opens a gap), and `close` once the camera thread is done.
    """

    def __init__(self, store: RecordingStore, camera: str, *, segment_s: float = 10.0) -> None:
        self.store = store
        self.camera = camera
        self.segment_s = segment_s
        self._writer: MediaWriter | None = None
        self._anchor = 0.0  # the segment's wall clock at video time 0, see `write`
        self._failing = False
        self._segments = 0
        self._packets = 0
        self._skipped = 0
        self._errors = 0
        self._last_error = ""
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._index, name=f"recorder-{camera}", daemon=True)
        self._thread.start()

    def stats(self) -> RecorderStats:
        return RecorderStats(
            segments=self._segments,
            packets=self._packets,
            skipped=self._skipped,
            errors=self._errors,
            pending=self._queue.qsize(),
            last_error=self._last_error,
        )

    def write(self, packet: VideoPacket) -> None:
        """Add one packet; a segment ends at the first keyframe `segment_s` after its start."""
        writer = self._writer
        if writer is not None and packet.keyframe:
            if packet.format is not writer.format or packet.t - writer.start_t >= self.segment_s:
                self._finish()
                writer = None
        if writer is None:
            if not packet.keyframe:
                self._skipped += 1
                return
            writer = self._open(packet)
            if writer is None:
                return
        try:
            writer.write(packet)
        except RecordingError as e:
            self._fail(str(e))
            return
        # The packet that arrived soonest after its video time shows best when that time was:
        # RTSP delivers the first half second in a burst, and the network adds jitter.
        self._anchor = min(self._anchor, packet.ts - packet.t)
        self._packets += 1

    def end(self, reason: str | None) -> None:
        """The connection ended: close the segment; a `reason` marks an outage (a gap opens)."""
        self._finish()
        if reason:
            self._queue.put(_Outage(reason))

    def close(self, timeout_s: float = 10.0) -> bool:
        """Index what is left and stop the index thread; True when it finished in time."""
        self.end(None)
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def segment_path(self, start_ts: float) -> Path:
        """Where a segment starting at `start_ts` goes: CAMERA/DAY/CAMERA-TIMEZ.mp4 (UTC)."""
        start = datetime.fromtimestamp(start_ts, UTC)
        name = f"{self.camera}-{start.strftime('%Y%m%dT%H%M%S.%f')}Z{SEGMENT_SUFFIX}"
        return self.store.root / self.camera / start.strftime("%Y-%m-%d") / name

    def _open(self, packet: VideoPacket) -> MediaWriter | None:
        path = self.segment_path(packet.ts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = MediaWriter(path.with_name(path.name + PART_SUFFIX), packet.format)
        except (RecordingError, OSError) as e:
            self._fail(str(e))
            return None
        if self._failing:
            logger.info("camera %s: recording again", self.camera)
            self._failing = False
        self._writer = writer
        self._anchor = packet.ts - packet.t
        return writer

    def _finish(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except RecordingError as e:
            self._fail(str(e))
            return
        if writer.packets == 0:
            writer.path.unlink(missing_ok=True)
            return
        segment = NewSegment(
            camera=self.camera,
            path=writer.path,
            start_ts=self._anchor + writer.start_t,
            start_t=writer.start_t,
            end_t=writer.end_t,
            frames=writer.packets,
        )
        self._queue.put(_Closed(segment, writer.path.with_name(writer.path.stem)))
        self._segments += 1

    def _fail(self, error: str) -> None:
        """Drop the broken segment, say so once, and open a gap: never silent, never fatal."""
        self._errors += 1
        self._last_error = error
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except RecordingError:
                pass  # already failing: the part file stays behind for inspection
        if not self._failing:
            logger.warning("camera %s: recording failed: %s", self.camera, error)
            self._failing = True
            self._queue.put(_Outage(f"recording failed: {error}"))

    def _index(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            try:
                if isinstance(item, _Closed):
                    self.store.add_segment(item.segment, item.final_path)
                elif isinstance(item, _Outage):
                    self.store.note_outage(self.camera, item.reason)
            except Exception:  # the index must outlive one bad file or a database hiccup
                logger.exception("camera %s: could not index %s", self.camera, item)
                self._errors += 1
