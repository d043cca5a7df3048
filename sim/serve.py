"""`bondwatch sim serve`: a rendered scenario as live RTSP cameras, with its scan feed in step.

The videos are served by sim/rtsp.py under the system python (GStreamer's RTSP server); this
side writes a site file pointing at the live cameras and, given a Redis URL, publishes the
scenario's scans and badge events on the scan stream at the moment each camera shows them,
loop after loop, as the factory's scanners would.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from bondwatch.demo import Demo, DemoScanner
from bondwatch.scanbus import ScanBus
from bondwatch.scans import load_scans
from bondwatch.site import load_site

logger = logging.getLogger(__name__)

SYSTEM_PYTHON = "/usr/bin/python3"  # the interpreter with GStreamer's bindings (python3-gi)
RTSP_SERVER = Path(__file__).resolve().parent / "rtsp.py"


class ServeError(Exception):
    pass


@dataclass(frozen=True)
class Served:
    site: Path  # the scenario's site file with the cameras' live RTSP URLs
    urls: dict[str, str]
    start: float  # Unix time of every camera's first frame
    loop_s: float


class SimServer:
    """The RTSP server process of a rendered scenario and, optionally, its scan player."""

    def __init__(self, render_dir: Path, host: str = "127.0.0.1", port: int = 8554):
        self.render_dir = Path(render_dir)
        self.host = host
        self.port = port
        self.proc: subprocess.Popen[str] | None = None
        self.scanner: DemoScanner | None = None

    def start(self, redis_url: str | None = None) -> Served:
        site = load_site(self.render_dir / "site.yaml")
        mounts = [f"--mount=/{c.id}={self.render_dir / f'{c.id}.mp4'}" for c in site.cameras]
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(RTSP_SERVER), "--host", self.host, "--port", str(self.port), *mounts],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        lines = []
        for line in self.proc.stdout:
            lines.append(line)
            if line.startswith("READY "):
                break
        else:
            self.proc.wait()
            raise ServeError(f"the RTSP server did not start: {''.join(lines).strip()[-300:]}")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # keep the pipe drained
        _, port, start, loop_s = line.split()
        urls = {c.id: f"rtsp://{self.host}:{port}/{c.id}" for c in site.cameras}
        live_site = self.render_dir / "site-live.yaml"
        data = yaml.safe_load((self.render_dir / "site.yaml").read_text(encoding="utf-8"))
        for camera in data["cameras"]:
            camera["url"] = urls[camera["id"]]
        live_site.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        served = Served(live_site, urls, float(start), float(loop_s))
        if redis_url is not None:
            demo = Demo(site=site, scans=load_scans(self.render_dir / "scans.jsonl"), loop_s=served.loop_s)
            self.scanner = DemoScanner(demo, ScanBus(redis_url), lambda _camera: _position(served.start))
            self.scanner.start()
        return served

    def stop(self) -> None:
        if self.scanner is not None:
            self.scanner.stop()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _position(start: float) -> tuple[float, float] | None:
    """Video time and wall-clock time of the moment every live camera shows now."""
    now = time.time()
    return (now - start, now) if now >= start else None
