"""Recording against real parts: the PETS clip from a real RTSP server, real MP4 files, SQLite.

One module-scoped recording (stream, kill the server, restart it, stream again) feeds the
checks on duration, pixels, gaps, verification and clips; retention runs on a file fed straight
into a recorder with wall times derived from its video time. H.265 and RTSP over UDP each get
one short recording of their own.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np
import pytest
from conftest import wait_for
from rtsp import RtspServer, make_h264_mp4, make_mp4

from bondwatch.site import Camera
from streams.camera import CameraStream
from streams.clips import cut_clip
from streams.frame import Frame
from streams.recorder import Recorder
from streams.recordings import RecordingStore, Segment, open_store, verify_recordings
from streams.source import MediaWriter, RecordingError, VideoSource

PETS = Path(__file__).parents[1].parent / "shared" / "data" / "pets2009-s2l1" / "vtest.avi"
SEGMENT_S = 2.0
FPS = 10
KEYFRAME_INTERVAL_S = 1.0  # make_h264_mp4 puts a keyframe every 10 frames
OUTAGE_S = 2.0  # how long the server stays dead once the camera noticed


@dataclass(frozen=True)
class Recording:
    data: Path
    store: RecordingStore
    sessions: list[list[Frame]]  # the frames the camera delivered, per connection
    killed_ts: float
    restarted_ts: float
    cpu_s: float  # process CPU while streaming (decode and remux together)


def collect(
    stream: CameraStream, frames: list[Frame], video_s: float, timeout_s: float, after: int = -1
) -> None:
    """Read the slot until `video_s` of video arrived in this session (a fast reader drops none)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        frame = stream.slot.get(after_index=after, timeout=1.0)
        if frame is None:
            continue
        frames.append(frame)
        after = frame.index
        if frame.t - frames[0].t >= video_s:
            return
    raise AssertionError(f"only {len(frames)} frames within {timeout_s} s")


@pytest.fixture(scope="module")
def pets_mp4() -> Path:
    return make_h264_mp4(PETS, seconds=30)


@pytest.fixture(scope="module")
def source_frames(pets_mp4: Path) -> list[np.ndarray]:
    with av.open(str(pets_mp4)) as f:
        return [fr.to_ndarray(format="bgr24") for fr in f.decode(video=0)]


@pytest.fixture(scope="module")
def recording(pets_mp4: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    """8 s of RTSP, the server killed, restarted, 6 s more; segments of 2 s."""
    data = tmp_path_factory.mktemp("data")
    mp = pytest.MonkeyPatch()
    mp.delenv("DATABASE_URL", raising=False)
    store = open_store(data)
    sessions: list[list[Frame]] = [[], []]
    with RtspServer({"/pets": pets_mp4}) as server:
        stream = CameraStream(
            Camera(id="pets", url=server.url("/pets")),
            recording=store,
            segment_s=SEGMENT_S,
            stall_s=2.0,
            backoff_max_s=1.0,
        )
        cpu0 = time.process_time()
        stream.start()
        try:
            collect(stream, sessions[0], 8.0, 30)
            killed_ts = time.time()
            server.kill()
            assert wait_for(lambda: stream.health().state != "live", 15)
            assert wait_for(lambda: any(g.to_ts is None for g in store.gaps("pets")), 10)
            time.sleep(OUTAGE_S)
            last = stream.slot.peek()
            assert last is not None
            sessions[0].append(last)  # frames may have come after the first collect stopped
            restarted_ts = time.time()
            server.start()
            collect(stream, sessions[1], 6.0, 30, after=last.index)
            health = stream.health()  # the recording lag and errors reach the health snapshot
            assert health.recording_error == "" and health.recording_pending <= 1
        finally:
            assert stream.stop()
        cpu_s = time.process_time() - cpu0
    store.engine.dispose()
    yield Recording(data, open_store(data), sessions, killed_ts, restarted_ts, cpu_s)
    mp.undo()


def by_session(rec: Recording) -> tuple[list[Segment], list[Segment]]:
    segments = rec.store.segments("pets")
    first = [s for s in segments if s.start_ts < rec.killed_ts]
    return first, [s for s in segments if s.start_ts > rec.restarted_ts]


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as f:
        return [fr.to_ndarray(format="bgr24") for fr in f.decode(video=0)]


def test_segments_cover_the_streamed_time_within_one_segment(recording: Recording) -> None:
    first, second = by_session(recording)
    assert len(first) + len(second) == len(recording.store.segments("pets"))
    for session, segments in zip(recording.sessions, (first, second), strict=True):
        streamed = session[-1].t - session[0].t + 1 / FPS
        recorded = sum(s.end_t - s.start_t for s in segments)
        assert abs(recorded - streamed) <= SEGMENT_S, (streamed, recorded)
        assert all(s.frames > 0 and s.size > 0 for s in segments)
        # segments follow each other on the camera's time line, cut on whole keyframe intervals
        for a, b in zip(segments, segments[1:], strict=False):
            assert b.start_t == pytest.approx(a.end_t, abs=1e-6)
            assert (a.end_t - a.start_t) >= SEGMENT_S - 1e-6
    # the segments' video time is the frames' video time
    assert first[0].start_t == pytest.approx(recording.sessions[0][0].t, abs=1e-6)
    assert second[0].start_t >= recording.sessions[0][-1].t


def test_a_recorded_segment_decodes_to_the_source_frames(
    recording: Recording, source_frames: list[np.ndarray]
) -> None:
    """No re-encoding: the first connection starts at frame 0, so segment times index the file."""
    first, _ = by_session(recording)
    for seg in first[:2]:
        pixels = decode(recording.store.path_of(seg))
        start = round(seg.start_t * FPS)
        assert len(pixels) == seg.frames
        expected = source_frames[start : start + len(pixels)]
        assert all(np.array_equal(a, b) for a, b in zip(pixels, expected, strict=True))


def test_the_outage_is_one_recorded_gap_and_recording_resumes(recording: Recording) -> None:
    first, second = by_session(recording)
    gap, stopped = recording.store.gaps("pets")
    assert gap.from_ts == first[-1].end_ts and gap.to_ts == second[0].start_ts
    assert gap.from_ts <= recording.killed_ts + 0.5 and gap.to_ts >= recording.restarted_ts
    assert gap.to_ts - gap.from_ts >= OUTAGE_S
    assert gap.reason.startswith("camera pets: ") and "stopped" not in gap.reason
    assert len(second) >= 2
    # stopping the camera leaves a gap open from the end of its last segment
    assert stopped.from_ts == second[-1].end_ts and stopped.to_ts is None
    assert stopped.reason == "camera pets: recording stopped"


def test_an_intact_recording_verifies(recording: Recording) -> None:
    out = io.StringIO()
    assert verify_recordings(recording.data, out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ok: ")
    # the outage and the final stop are listed as gaps in the recording
    gaps = [line for line in lines if line.startswith("gap: camera pets not recorded ")]
    assert len(gaps) == 2 and gaps[-1].endswith("to now: camera pets: recording stopped")


def alter_byte(data: Path, seg: Segment) -> None:
    path = data / "recordings" / seg.path
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def delete_file(data: Path, seg: Segment) -> None:
    (data / "recordings" / seg.path).unlink()


def run_sql(data: Path, sql: str, *args: object) -> None:
    with sqlite3.connect(data / "bondwatch.db") as db:
        db.execute(sql, args)


def delete_row(data: Path, seg: Segment) -> None:
    run_sql(data, "DELETE FROM segments WHERE camera = ? AND seq = ?", seg.camera, seg.seq)
    delete_file(data, seg)


def edit_row(data: Path, seg: Segment) -> None:
    run_sql(data, "UPDATE segments SET end_ts = end_ts + 5 WHERE seq = ?", seg.seq)


def swap_files(data: Path, seg: Segment) -> None:
    root = data / "recordings"
    other = next(p for p in sorted(root.rglob("*.mp4")) if p.name != Path(seg.path).name)
    mine = root / seg.path
    tmp = mine.with_suffix(".swap")
    mine.replace(tmp)
    other.replace(mine)
    tmp.replace(other)


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (alter_byte, "file altered"),
        (delete_file, "file missing"),
        (delete_row, "missing from the index"),
        (edit_row, "index entry altered"),
        (swap_files, "file altered"),
    ],
)
def test_tampering_is_named_by_verify_recordings(
    recording: Recording, tmp_path: Path, tamper: Callable[[Path, Segment], None], named: str
) -> None:
    data = tmp_path / "data"
    shutil.copytree(recording.data, data)
    victim = recording.store.segments("pets")[2]
    tamper(data, victim)
    out = io.StringIO()
    assert verify_recordings(data, camera="pets", out=out) == 2
    lines = out.getvalue().splitlines()
    seq = victim.seq + 1 if tamper is delete_row else victim.seq  # a deleted row: its successor
    assert any(f"segment {seq} " in line and named in line for line in lines), lines
    assert lines[-1].endswith("segments of 1 camera(s)")


def test_a_clip_covers_its_window_without_re_encoding(
    recording: Recording, tmp_path: Path, source_frames: list[np.ndarray]
) -> None:
    first, _ = by_session(recording)
    store = recording.store
    from_ts = first[1].start_ts + 1.55  # inside a keyframe interval, the window spans 3 segments
    to_ts = from_ts + 1.0
    clip = cut_clip(store, "pets", from_ts, to_ts, tmp_path / "ev.mp4", pre_s=1, post_s=1)

    assert clip.start_ts <= from_ts - 1 < clip.start_ts + KEYFRAME_INTERVAL_S
    assert to_ts + 1 <= clip.end_ts < to_ts + 1 + 1 / FPS + 1e-6
    assert clip.keyframe_lead_s == pytest.approx(from_ts - 1 - clip.start_ts)
    assert len(clip.segments) >= 2 and clip.complete
    assert clip.frames == round((clip.end_ts - clip.start_ts) * FPS)

    # the same bytes as the segments, and the same pixels as the camera sent
    with VideoSource(str(clip.path)) as src:
        clip_packets = [p.data for p in src.packets()]
        clip_extradata = src.format.extradata
    seg_packets: list[bytes] = []
    for seq in clip.segments:
        seg = next(s for s in first if s.seq == seq)
        with VideoSource(str(store.path_of(seg))) as src:
            seg_packets += [p.data for p in src.packets()]
            assert src.format.extradata == clip_extradata
    start = round((clip.start_ts - first[1].start_ts) * FPS)
    assert clip_packets == seg_packets[start : start + len(clip_packets)]
    first_frame = round((first[1].start_t + clip.start_ts - first[1].start_ts) * FPS)
    pixels = decode(clip.path)
    expected = source_frames[first_frame : first_frame + len(pixels)]
    assert all(np.array_equal(a, b) for a, b in zip(pixels, expected, strict=True))

    # exact times in the MP4 tags and the sidecar; the window is held against retention
    with av.open(str(clip.path)) as f:
        assert f.metadata["bondwatch_start_ts"] == f"{clip.start_ts:.6f}"
        assert f.metadata["bondwatch_end_ts"] == f"{clip.end_ts:.6f}"
    sidecar = json.loads(clip.sidecar.read_text())
    assert sidecar["sha256"] == clip.sha256 and sidecar["reencoded"] is False
    assert [s["seq"] for s in sidecar["segments"]] == list(clip.segments)
    assert store.held("pets", from_ts, to_ts)
    store.release(clip.hold_id)
    assert not store.held("pets", from_ts, to_ts)


def test_an_annotated_clip_is_a_separate_re_encoded_copy(recording: Recording, tmp_path: Path) -> None:
    first, _ = by_session(recording)
    ts = first[1].start_ts + 0.5
    clip = cut_clip(recording.store, "pets", ts, ts, tmp_path / "ev.mp4", pre_s=0, post_s=1, annotated=True)
    recording.store.release(clip.hold_id)
    assert clip.annotated == tmp_path / "ev-annotated.mp4"
    plain, burned = decode(clip.path), decode(clip.annotated)
    assert len(plain) == len(burned) == clip.frames
    top = slice(0, 40)  # the time is written in the top band; the rest only suffers encoding
    assert all(np.abs(a[top].astype(int) - b[top]).max() > 100 for a, b in zip(plain, burned, strict=True))


def record_file(store: RecordingStore, path: Path, t0: float) -> list[Segment]:
    """Feed a whole file into a recorder as if it had arrived live from wall time `t0`."""
    recorder = Recorder(store, "cam1", segment_s=SEGMENT_S)
    with VideoSource(str(path)) as src:
        for packet in src.packets():
            recorder.write(dataclasses.replace(packet, ts=t0 + packet.t))
    assert recorder.close()
    return store.segments("cam1", include_removed=True)


def test_over_quota_the_oldest_unheld_segments_go_and_held_ones_stay(
    pets_mp4: Path, tmp_path: Path, db_url: str
) -> None:
    t0 = 1_800_000_000.0
    store = RecordingStore(db_url, tmp_path / "rec")
    held_id = store.hold("alert a1", t0 + 4.5, t0 + 5.5, camera="cam1")  # inside segment 3
    store.hold("alert on another camera", t0, t0 + 30, camera="cam2")
    store.quota_bytes = 1_500_000  # about a third of the 30 s
    segments = record_file(store, pets_mp4, t0)

    assert len(segments) == 15
    kept = [s for s in segments if not s.removed]
    removed = [s for s in segments if s.removed]
    assert sum(s.size for s in kept) <= store.quota_bytes
    assert [s.seq for s in kept if s.seq < 10] == [3]  # the held one survives among the old
    assert max(s.seq for s in removed) < min(s.seq for s in kept if s.seq != 3)
    assert all(not store.path_of(s).exists() for s in removed)
    assert all(store.path_of(s).exists() for s in kept)
    assert store.verify() == []  # removal by retention is not tampering

    store.release(held_id)
    store.quota_bytes = sum(s.size for s in kept) - 1
    assert [s.seq for s in store.enforce_retention()] == [3]  # now simply the oldest


def test_segments_older_than_the_maximum_age_go_unless_held(
    pets_mp4: Path, tmp_path: Path, db_url: str
) -> None:
    t0 = 1_800_000_000.0
    store = RecordingStore(db_url, tmp_path / "rec")
    segments = record_file(store, pets_mp4, t0)
    store.hold("evidence", t0 + 0.5, t0 + 1.0)  # every camera
    store.max_age_s = 3600
    removed = store.enforce_retention(now=t0 + 3600 + 9.5)  # segments ending before t0 + 9.5
    assert [s.seq for s in removed] == [2, 3, 4]  # 1 is held
    assert len(segments) == 15
    assert [s.seq for s in store.segments("cam1")][0] == 1


def test_a_failing_disk_is_a_gap_and_recording_comes_back(
    pets_mp4: Path, tmp_path: Path, db_url: str
) -> None:
    """Segments starting at 10-15 s cannot be created (a folder is in the way of each file)."""
    t0 = 1_800_000_000.0
    store = RecordingStore(db_url, tmp_path / "rec")
    recorder = Recorder(store, "cam1", segment_s=SEGMENT_S)
    for second in range(10, 16):
        path = recorder.segment_path(t0 + second)
        path.with_name(path.name + ".part").mkdir(parents=True)
    with VideoSource(str(pets_mp4)) as src:
        for packet in src.packets():
            recorder.write(dataclasses.replace(packet, ts=t0 + packet.t))
    assert recorder.close()

    stats = recorder.stats()
    assert stats.errors == 6 and "cannot write" in stats.last_error
    gaps = store.gaps("cam1")
    assert len(gaps) == 1 and gaps[0].reason.startswith("recording failed: cannot write")
    assert gaps[0].from_ts == pytest.approx(t0 + 10.0) and gaps[0].to_ts == pytest.approx(t0 + 16.0)
    assert [s.start_t for s in store.segments("cam1")][4:6] == pytest.approx([8.0, 16.0])


def test_a_writer_refuses_packets_whose_source_is_closed(pets_mp4: Path, tmp_path: Path) -> None:
    """PyAV frees a closed source's stream: writing from it must be an error, not a crash."""
    with VideoSource(str(pets_mp4)) as src:
        fmt = src.format
    with pytest.raises(RecordingError, match="already closed"):
        MediaWriter(tmp_path / "late.mp4", fmt)


def test_a_codec_mp4_cannot_hold_is_one_clear_sentence(tmp_path: Path) -> None:
    with VideoSource(str(PETS)) as src, pytest.raises(RecordingError) as err:
        MediaWriter(tmp_path / "x.mp4", src.format)
    assert str(err.value) == (
        f"cannot write msmpeg4 video to {tmp_path / 'x.mp4'}: 'mp4' format does not support 'msmpeg4' codec"
    )
    assert not (tmp_path / "x.mp4").exists()


def record_rtsp(clip: Path, data: Path, transport: Literal["tcp", "udp"], video_s: float) -> list[Frame]:
    """Stream `clip` from a real RTSP server into a recording under `data`; the frames read."""
    store = open_store(data)
    frames: list[Frame] = []
    with RtspServer({"/cam": clip}) as server:
        stream = CameraStream(
            Camera(id="cam", url=server.url("/cam"), transport=transport),
            recording=store,
            segment_s=SEGMENT_S,
        )
        stream.start()
        try:
            collect(stream, frames, video_s, 30)
        finally:
            assert stream.stop()
    store.engine.dispose()
    return frames


def check_recorded(data: Path, frames: list[Frame], codec: str) -> list[Segment]:
    """Chained segments in `codec` whose decoded frames add up to the streamed time."""
    out = io.StringIO()
    assert verify_recordings(data, out=out) == 0, out.getvalue()
    assert out.getvalue().startswith("ok: ")
    store = open_store(data)
    segments = store.segments("cam")
    assert len(segments) >= 2
    decoded = 0
    for seg in segments:
        with av.open(str(store.path_of(seg))) as f:
            assert f.streams.video[0].codec_context.name == codec
            n = sum(1 for _ in f.decode(video=0))
        assert n == seg.frames > 0
        decoded += n
    streamed = frames[-1].index - frames[0].index + 1
    # recording starts at the first keyframe and stops a little after the reader stopped
    assert streamed - KEYFRAME_INTERVAL_S * FPS <= decoded <= streamed + SEGMENT_S * FPS
    store.engine.dispose()
    return segments


def test_an_h265_camera_is_recorded_without_re_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    clip = make_mp4(PETS, seconds=15, codec="h265")
    frames = record_rtsp(clip, tmp_path, "tcp", 5.0)
    segments = check_recorded(tmp_path, frames, "hevc")
    first = segments[0]
    pixels = decode(tmp_path / "recordings" / first.path)
    start = round(first.start_t * FPS)  # the session starts at the file's first frame
    expected = decode(clip)[start : start + len(pixels)]
    assert all(np.array_equal(a, b) for a, b in zip(pixels, expected, strict=True))


def test_a_camera_over_rtsp_udp_is_recorded(
    pets_mp4: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    frames = record_rtsp(pets_mp4, tmp_path, "udp", 5.0)
    check_recorded(tmp_path, frames, "h264")
