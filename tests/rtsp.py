"""Test helpers for real video: H.264 MP4 clips made with ffmpeg and a real RTSP server process.

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

from bondwatch.redis_server import free_port

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
CACHE_DIR = Path(tempfile.gettempdir()) / "bondwatch-test-video"


def make_h264_mp4(
    src: str | Path,
    dst: str | Path | None = None,
    seconds: float | None = None,
    fps: float | None = None,
) -> Path:
    """Encode `src` to an H.264 MP4 that RTSP clients start on fast, cached by its arguments.

    A keyframe every 10 frames lets a client start within a second; no B-frames keeps the
    presentation order equal to the decode order. Without `dst` the file lands in CACHE_DIR.
    """
    src = Path(src)
    if dst is None:
        key = hashlib.sha1(f"{src.resolve()}|{src.stat().st_mtime}|{seconds}|{fps}".encode())
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
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.mp4")
    cmd += ["-an", "-c:v", "libx264", "-preset", "veryfast", "-g", "10", "-bf", "0"]
    cmd += ["-pix_fmt", "yuv420p", str(tmp)]
    subprocess.run(cmd, check=True, timeout=120)
    tmp.replace(dst)  # atomic, so a parallel test never reads half a file
    return dst


class RtspServer:
    """A real RTSP server process serving MP4 files at `rtsp://127.0.0.1:PORT/NAME`.

    `mounts` maps "/name" to an H.264 MP4. `kill()` ends it with SIGKILL (a camera that dies),
    `start()` again brings it back on the same port.
    """

    def __init__(self, mounts: dict[str, str | Path], port: int | None = None) -> None:
        self.mounts = {name: Path(path) for name, path in mounts.items()}
        self.port = port or free_port()
        self._proc: subprocess.Popen[str] | None = None

    def url(self, mount: str, credentials: str = "") -> str:
        userinfo = f"{credentials}@" if credentials else ""
        return f"rtsp://{userinfo}127.0.0.1:{self.port}{mount}"

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
