"""Capture time from the camera's RTCP sender reports, against a real RTSP server.

GStreamer's RTSP server sends RTCP sender reports stamped with the system clock, the same clock
as ours, so the measured drift is only the streaming latency: small and never positive.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice, pairwise
from pathlib import Path

import pytest
from rtsp import RtspServer, make_h264_mp4

from bondwatch.site import Camera
from streams.camera import CameraStream
from streams.source import VideoSource

PETS = Path(__file__).parents[1].parent / "shared" / "data" / "pets2009-s2l1" / "vtest.avi"


@pytest.fixture(scope="module")
def rtsp() -> Iterator[RtspServer]:
    with RtspServer({"/pets": make_h264_mp4(PETS, seconds=30)}) as server:
        yield server


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rtsp_frames_are_stamped_by_the_camera_clock(rtsp: RtspServer, transport: str) -> None:
    with VideoSource(rtsp.url("/pets"), camera="pets", transport=transport) as source:
        stamped = [(f.t, f.ts, source.clock) for f in islice(source.frames(), 80)]
        drift = source.drift_s
    timed = [(t, ts) for t, ts, clock in stamped if clock == "rtcp"]
    assert len(timed) >= 20, f"no RTCP timing on {len(stamped) - len(timed)} of {len(stamped)} frames"
    # The camera's clock spaces frames exactly by their timestamps, whatever the network did.
    for (t0, ts0), (t1, ts1) in pairwise(timed):
        assert ts1 - ts0 == pytest.approx(t1 - t0, abs=1e-3)
    assert drift is not None and -3.0 < drift <= 0.05


def test_camera_health_names_the_clock(rtsp: RtspServer) -> None:
    """Until the first sender report (sent every few seconds) frames keep arrival time."""
    stream = CameraStream(Camera(id="pets", url=rtsp.url("/pets")))
    stream.start()
    try:
        health = stream.health()
        frame = stream.slot.get(timeout=10)
        while frame is not None and health.clock != "rtcp" and frame.t < 20.0:
            frame = stream.slot.get(after_index=frame.index, timeout=10)
            health = stream.health()
    finally:
        assert stream.stop()
    assert frame is not None, "no frames over RTSP"
    assert health.clock == "rtcp", f"no RTCP timing within {frame.t:.1f} s of video"
    assert health.drift_s is not None and -3.0 < health.drift_s <= 0.05


def test_a_file_keeps_arrival_time() -> None:
    with VideoSource(str(make_h264_mp4(PETS, seconds=30))) as source:
        list(islice(source.frames(), 10))
        assert (source.clock, source.drift_s) == ("arrival", None)
