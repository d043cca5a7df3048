"""The detector border: cached ONNX export, batching across cameras, motion gating."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import MODEL, PETS_VIDEO

from detectors.motion import MotionGate
from detectors.yolo import Detector, cached_onnx, file_hash
from streams.frame import Frame


@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory) -> Path:
    """A small untrained one-class YOLO saved as a .pt: quick to export."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO  # the test builds a model; the product never does

    path = tmp_path_factory.mktemp("tiny") / "tiny.pt"
    model = YOLO("yolo11n.yaml", task="detect")
    model.model.yaml["nc"] = 1
    model.save(str(path))
    return path


def test_export_is_cached_and_redone_when_the_pt_changes(tiny_pt, tmp_path):
    pt = tmp_path / "model.pt"
    pt.write_bytes(tiny_pt.read_bytes())
    cache = tmp_path / "cache"

    first = cached_onnx(pt, cache, 64)
    assert first.name == f"model-{file_hash(pt)}-64.onnx"
    stamp = first.stat().st_mtime_ns
    assert cached_onnx(pt, cache, 64) == first
    assert first.stat().st_mtime_ns == stamp, "same bytes must reuse the export"

    pt.write_bytes(tiny_pt.read_bytes() + b"\0")  # another .pt under the same name
    second = cached_onnx(pt, cache, 64)
    assert second != first and second.is_file()
    assert not first.exists(), "the stale export is removed"
    assert sorted(p.name for p in cache.iterdir()) == [second.name]


def pets_frames(n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(PETS_VIDEO))
    images = [cap.read()[1] for _ in range(n)]
    cap.release()
    return images


def test_batched_cameras_keep_their_own_track_ids():
    images = pets_frames(12)
    det = Detector(MODEL, batch_size=8)
    together: dict[str, list[list[int]]] = {"a": [], "b": []}
    for i, img in enumerate(images):
        # Camera b sees the picture mirrored, so its people are not camera a's.
        frames = [
            Frame("a", i, i / 10, 1000 + i / 10, img),
            Frame("b", i, i / 10, 1000 + i / 10, img[:, ::-1].copy()),
        ]
        for batch in det.track(frames, fps=10.0):
            together[batch.camera].append(sorted(d.track for d in batch.tracked()))
    alone = Detector(MODEL)
    a_alone = [
        sorted(d.track for d in alone.track([Frame("a", i, i / 10, 1000 + i / 10, img)], 10.0)[0].tracked())
        for i, img in enumerate(images)
    ]
    assert any(together["a"][-1]) and any(together["b"][-1])
    # Camera a's ids are exactly what they are without camera b: ids never mix.
    assert together["a"] == a_alone
    assert together["b"][-1][0] == 1, "camera b numbers its own tracks from 1"


def test_motion_gate_skips_a_static_camera_and_runs_on_change():
    img = pets_frames(1)[0]
    gate = MotionGate(threshold=2.0, max_skip_s=1.0)
    ts = [0.2 * i for i in range(6)]
    decisions = [gate.needs_inference(t, img) for t in ts]
    # Runs on the first frame, skips while static, runs again once max_skip_s has passed.
    assert decisions == [True, False, False, False, False, True]

    moved = np.roll(img, 40, axis=1)
    assert gate.needs_inference(1.2, moved)
    assert not gate.needs_inference(1.4, moved)


def test_motion_gate_never_skips_with_a_unit_near_a_station():
    img = pets_frames(1)[0]
    gate = MotionGate(stations=[[(100, 100), (300, 100), (300, 300), (100, 300)]])
    assert gate.needs_inference(0.0, img)
    assert not gate.needs_inference(0.2, img, units=[(500, 400, 540, 450)])  # far away
    assert gate.needs_inference(0.4, img, units=[(180, 200, 220, 280)])  # on the station


def test_gated_detector_keeps_tracks_alive_on_a_static_camera():
    img = pets_frames(1)[0]
    det = Detector(MODEL)
    gate = MotionGate(max_skip_s=10.0)
    det.gate("a", gate)
    batches = [det.track([Frame("a", i, i / 5, 1000 + i / 5, img)], fps=5.0)[0] for i in range(8)]
    assert gate.skipped == 6  # the first frame opens the tracker, the second arms the gate
    ids = [sorted(d.track for d in b.tracked()) for b in batches]
    assert ids[-1] and ids[-1] == ids[2], "skipped frames keep the same tracks"
    assert [b.index for b in batches] == list(range(8))


def _tracks(batches) -> list[list[tuple[int, str, tuple[int, ...]]]]:
    return [sorted((d.track, d.cls, tuple(round(v) for v in d.box)) for d in b.detections) for b in batches]


def test_parallel_sessions_and_grouped_frames_track_as_one_frame_at_a_time():
    """Replay's speed-up (several frames of a camera per call, model calls side by side on two
    sessions) must not change a single box or track id against the one-by-one loop."""
    frames = [
        Frame(camera="pets", index=i, t=i / 7.0, ts=1000.0 + i / 7.0, image=img)
        for i, img in enumerate(pets_frames(20))
    ]
    one = Detector(MODEL, batch_size=2)
    sequential = [b for f in frames for b in one.track([f], 7.0)]
    two = Detector(MODEL, batch_size=2, parallel=2)
    assert two.parallel == 2
    grouped = two.track(frames[:13], 7.0) + two.track(frames[13:], 7.0)
    assert [b.index for b in grouped] == list(range(20))
    assert sum(len(b.detections) for b in sequential) > 20, "the clip has people to track"
    assert _tracks(grouped) == _tracks(sequential)


def test_units_on_their_own_tracker_start_at_their_own_threshold_with_ids_apart():
    from ultralytics.engine.results import Boxes

    from detectors.yolo import TrackerParams, _Trackers

    image = np.zeros((480, 640, 3), np.uint8)

    def frame(k: int):  # a person (class 0, conf 0.9) and a weak unit (class 1, conf 0.3)
        rows = [[100 + 5 * k, 100, 160 + 5 * k, 260, 0.9, 0], [300 + 4 * k, 200, 316 + 4 * k, 212, 0.3, 1]]
        return Boxes(np.array(rows, np.float32), image.shape[:2])

    shared = _Trackers(TrackerParams(), None, 1, 10.0)
    # fuse_score (IoU times score) would push a 0.3 unit that moves past the match threshold
    split = _Trackers(TrackerParams(), TrackerParams(high=0.25, new=0.25, fuse_score=False), 1, 10.0)
    for k in range(5):
        one, two = shared.update(frame(k), image), split.update(frame(k), image)
    assert sorted(one[:, 6].tolist()) == [0.0], "one tracker at 0.4 never starts the weak unit"
    by_class = {int(row[6]): int(row[4]) for row in two}
    assert set(by_class) == {0, 1}, "its own tracker at 0.25 follows the unit"
    assert by_class[0] % 2 == 1 and by_class[1] % 2 == 0
