"""Ingest against real parts: the PETS clip served by a real RTSP server, real broken files."""

from __future__ import annotations

import gc
import logging
import socket
import subprocess
import threading
import weakref
from collections.abc import Iterator
from itertools import islice, pairwise
from pathlib import Path

import numpy as np
import pytest
from conftest import wait_for
from rtsp import RtspServer, free_port, make_h264_mp4

from bondwatch.site import Camera
from streams.camera import CameraHealth, CameraStream
from streams.frame import Frame
from streams.slot import FrameSlot
from streams.source import SourceError, VideoSource, mask_url, open_frames

PETS = Path(__file__).parents[1].parent / "shared" / "data" / "pets2009-s2l1" / "vtest.avi"


@pytest.fixture(scope="module")
def pets_mp4() -> Path:
    """30 s of PETS (300 frames, 768x576, 10 fps) as H.264, a keyframe every 10 frames."""
    return make_h264_mp4(PETS, seconds=30)


@pytest.fixture(scope="module")
def rtsp(pets_mp4: Path) -> Iterator[RtspServer]:
    """A real RTSP server shared by the tests that do not kill it."""
    with RtspServer({"/pets": pets_mp4}) as server:
        yield server


def make_frame(index: int) -> Frame:
    return Frame("cam1", index, index / 10, 1e9 + index / 10, np.zeros((4, 4, 3), np.uint8))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/stream1", "rtsp://***@10.0.0.5:554/stream1"),
        ("rtsp://admin@10.0.0.5/live", "rtsp://***@10.0.0.5/live"),
        ("rtsps://u:p%40ss@cam.local/x?channel=1", "rtsps://***@cam.local/x?channel=1"),
        (
            "rtsp://10.0.0.5/cgi?user=admin&password=s3cret",
            "rtsp://10.0.0.5/cgi?user=***&password=***",
        ),
        ("rtsp://10.0.0.5:554/stream1", "rtsp://10.0.0.5:554/stream1"),
        ("/videos/cam@night.mp4", "/videos/cam@night.mp4"),
        (
            "camera c: cannot open rtsp://a:b@h/x: refused; retry rtsp://c:d@h/y",
            "camera c: cannot open rtsp://***@h/x: refused; retry rtsp://***@h/y",
        ),
    ],
)
def test_mask_url_hides_credentials(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_rtsp_over_tcp_delivers_the_file_frame_for_frame(rtsp: RtspServer, pets_mp4: Path) -> None:
    """The server does not re-encode, so RTSP frames decode to exactly the file's pixels."""
    over_rtsp = []
    for frame in open_frames(rtsp.url("/pets"), camera="pets", transport="tcp"):
        over_rtsp.append(frame)
        if len(over_rtsp) == 25:
            break
    from_file = list(islice(open_frames(str(pets_mp4), camera="pets"), 25))

    assert [f.index for f in over_rtsp] == list(range(25))
    assert all(f.camera == "pets" and f.image.shape == (576, 768, 3) for f in over_rtsp)
    assert [f.t for f in over_rtsp] == pytest.approx([i / 10 for i in range(25)], abs=1e-3)
    assert [f.t for f in from_file] == pytest.approx([i / 10 for i in range(25)], abs=1e-3)
    for a, b in zip(over_rtsp, from_file, strict=True):
        assert np.array_equal(a.image, b.image), f"frame {a.index} differs"


def test_rtsp_over_udp_delivers_increasing_time(rtsp: RtspServer) -> None:
    frames = []
    for frame in open_frames(rtsp.url("/pets"), camera="pets", transport="udp"):
        frames.append(frame)
        if len(frames) == 15:
            break
    assert all(f.image.shape == (576, 768, 3) for f in frames)
    ts = [f.t for f in frames]
    assert ts[0] == 0.0 and all(b > a for a, b in pairwise(ts))


def test_camera_recovers_by_itself_after_the_server_is_killed(pets_mp4: Path) -> None:
    states: list[CameraHealth] = []
    with RtspServer({"/pets": pets_mp4}) as server:
        stream = CameraStream(Camera(id="cam1", url=server.url("/pets")), on_state=states.append)
        stream.start()
        try:
            before = stream.slot.get(timeout=15)
            assert before is not None
            before = stream.slot.get(after_index=before.index + 5, timeout=10)
            assert before is not None

            server.kill()
            assert wait_for(lambda: stream.health().state in ("offline", "stalled"), 15)
            assert stream.health().error.startswith("camera cam1: ")

            server.start()
            assert wait_for(lambda: stream.health().state == "live", 30)
            after = stream.slot.get(after_index=before.index, timeout=10)
            assert after is not None
            after = stream.slot.get(after_index=after.index, timeout=10)
        finally:
            assert stream.stop()

    assert after is not None and after.index > before.index and after.t > before.t
    health = stream.health()
    assert health.reconnects >= 1
    seen = [h.state for h in states]
    assert seen[0] == "live" and seen[-1] == "live"
    assert "offline" in seen or "stalled" in seen


def test_hung_camera_is_reported_stalled_and_comes_back(pets_mp4: Path) -> None:
    states: list[str] = []
    with RtspServer({"/pets": pets_mp4}) as server:
        stream = CameraStream(
            Camera(id="cam1", url=server.url("/pets")),
            on_state=lambda h: states.append(h.state),
            stall_s=1.0,
        )
        stream.start()
        try:
            assert stream.slot.get(timeout=15) is not None
            server.freeze()
            assert wait_for(lambda: stream.health().state == "stalled", 10)
            assert stream.health().error.endswith("/pets for 1 s")
            server.thaw()
            assert wait_for(lambda: stream.health().state == "live", 30)
        finally:
            server.thaw()
            assert stream.stop()
    assert states[:2] == ["live", "stalled"] and states[-1] == "live"
    assert stream.health().reconnects >= 1


def test_server_that_never_answers_fails_within_the_open_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel accepts connections; nobody ever speaks RTSP
        port = silent.getsockname()[1]
        with pytest.raises(SourceError) as err:
            VideoSource(f"rtsp://127.0.0.1:{port}/x", camera="cam1", open_timeout_s=1.0)
    assert str(err.value) == f"camera cam1: cannot open rtsp://127.0.0.1:{port}/x: no answer within 1 s"


def test_dead_camera_goes_offline_while_a_healthy_one_keeps_delivering(
    rtsp: RtspServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dead_url = f"rtsp://admin:s3cret@127.0.0.1:{free_port()}/stream1"
    offline = threading.Event()

    def on_dead(health: CameraHealth) -> None:
        if health.state == "offline":
            offline.set()

    dead = CameraStream(Camera(id="dead", url=dead_url), on_state=on_dead)
    good = CameraStream(Camera(id="good", url=rtsp.url("/pets", credentials="viewer:hunter2")))
    good.start()
    dead.start()
    try:
        assert offline.wait(10)
        assert good.slot.get(timeout=15) is not None
        seen = good.health().frames
        assert wait_for(lambda: good.health().frames >= seen + 10, 10)
        error = dead.health().error
    finally:
        assert dead.stop() and good.stop()

    assert error == (
        f"camera dead: cannot open rtsp://***@127.0.0.1:{dead_url.rsplit(':', 1)[1]}: connection refused"
    )
    assert dead.health().state == "offline" and good.health().state == "live"
    assert good.health().error == "" and good.health().fps > 0
    everything = repr([dead.health(), good.health()]) + caplog.text
    assert "s3cret" not in everything and "hunter2" not in everything
    assert "camera dead: cannot open rtsp://***@127.0.0.1" in caplog.text


@pytest.fixture(scope="module")
def broken_files(tmp_path_factory: pytest.TempPathFactory, pets_mp4: Path) -> dict[str, Path]:
    """Real broken inputs: cut MP4s (index at the end / at the front), text, audio only."""
    folder = tmp_path_factory.mktemp("broken")
    data = pets_mp4.read_bytes()
    cut_index_last = folder / "cut_index_last.mp4"
    cut_index_last.write_bytes(data[: len(data) // 2])
    faststart = folder / "faststart.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(pets_mp4), "-t", "8"]
        + ["-c", "copy", "-movflags", "+faststart", str(faststart)],
        check=True,
    )
    cut_index_first = folder / "cut_index_first.mp4"
    cut_index_first.write_bytes(faststart.read_bytes()[: faststart.stat().st_size * 2 // 3])
    text = folder / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    audio = folder / "audio.m4a"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", "sine=d=1", str(audio)],
        check=True,
    )
    return {
        "cut_index_last": cut_index_last,
        "cut_index_first": cut_index_first,
        "text": text,
        "audio": audio,
        "missing": folder / "missing.mp4",
    }


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("cut_index_last", "not a readable video (damaged, truncated or not a video file)"),
        ("text", "not a readable video (damaged, truncated or not a video file)"),
        ("missing", "no such file"),
    ],
)
def test_unreadable_file_is_one_clear_sentence(broken_files: dict[str, Path], name: str, reason: str) -> None:
    path = broken_files[name]
    with pytest.raises(SourceError) as err:
        VideoSource(str(path), camera="cam1")
    assert str(err.value) == f"camera cam1: cannot open {path}: {reason}"


def test_file_without_video_is_named(broken_files: dict[str, Path]) -> None:
    with pytest.raises(SourceError, match=r"^camera cam1: .*audio\.m4a has no video stream$"):
        VideoSource(str(broken_files["audio"]), camera="cam1")


def test_truncated_stream_counts_the_broken_packet_and_ends(broken_files: dict[str, Path]) -> None:
    with VideoSource(str(broken_files["cut_index_first"]), camera="cam1") as source:
        frames = list(source.frames())
    assert 20 < len(frames) < 80
    assert source.decode_errors >= 1
    assert all(b.t > a.t for a, b in pairwise(frames))


def test_camera_on_a_broken_file_goes_offline_and_stops(broken_files: dict[str, Path]) -> None:
    states: list[CameraHealth] = []
    stream = CameraStream(Camera(id="cam1", url=str(broken_files["cut_index_last"])), on_state=states.append)
    stream.start()
    try:
        assert wait_for(lambda: stream.health().state == "offline", 10)
    finally:
        assert stream.stop()
    assert [h.state for h in states] == ["offline"]
    assert "not a readable video" in stream.health().error
    assert stream.slot.get(timeout=0) is None


def test_file_camera_loops_forever_with_time_moving_on(pets_mp4: Path, tmp_path: Path) -> None:
    clip = make_h264_mp4(pets_mp4, tmp_path / "one_second.mp4", seconds=1)
    stream = CameraStream(Camera(id="cam1", url=str(clip)))
    stream.start()
    frames: list[Frame] = []
    try:
        while not frames or frames[-1].t < 2.5:
            frame = stream.slot.get(after_index=frames[-1].index if frames else -1, timeout=10)
            assert frame is not None
            frames.append(frame)
    finally:
        assert stream.stop()
    assert all(b.index > a.index and b.t > a.t for a, b in pairwise(frames))
    # the loop continues one frame step after the clip's last frame: t stays on the 0.1 s grid
    assert [round(f.t * 10) for f in frames] == pytest.approx([f.t * 10 for f in frames], abs=0.01)
    # paced at the video's own speed, not as fast as decoding goes
    assert frames[-1].ts - frames[0].ts >= 0.5 * (frames[-1].t - frames[0].t)
    assert stream.health().reconnects == 0


def test_slot_keeps_only_the_newest_frame_and_counts_drops() -> None:
    slot = FrameSlot()
    first = make_frame(0)
    gone = weakref.ref(first)
    slot.put(first)
    del first
    slot.put(make_frame(1))
    slot.put(make_frame(2))
    gc.collect()
    assert gone() is None, "the slot kept a replaced frame alive"
    assert slot.dropped == 2 and slot.frames == 3

    newest = slot.get(timeout=0)
    assert newest is not None and newest.index == 2
    assert slot.get(after_index=2, timeout=0.05) is None
    slot.put(make_frame(3))
    assert slot.dropped == 2, "a frame that was read is not a drop"


def test_slot_wakes_a_waiting_reader_and_close_releases_it() -> None:
    slot = FrameSlot()
    got: list[Frame | None] = []
    reader = threading.Thread(target=lambda: got.append(slot.get(after_index=4, timeout=10)))
    reader.start()
    slot.put(make_frame(3))  # not newer than what the reader saw: keeps waiting
    slot.put(make_frame(5))
    reader.join(10)
    assert [f.index for f in got if f] == [5]

    waiting = threading.Thread(target=lambda: got.append(slot.get(after_index=5)))
    waiting.start()
    slot.close()
    waiting.join(10)
    assert not waiting.is_alive() and got[-1] is None
