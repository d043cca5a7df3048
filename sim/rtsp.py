"""Rendered camera videos served as live RTSP cameras, looping forever, never re-encoded.

Run by `bondwatch sim serve` with the SYSTEM python (/usr/bin/python3), which has GStreamer's
RTSP server bindings (python3-gi, gir1.2-gst-rtsp-server-1.0):

    /usr/bin/python3 sim/rtsp.py --port 8554 --mount /cam1=cam1.mp4 [--mount ...]

Each mount behaves like an IP camera: one live stream shared by every client, which joins at
the current moment (at the next keyframe), not at the start of the file. A feeder per camera
reads the file's H.264 access units, stamps them with a clock that keeps running across loops,
and paces them in real time from the moment the server starts. It prints "READY <port>
<start> <loop_s>" (start: the Unix time at which every camera showed its first frame; loop_s:
the length of one loop), so a scan feed can be played in step.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtspServer  # noqa: E402, F401


class Feeder(threading.Thread):
    """Loops one MP4's H.264 samples in real time into whichever appsrc is attached."""

    def __init__(self, path: Path, start: float):
        super().__init__(name=f"feed-{path.stem}", daemon=True)
        self.samples, self.duration = _read_samples(path)
        self.start_time = start
        self.caps = self.samples[0][2]
        self.appsrc: GstApp.AppSrc | None = None
        self.base: int | None = None  # running time of the first buffer pushed to the appsrc
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def attach(self, appsrc: GstApp.AppSrc) -> None:
        with self.lock:
            appsrc.set_caps(self.caps)
            self.appsrc = appsrc
            self.base = None

    def detach(self) -> None:
        with self.lock:
            self.appsrc = None

    def run(self) -> None:
        loop = 0
        while not self.stopping.is_set():
            for pts, data, _ in self.samples:
                at = loop * self.duration + pts  # ns since the server started
                delay = self.start_time + at / 1e9 - time.time()
                if delay > 0 and self.stopping.wait(delay):
                    return
                with self.lock:
                    if self.appsrc is None:
                        continue
                    if self.base is None:
                        self.base = at
                    buf = Gst.Buffer.new_wrapped(data)
                    buf.pts = buf.dts = at - self.base
                    self.appsrc.push_buffer(buf)
            loop += 1


def _read_samples(path: Path) -> tuple[list[tuple[int, bytes, Gst.Caps]], int]:
    """Every access unit of the file (pts ns, bytes, caps) and the loop length in ns."""
    location = str(path).replace("\\", "\\\\").replace('"', '\\"')
    pipeline = Gst.parse_launch(
        f'filesrc location="{location}" ! qtdemux ! h264parse config-interval=-1 ! '
        "video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=out sync=false"
    )
    sink = pipeline.get_by_name("out")
    pipeline.set_state(Gst.State.PLAYING)
    samples = []
    while (sample := sink.emit("pull-sample")) is not None:
        buf = sample.get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        if ok:
            samples.append((buf.pts, bytes(info.data), sample.get_caps()))
            buf.unmap(info)
    pipeline.set_state(Gst.State.NULL)
    if len(samples) < 2:
        raise SystemExit(f"{path}: no H.264 video to serve")
    samples.sort(key=lambda s: s[0])
    first = samples[0][0]
    step = (samples[-1][0] - first) // (len(samples) - 1)
    samples = [(pts - first, data, caps) for pts, data, caps in samples]
    return samples, samples[-1][0] + step


def _mount(spec: str) -> tuple[str, Path]:
    name, sep, path = spec.partition("=")
    if not sep or not name.startswith("/") or not path:
        raise argparse.ArgumentTypeError(f"expected /name=PATH, got {spec!r}")
    file = Path(path).resolve()
    if not file.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {file}")
    return name, file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8554, help="0 picks a free port")
    parser.add_argument("--mount", type=_mount, action="append", required=True)
    args = parser.parse_args()

    Gst.init(None)
    start = time.time() + 0.5  # every camera's first frame, in step
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    feeders = []
    for name, file in args.mount:
        feeder = Feeder(file, start)
        feeders.append(feeder)
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=false ! "
            "h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
        factory.set_shared(True)  # one live stream per camera, whoever watches
        factory.connect("media-configure", _on_configure, feeder)
        mounts.add_factory(name, factory)

    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr, flush=True)
        return 1
    for feeder in feeders:
        feeder.start()
    loop = GLib.MainLoop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    loop_s = max(f.duration for f in feeders) / 1e9
    print(f"READY {server.get_bound_port()} {start:.3f} {loop_s:.3f}", flush=True)
    loop.run()
    for feeder in feeders:
        feeder.stopping.set()
    return 0


def _on_configure(_factory: object, media: GstRtspServer.RTSPMedia, feeder: Feeder) -> None:
    """A first client made the camera's shared stream: feed it from the current moment."""
    appsrc = media.get_element().get_by_name("src")
    feeder.attach(appsrc)
    media.connect("unprepared", lambda _m: feeder.detach())


if __name__ == "__main__":
    sys.exit(main())
