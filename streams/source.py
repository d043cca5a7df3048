"""Open an RTSP camera or a video file with PyAV and turn it into stamped Frames.

This is the only module of BondWatch that imports PyAV for decoding: every other part sees
`Frame`s and `SourceError`s. A frame is stamped once, here, when it is decoded.
"""

from __future__ import annotations

import errno
import logging
import re
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Literal

import av
import av.error

from streams.frame import Frame

logger = logging.getLogger(__name__)

Transport = Literal["tcp", "udp"]

# Give up on a source whose packets keep failing: it is broken, not merely noisy.
MAX_CONSECUTIVE_ERRORS = 50
# How long RTSP probing may take; the SDP already names the codec, so a second is plenty.
RTSP_ANALYZE_US = 500_000
_URL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_SECRET_QUERY = re.compile(
    r"([?&;](?:user|username|password|pass|passwd|pwd|token|auth|key)=)[^&;#\s]*", re.IGNORECASE
)


class SourceError(Exception):
    """A camera or video file that cannot be read; one sentence, credentials masked."""


class SourceTimeout(SourceError):
    """The source stayed silent longer than the read timeout: a stalled camera."""


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
        logger.info(
            "camera %s: opened %s (%dx%d, %.3g fps)",
            camera,
            self.url,
            self._stream.width,
            self._stream.height,
            self.nominal_fps,
        )

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
        self._container.close()

    def frames(self, *, realtime: bool = False, stop: threading.Event | None = None) -> Iterator[Frame]:
        """Decode to BGR frames until the end; `realtime` paces a file at its own speed.

        `t` is the presentation time minus the first frame's, strictly increasing; `ts` is the
        wall-clock time when the frame was decoded (for a paced file: when it was released);
        `index` counts from 0. Pacing waits on `stop`, so a paced file ends early when it is set.
        """
        step = 1.0 / self.nominal_fps if self.nominal_fps else 0.1
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
                    ts=time.time(),
                    image=vframe.to_ndarray(format="bgr24"),
                )
                index += 1

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
