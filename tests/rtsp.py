"""Test helpers for real video: H.264/H.265 MP4 clips made with ffmpeg and a real RTSP server process.

The server (tests/rtsp_server.py) runs under the system python, which has GStreamer's RTSP
server bindings; the test python only starts, kills and restarts it.
"""

from __future__ import annotations

import hashlib
import os
import select
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Literal

from bondwatch.redis_server import free_port

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
CACHE_DIR = Path(tempfile.gettempdir()) / "bondwatch-test-video"

Codec = Literal["h264", "h265"]
_ENCODERS: dict[Codec, list[str]] = {
    "h264": ["-c:v", "libx264", "-preset", "veryfast", "-bf", "0"],
    # hvc1 is the sample entry Apple and browsers want; x265's banner stays off the test log
    "h265": ["-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1",
             "-x265-params", "bframes=0:log-level=error"],
}  # fmt: skip


def make_h264_mp4(
    src: str | Path,
    dst: str | Path | None = None,
    seconds: float | None = None,
    fps: float | None = None,
) -> Path:
    """An H.264 MP4 with a keyframe every 10 frames; see `make_mp4`."""
    return make_mp4(src, dst, seconds, fps)


def make_mp4(
    src: str | Path,
    dst: str | Path | None = None,
    seconds: float | None = None,
    fps: float | None = None,
    *,
    codec: Codec = "h264",
    size: tuple[int, int] | None = None,
    keyframe_every: int = 10,
) -> Path:
    """Encode `src` to an MP4 that RTSP clients start on fast, cached by its arguments.

    A keyframe every `keyframe_every` frames (10: a client starts within a second at 10 fps);
    no B-frames keeps the presentation order equal to the decode order. `codec` "h265" makes
    an HEVC file instead, `size` (width, height) scales the picture. Without `dst` the file
    lands in CACHE_DIR.
    """
    src = Path(src)
    if dst is None:
        args = f"{src.resolve()}|{src.stat().st_mtime}|{seconds}|{fps}"
        if (codec, size, keyframe_every) != ("h264", None, 10):  # keep the older files' names
            args += f"|{codec}|{size}|{keyframe_every}"
        key = hashlib.sha1(args.encode())
        dst = CACHE_DIR / f"{src.stem}-{key.hexdigest()[:10]}.mp4"
    dst = Path(dst)
    if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(src)]
    if seconds is not None:
        cmd += ["-t", str(seconds)]
    if fps is not None:
        cmd += ["-r", str(fps)]
    if size is not None:
        cmd += ["-vf", f"scale={size[0]}:{size[1]}"]
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.mp4")
    cmd += ["-an", *_ENCODERS[codec], "-g", str(keyframe_every), "-pix_fmt", "yuv420p", str(tmp)]
    subprocess.run(cmd, check=True, timeout=120)
    tmp.replace(dst)  # atomic, so a parallel test never reads half a file
    return dst


class RtspServer:
    """A real RTSP server process serving MP4 files at `rtsp://127.0.0.1:PORT/NAME`.

    `mounts` maps "/name" to an H.264 or H.265 MP4. `kill()` ends it with SIGKILL (a camera that dies),
    `start()` again brings it back on the same port.
    """

    def __init__(self, mounts: dict[str, str | Path], port: int | None = None) -> None:
        self.mounts = {name: Path(path) for name, path in mounts.items()}
        self.port = port or free_port()
        self._proc: subprocess.Popen[str] | None = None

    def url(self, mount: str, credentials: str = "") -> str:
        userinfo = f"{credentials}@" if credentials else ""
        return f"rtsp://{userinfo}127.0.0.1:{self.port}{mount}"

    @property
    def pid(self) -> int | None:
        """The server process while it runs (benchmarks read its CPU time from /proc)."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self, timeout_s: float = 15.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self.stop()  # reap a killed process before starting its successor
        cmd = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port)]
        for name, path in self.mounts.items():
            cmd += ["--mount", f"{name}={path}"]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        output = []
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._proc.stdout], [], [], 0.1)
            if ready:
                line = self._proc.stdout.readline()
                if line.startswith("READY"):
                    return
                if line:
                    output.append(line)
                    continue
            if self._proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"the RTSP server did not start on port {self.port}: {''.join(output)}")

    def kill(self) -> None:
        """SIGKILL, as when a camera loses power: no RTSP teardown, the sockets just close."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(5)

    def freeze(self) -> None:
        """SIGSTOP: connections stay open but no packet flows, as with a hung camera."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
