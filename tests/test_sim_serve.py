"""`bondwatch sim serve`: rendered cameras as live, looping RTSP streams, scans in step."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from conftest import pattern_clip, wait_for

from bondwatch.redis_server import free_port
from bondwatch.scanbus import ScanReader
from sim.serve import SimServer

SITE = """
name: tiny
cameras:
- {id: bench, url: bench.mp4}
zones:
- {id: s01, camera: bench, kind: station, station: s01, polygon: [[0, 0], [100, 0], [100, 100]]}
"""
LOOP_S = 3.0
FPS = 10


@pytest.fixture
def rendered(tmp_path) -> Path:
    """A render directory as `sim render` leaves it: a 3 s camera and one scan at 1.0 s."""
    d = tmp_path / "render"
    d.mkdir()
    (d / "site.yaml").write_text(SITE)
    (d / "scans.jsonl").write_text('{"t": 1.0, "kind": "scan", "station": "s01", "serial": "SN1"}\n')
    pattern_clip(d / "bench.mp4", FPS, LOOP_S)
    return d


def test_cameras_loop_live_and_scans_follow_each_loop(rendered, redis_server):
    server = SimServer(rendered, port=free_port())
    reader = ScanReader(redis_server.url)
    try:
        served = server.start(redis_server.url)
        assert served.loop_s == pytest.approx(LOOP_S, abs=0.01)
        assert list(served.urls) == ["bench"] and served.urls["bench"].startswith("rtsp://")
        assert "rtsp://" in served.site.read_text()

        # Read past two loops: the stream goes on, with timestamps that keep growing.
        container = av.open(served.urls["bench"], options={"rtsp_transport": "tcp"}, timeout=10)
        pts = []
        for frame in container.decode(video=0):
            if frame.time is None:  # FFmpeg's RTSP demuxer: the very first frame has no time yet
                continue
            pts.append(frame.time)
            if len(pts) >= int(2.5 * LOOP_S * FPS):
                break
        container.close()
        assert all(b > a for a, b in zip(pts, pts[1:], strict=False)), "time went backwards at a loop"
        span = pts[-1] - pts[0]
        assert span == pytest.approx((len(pts) - 1) / FPS, abs=0.15), "frames missing or doubled"

        # The scan at 1.0 s is published once per loop, stamped when the camera showed it.
        scans = []
        wait_for(lambda: scans.extend(reader.read(block_ms=200)) or len(scans) >= 2, 3 * LOOP_S)
        assert len(scans) >= 2, scans
        assert [s.serial for s in scans[:2]] == ["SN1", "SN1"] and scans[0].id != scans[1].id
        gap = (scans[1].ts - scans[0].ts).total_seconds()
        assert gap == pytest.approx(LOOP_S, abs=0.01)
        first = (scans[0].ts.timestamp() - served.start) % LOOP_S
        assert first == pytest.approx(1.0, abs=0.01)
    finally:
        server.stop()
        reader.close()
    assert server.proc is not None and server.proc.poll() is not None
