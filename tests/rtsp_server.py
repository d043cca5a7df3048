"""A real RTSP server for the tests, serving H.264 and H.265 MP4 files without re-encoding.

Run it with the SYSTEM python (/usr/bin/python3), which has GStreamer's RTSP server bindings:

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --mount /cam1=pets.mp4 [--mount ...]

It prints "READY <port>" once it listens. Each client gets its own pipeline (the factory is not
shared), so every client sees the file from its first frame, two clients never disturb each
other, and a client that connects after a restart starts cleanly. Files are not looped: at the
end of the file the server ends the session; make a longer file if a test needs more video.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def _mount(spec: str) -> tuple[str, Path]:
    name, sep, path = spec.partition("=")
    if not sep or not name.startswith("/") or not path:
        raise argparse.ArgumentTypeError(f"expected /name=PATH, got {spec!r}")
    file = Path(path).resolve()
    if not file.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {file}")
    return name, file


# The parser and payloader for each codec ffprobe can name; the payloader is always `pay0`.
PAYLOADERS = {
    "h264": "h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=-1",
    "hevc": "h265parse config-interval=-1 ! rtph265pay name=pay0 pt=96 config-interval=-1",
}


def _payloader(file: Path) -> str:
    """The parse-and-payload chain for the file's first video stream, by its codec."""
    codec = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name",
         "-of", "csv=p=0", str(file)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if codec not in PAYLOADERS:
        raise SystemExit(f"{file}: cannot serve {codec or 'no'} video (only {', '.join(PAYLOADERS)})")
    return PAYLOADERS[codec]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8554, help="0 picks a free port")
    parser.add_argument("--mount", type=_mount, action="append", required=True)
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for name, file in args.mount:
        factory = GstRtspServer.RTSPMediaFactory()
        location = str(file).replace("\\", "\\\\").replace('"', '\\"')
        factory.set_launch(f'( filesrc location="{location}" ! qtdemux ! {_payloader(file)} )')
        factory.set_shared(False)
        mounts.add_factory(name, factory)

    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
