"""The int8 models: shipped for the very .pt beside them, as accurate as float32, never stale."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from conftest import PETS_LABELS, PETS_VIDEO

from detectors.training import match_detections, read_mot
from detectors.yolo import MODELS_DIR, Detector, int8_for, int8_path

BUNDLED = sorted(p for p in MODELS_DIR.glob("*.pt"))


@pytest.mark.parametrize("pt", BUNDLED, ids=lambda p: p.stem)
def test_each_bundled_model_ships_an_int8_model_of_its_own_bytes(pt):
    assert int8_for(pt) == int8_path(pt), f"re-run: bondwatch quantize {pt} --images <training images>"


def test_an_int8_model_of_another_pt_is_not_used(tmp_path):
    pt = tmp_path / "model.pt"
    shutil.copy2(MODELS_DIR / "bondwatch-person.pt", pt)
    shutil.copy2(MODELS_DIR / "bondwatch-person.int8.onnx", int8_path(pt))
    assert int8_for(pt) == int8_path(pt)

    pt.write_bytes(pt.read_bytes() + b"\0")  # retrained, say, without quantizing again
    assert int8_for(pt) is None
    detector = Detector(pt, cache_dir=tmp_path / "cache")
    assert detector.runtime.suffix == ".onnx" and ".int8." not in detector.runtime.name


@pytest.mark.slow
def test_int8_finds_the_people_float32_finds(tmp_path):
    """Frames 321-400 of PETS (not trained on), every 4th: same recall at IoU 0.5 within 2 points."""
    labels = read_mot(PETS_LABELS)
    cap = cv2.VideoCapture(str(PETS_VIDEO))
    images, truth = [], []
    for number in range(1, 401):
        ok, image = cap.read()
        assert ok
        if number > 320 and number % 4 == 0:
            images.append(image)
            boxes = [b for b in labels.get(number, []) if b.active]
            truth.append(np.array([[0, b.left, b.top, b.left + b.width, b.top + b.height] for b in boxes]))
    cap.release()
    pt = MODELS_DIR / "bondwatch-person.pt"
    recall = {}
    for int8 in (True, False):
        detector = Detector(pt, int8=int8, cache_dir=tmp_path)
        assert (".int8." in detector.runtime.name) == int8
        found = []
        for result in detector._predict(images):
            boxes = result.boxes.cpu().numpy()
            keep = boxes.conf >= 0.4  # the trackers' thresholds (TrackerParams)
            found.append(np.column_stack([boxes.xyxy[keep], boxes.conf[keep], boxes.cls[keep]]))
        recall[int8] = match_detections(found, truth)[0].recall
    assert recall[False] > 0.85
    assert recall[True] >= recall[False] - 0.02, recall
