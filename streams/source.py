"""Open an RTSP camera or a video file with PyAV; turn it into stamped Frames and packets.

This is the only module of `streams` that imports PyAV: every other part sees `Frame`s,
`VideoPacket`s and `SourceError`s. A frame is stamped once, here, when it is decoded. The same
demuxed packets can also be copied, without re-encoding, into MP4 files (`MediaWriter`): that
is how recording and evidence clips avoid a second connection and any loss of quality.
"""

from __future__ import annotations

import errno
import logging
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import av
import av.error
import numpy as np

from streams.frame import Frame

logger = logging.getLogger(__name__)

Transport = Literal["tcp", "udp"]
ClockSource = Literal["rtcp", "arrival"]  # where a frame's wall-clock time comes from

# Give up on a source whose packets keep failing: it is broken, not merely noisy.
MAX_CONSECUTIVE_ERRORS = 50
# How long RTSP probing may take; the SDP already names the codec, so a second is plenty.
RTSP_ANALYZE_US = 500_000
# A camera clock further than this from our own is wrong, not more precise: stamp by arrival.
MAX_CAMERA_CLOCK_ERROR_S = 5.0
# Weight of each new RTCP-timed packet in the smoothed camera-minus-arrival drift.
DRIFT_SMOOTHING = 0.05
# Two packets' camera times agree when they map presentation time to the same wall clock.
CLOCK_AGREEMENT_S = 0.001
_URL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_SECRET_QUERY = re.compile(
    r"([?&;](?:user|username|password|pass|passwd|pwd|token|auth|key)=)[^&;#\s]*", re.IGNORECASE
)


class SourceError(Exception):
    """A camera or video file that cannot be read; one sentence, credentials masked."""


class SourceTimeout(SourceError):
    """The source stayed silent longer than the read timeout: a stalled camera."""


class RecordingError(Exception):
    """A packet or file that could not be written (full disk, bad path); one sentence."""


@dataclass(frozen=True, eq=False)
class StreamFormat:
    """The codec parameters of one opened video stream: what an MP4 copy of its packets needs.

    `extradata` (SPS/PPS for H.264) tells whether two streams can share one file. The PyAV
    stream behind it is only read by `MediaWriter`, and only while its source is open: PyAV
    frees it on close, so `closed` is set then and a late writer gets an error, not a crash.
    """

    codec: str
    width: int
    height: int
    time_base: Fraction
    extradata: bytes = field(repr=False)
    template: Any = field(repr=False)
    closed: threading.Event = field(default_factory=threading.Event, repr=False)


@dataclass(frozen=True, eq=False)
class VideoPacket:
    """One compressed video packet as demuxed, copied out of PyAV for the recorder.

    `t` is its presentation time in seconds on the same clock as the `Frame.t` of that
    connection, `delay` how much earlier it is decoded than shown (B-frames; 0 without),
    `ts` its wall-clock time: capture time by the camera's clock where known, else arrival.
    """

    t: float
    ts: float
    duration: float
    delay: float
    keyframe: bool
    data: bytes = field(repr=False)
    format: StreamFormat = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)


class _PacketClock:
    """Video time of demuxed packets: pts minus the first one's, as `frames()` does for frames.

    RTSP leaves the first packet unstamped; a missing pts continues from the previous packet.
    """

    def __init__(self, fmt: StreamFormat, step: float) -> None:
        self._fmt = fmt
        self._step = step
        self._origin: float | None = None
        self._next_t = 0.0

    def stamp(self, packet: av.Packet, ts: float) -> VideoPacket:
        tb = packet.time_base or self._fmt.time_base
        duration = float(packet.duration * tb) if packet.duration and tb else self._step
        delay = 0.0
        if packet.pts is not None and tb:
            pts_s = float(packet.pts * tb)
            if self._origin is None:
                self._origin = pts_s - self._next_t
            t = pts_s - self._origin
            if packet.dts is not None:
                delay = max(0.0, float((packet.pts - packet.dts) * tb))
        else:
            t = self._next_t
        self._next_t = max(self._next_t, t + duration)
        return VideoPacket(
            t=t,
            ts=ts,
            duration=duration,
            delay=delay,
            keyframe=bool(packet.is_keyframe),
            data=bytes(packet),
            format=self._fmt,
        )


class _CameraClock:
    """Wall-clock capture time from the camera's own clock, where its RTSP stream carries it.

    FFmpeg's RTP demuxer turns each RTCP sender report (the camera's NTP time for an RTP
    timestamp) into "prft" side data on the packets after it: the camera's wall-clock time of
    that packet, in microseconds. From it we keep `origin` (camera time minus presentation
    time) and stamp every frame as `origin + pts`, free of network and buffering jitter. Before
    the first report, without reports (files, cameras that send none), or when the camera's
    clock is more than MAX_CAMERA_CLOCK_ERROR_S off ours, frames keep their arrival time.
    `drift_s` is the camera clock minus our arrival time, smoothed: clock offset plus latency.

    The packet right after a report can be stamped a frame late (the report's RTP time lies
    ahead of it), so a new origin is adopted only once two packets in a row agree on it.
    """

    def __init__(self, camera: str, url: str) -> None:
        self._who = f"camera {camera}: " if camera else ""
        self._url = url
        self.origin: float | None = None
        self.drift_s: float | None = None
        self._candidate: float | None = None
        self._distrusted = False

    def observe(self, packet: av.Packet, arrival: float) -> None:
        tb = packet.time_base
        if packet.pts is None or not tb or not packet.has_sidedata("prft"):
            return
        camera_ts = struct.unpack_from("<q", bytes(packet.get_sidedata("prft")))[0] / 1e6
        origin = camera_ts - float(packet.pts * tb)
        candidate, self._candidate = self._candidate, origin
        if candidate is None or abs(origin - candidate) > CLOCK_AGREEMENT_S:
            return
        drift = camera_ts - arrival
        d = drift if self.drift_s is None else self.drift_s + DRIFT_SMOOTHING * (drift - self.drift_s)
        self.drift_s = d
        if abs(d) > MAX_CAMERA_CLOCK_ERROR_S:
            if not self._distrusted:
                logger.warning(
                    "%sthe clock of %s is %.1f s off ours: stamping frames by arrival instead",
                    self._who, self._url, d,
                )  # fmt: skip
            self._distrusted = True
            self.origin = None
            return
        self._distrusted = False
        self.origin = origin

    def wall(self, pts: int | None, tb: Fraction | None, arrival: float) -> float:
        """Capture time of a packet or frame with presentation timestamp `pts`."""
        if self.origin is None or pts is None or not tb:
            return arrival
        return self.origin + float(pts * tb)


def mask_url(text: str) -> str:
    """Hide credentials (`user:pass@` and password-like query values) in a URL or any message."""
    text = _USERINFO.sub(r"\1***@", text)
    return _SECRET_QUERY.sub(r"\1***", text)


def is_file_source(url: str) -> bool:
    """A path (or file:// URL) is played from disk; anything else with a scheme is a stream."""
    return url.startswith("file://") or not _URL_SCHEME.match(url)


class VideoSource:
    """One open connection to a camera or one pass over a video file.

    Opening happens in the constructor so that a bad URL fails at once with a `SourceError`;
    `frames()` then decodes until the end of the file or the stream. Corrupt packets are
    counted in `decode_errors` and skipped.
    """

    def __init__(
        self,
        url: str,
        *,
        camera: str = "",
        transport: Transport = "tcp",
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
    ) -> None:
        self.camera = camera
        self.url = mask_url(url)
        self.is_file = is_file_source(url)
        self.decode_errors = 0
        self._camera_clock = _CameraClock(camera, self.url)
        self._read_timeout_s = read_timeout_s
        self._who = f"camera {camera}: " if camera else ""
        options: dict[str, str] = {}
        if not self.is_file:
            options = {
                "rtsp_transport": transport,
                "timeout": str(int(read_timeout_s * 1_000_000)),
                "analyzeduration": str(RTSP_ANALYZE_US),
            }
        path = url.removeprefix("file://") if self.is_file else url
        started = time.monotonic()
        try:
            self._container = av.open(path, options=options, timeout=(open_timeout_s, read_timeout_s))
        except (av.error.FFmpegError, OSError) as e:
            reason = _reason(e, open_timeout_s, network=not self.is_file)
            if not self.is_file and time.monotonic() - started >= 0.9 * open_timeout_s:
                # FFmpeg's RTSP demuxer reports an interrupted open as bad data: trust the clock.
                reason = f"no answer within {open_timeout_s:g} s"
            raise SourceError(f"{self._who}cannot open {self.url}: {reason}") from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{self._who}{self.url} has no video stream")
        self._stream = self._container.streams.video[0]
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.nominal_fps = float(rate) if rate else 0.0
        self.format = StreamFormat(
            codec=self._stream.codec_context.name,
            width=self._stream.width,
            height=self._stream.height,
            time_base=self._stream.time_base or Fraction(1, 90_000),
            extradata=bytes(self._stream.codec_context.extradata or b""),
            template=self._stream,
        )
        logger.info(
            "camera %s: opened %s (%dx%d, %.3g fps)",
            camera,
            self.url,
            self._stream.width,
            self._stream.height,
            self.nominal_fps,
        )

    @property
    def clock(self) -> ClockSource:
        """Where frames' `ts` comes from now: the camera's RTCP/NTP time or our arrival time."""
        return "rtcp" if self._camera_clock.origin is not None else "arrival"

    @property
    def drift_s(self) -> float | None:
        """Camera clock minus arrival time, smoothed; None when the camera sends no clock."""
        return self._camera_clock.drift_s

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.format.closed.set()
        self._container.close()

    def frames(
        self,
        *,
        realtime: bool = False,
        stop: threading.Event | None = None,
        on_packet: Callable[[VideoPacket], None] | None = None,
    ) -> Iterator[Frame]:
        """Decode to BGR frames until the end; `realtime` paces a file at its own speed.

        `t` is the presentation time minus the first frame's, strictly increasing; `ts` is the
        camera's capture time where its RTCP sender reports give one (`clock` "rtcp"), else the
        wall-clock time when the frame was decoded (for a paced file: when it was released);
        `index` counts from 0. Pacing waits on `stop`, so a paced file ends early when it is set.
        `on_packet` gets every demuxed packet before it is decoded: the recorder's feed from
        the same connection.
        """
        step = 1.0 / self.nominal_fps if self.nominal_fps else 0.1
        clock = _PacketClock(self.format, step)
        origin: float | None = None  # presentation time that maps to t = 0
        last_t = -step
        wall0 = time.monotonic()
        index = 0
        failures = 0
        demux = self._container.demux(self._stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                return
            except av.error.InvalidDataError:
                failures = self._count_error(failures)
                demux = self._container.demux(self._stream)
                continue
            except (av.error.ExitError, av.error.TimeoutError):
                raise SourceTimeout(
                    f"{self._who}no video from {self.url} for {self._read_timeout_s:g} s"
                ) from None
            except (av.error.FFmpegError, OSError) as e:
                reason = _reason(e, network=not self.is_file)
                raise SourceError(f"{self._who}lost {self.url}: {reason}") from None
            arrival = time.time()
            self._camera_clock.observe(packet, arrival)
            if on_packet is not None and packet.size:
                ts = self._camera_clock.wall(packet.pts, packet.time_base, arrival)
                on_packet(clock.stamp(packet, ts))
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                failures = self._count_error(failures)
                continue
            failures = 0
            for vframe in decoded:
                tb = vframe.time_base or self._stream.time_base
                if vframe.pts is not None and tb:
                    pts_s = float(vframe.pts * tb)
                    if origin is None:
                        origin = pts_s - (last_t + step)
                    t = pts_s - origin
                    if t <= last_t:  # a timestamp glitch must not send time backwards
                        t = last_t + step
                else:
                    t = last_t + step
                if realtime and not self._pace(wall0, t, stop):
                    return
                last_t = t
                yield Frame(
                    camera=self.camera,
                    index=index,
                    t=t,
                    ts=self._camera_clock.wall(vframe.pts, tb, time.time()),
                    image=vframe.to_ndarray(format="bgr24"),
                )
                index += 1

    def packets(self) -> Iterator[VideoPacket]:
        """The compressed packets to the end, without decoding: for copying a recording."""
        clock = _PacketClock(self.format, 1.0 / self.nominal_fps if self.nominal_fps else 0.1)
        try:
            for packet in self._container.demux(self._stream):
                if packet.size:
                    yield clock.stamp(packet, time.time())
        except (av.error.FFmpegError, OSError) as e:
            reason = _reason(e, network=not self.is_file)
            raise SourceError(f"{self._who}cannot read {self.url}: {reason}") from None

    def _count_error(self, failures: int) -> int:
        self.decode_errors += 1
        if failures + 1 >= MAX_CONSECUTIVE_ERRORS:
            raise SourceError(
                f"{self._who}{self.url} is corrupt: {failures + 1} packets in a row did not decode"
            )
        logger.debug("camera %s: skipped a corrupt packet of %s", self.camera, self.url)
        return failures + 1

    @staticmethod
    def _pace(wall0: float, t: float, stop: threading.Event | None) -> bool:
        """Wait until video time `t` is due; False when `stop` was set meanwhile."""
        delay = wall0 + t - time.monotonic()
        if delay <= 0:
            return not (stop and stop.is_set())
        if stop is None:
            time.sleep(delay)
            return True
        return not stop.wait(delay)


class MediaWriter:
    """An MP4 file written from the packets of one `StreamFormat`, copied as they are.

    `fragmented` writes one fragment per keyframe interval, so a file cut short by a crash or a
    full disk still plays up to its last fragment (recording segments); otherwise the index
    goes to the front (faststart), which players and browsers want (clips). Timestamps are
    rebased so the file starts at 0 and keep the packets' spacing, gaps included. `metadata`
    becomes MP4 tags.
    """

    def __init__(
        self,
        path: str | Path,
        fmt: StreamFormat,
        *,
        fragmented: bool = True,
        metadata: dict[str, str] | None = None,
    ) -> None:
        if fmt.closed.is_set():
            raise RecordingError(f"cannot write {path}: the source of its packets is already closed")
        self.path = Path(path)
        self.format = fmt
        self.packets = 0
        self.start_t = 0.0  # t of the first packet written
        self.end_t = 0.0  # t + duration of the latest packet
        self._t0: float | None = None
        self._last_dts: int | None = None
        flags = "frag_keyframe+empty_moov+default_base_moof" if fragmented else "+faststart"
        if metadata:
            flags += "+use_metadata_tags"
        try:
            self._out = av.open(str(path), "w", format="mp4", options={"movflags": flags})
        except (av.error.FFmpegError, OSError) as e:
            raise RecordingError(f"cannot write {path}: {_reason(e)}") from None
        try:
            self._out.metadata.update(metadata or {})
            self._stream = self._out.add_stream_from_template(fmt.template)
        except (av.error.FFmpegError, OSError, ValueError) as e:
            self._out.close()
            self.path.unlink(missing_ok=True)
            raise RecordingError(f"cannot write {fmt.codec} video to {path}: {e}") from None

    def write(self, packet: VideoPacket) -> None:
        tb = self.format.time_base
        if self._t0 is None:
            self._t0 = packet.t - packet.delay
            self.start_t = packet.t
        dts = round((packet.t - packet.delay - self._t0) / tb)
        if self._last_dts is not None and dts <= self._last_dts:
            dts = self._last_dts + 1  # the muxer refuses time going backwards
        out = av.Packet(packet.data)
        out.dts = dts
        out.pts = max(dts, round((packet.t - self._t0) / tb))
        out.duration = max(1, round(packet.duration / tb))
        out.time_base = tb
        out.is_keyframe = packet.keyframe
        out.stream = self._stream
        try:
            self._out.mux(out)
        except (av.error.FFmpegError, OSError) as e:
            raise RecordingError(f"cannot write to {self.path}: {_reason(e)}") from None
        self._last_dts = dts
        self.packets += 1
        self.end_t = max(self.end_t, packet.t + packet.duration)

    def close(self) -> None:
        try:
            self._out.close()
        except (av.error.FFmpegError, OSError) as e:
            raise RecordingError(f"cannot finish {self.path}: {_reason(e)}") from None


def transcode(
    src: str | Path,
    dst: str | Path,
    draw: Callable[[np.ndarray, float], np.ndarray],
    *,
    metadata: dict[str, str] | None = None,
) -> int:
    """Re-encode `src` to H.264 `dst`, each picture passed through `draw(bgr, t)` first.

    For annotated copies only (timestamps burned in): evidence itself is never re-encoded.
    Returns the number of frames written.
    """
    flags = "+faststart+use_metadata_tags" if metadata else "+faststart"
    written = 0
    try:
        with (
            av.open(str(src)) as inp,
            av.open(str(dst), "w", format="mp4", options={"movflags": flags}) as out,
        ):
            out.metadata.update(metadata or {})
            ist = inp.streams.video[0]
            ost = out.add_stream("libx264", rate=ist.average_rate or 10)
            ost.width, ost.height, ost.pix_fmt = ist.width, ist.height, "yuv420p"
            ost.time_base = ist.time_base
            ost.options = {"crf": "20", "preset": "veryfast"}
            pts = -1
            for vframe in inp.decode(ist):
                pts = max(pts + 1, vframe.pts if vframe.pts is not None else 0)  # x264 wants it rising
                t = float(pts * ist.time_base)
                image = draw(vframe.to_ndarray(format="bgr24"), t)
                new = av.VideoFrame.from_ndarray(image, format="bgr24")
                new.pts, new.time_base = pts, ist.time_base
                out.mux(ost.encode(new))
                written += 1
            out.mux(ost.encode())
    except (av.error.FFmpegError, OSError) as e:
        raise RecordingError(f"cannot annotate {src} into {dst}: {_reason(e)}") from None
    return written


def open_frames(
    url: str,
    *,
    camera: str = "",
    transport: Transport = "tcp",
    open_timeout_s: float = 5.0,
    read_timeout_s: float = 5.0,
    realtime: bool = False,
    stop: threading.Event | None = None,
) -> Iterator[Frame]:
    """Frames of one camera connection or one pass over a file; see `VideoSource.frames`."""
    with VideoSource(
        url,
        camera=camera,
        transport=transport,
        open_timeout_s=open_timeout_s,
        read_timeout_s=read_timeout_s,
    ) as source:
        yield from source.frames(realtime=realtime, stop=stop)


def _reason(e: BaseException, timeout_s: float | None = None, *, network: bool = False) -> str:
    """The cause of a PyAV error as a short phrase, without the URL PyAV appends to it."""
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, av.error.HTTPUnauthorizedError):
        return "the user name or password was refused"
    if isinstance(e, av.error.HTTPForbiddenError):
        return "access forbidden"
    if isinstance(e, av.error.HTTPNotFoundError):
        return "no such stream on the server (check the path)"
    if isinstance(e, av.error.ExitError | av.error.TimeoutError | TimeoutError):
        return f"no answer within {timeout_s:g} s" if timeout_s else "timed out"
    if isinstance(e, FileNotFoundError):
        return "no such file"
    if isinstance(e, PermissionError):
        return "permission denied"
    if isinstance(e, av.error.InvalidDataError) and network:
        return "no usable RTSP answer (host unreachable or not an RTSP server)"
    if isinstance(e, av.error.InvalidDataError):
        return "not a readable video (damaged, truncated or not a video file)"
    if isinstance(e, ConnectionResetError):
        return "connection reset"
    if isinstance(e, EOFError):
        return "the stream ended unexpectedly"
    if network and isinstance(e, OSError) and e.errno == errno.EIO:
        return "cannot reach the host (check the address)"
    reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return mask_url(reason[0].lower() + reason[1:]).rstrip(".")
