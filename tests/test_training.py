"""The site-calibration dataset conversion and the shipped person model, on real PETS footage."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from detectors.training import (
    MotBox,
    MotSource,
    TrainingError,
    check_disjoint,
    crop_labels,
    crop_split,
    match_detections,
    mot_to_yolo,
    parse_mot_source,
    predict_boxes,
    yolo_line,
)
from sim.dataset import read_labels
from sim.render import render
from sim.scenario import load_scenario
from sim.video import read_frames

PETS = Path(__file__).parents[1].parent / "shared" / "data" / "pets2009-s2l1"
VIDEO = PETS / "vtest.avi"
GT = PETS / "gt-frames-0001-0400.txt"
MODEL = Path(__file__).parents[1] / "models" / "bondwatch-person.onnx"


def gt_lines(frame: int) -> list[list[str]]:
    return [f for f in (line.split(",") for line in GT.read_text().splitlines()) if f[0] == str(frame)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pets-yolo")
    return mot_to_yolo(VIDEO, GT, out, frames=(1, 150), split={"train": (141, 147), "val": (148, 150)})


def test_dataset_has_exactly_the_split_frames(dataset: Path) -> None:
    root = dataset.parent
    data = yaml.safe_load(dataset.read_text())
    assert data["names"] == {0: "person"}
    assert Path(data["path"]) == root
    train = sorted(p.stem for p in (root / data["train"]).glob("*.png"))
    val = sorted(p.stem for p in (root / data["val"]).glob("*.png"))
    assert train == [f"{n:06d}" for n in range(141, 148)]
    assert val == [f"{n:06d}" for n in range(148, 151)]
    labels = sorted(p.stem for p in root.glob("labels/*/*.txt"))
    assert labels == [f"{n:06d}" for n in range(141, 151)]


def test_known_frame_labels_match_ground_truth(dataset: Path) -> None:
    """Frame 147 holds an active=0 (mostly hidden) person: it is kept as a label."""
    root = dataset.parent
    lines = (root / "labels" / "train" / "000147.txt").read_text().split()
    rows = [lines[i : i + 5] for i in range(0, len(lines), 5)]
    expected = gt_lines(147)
    assert any(f[6] == "0" for f in expected)
    assert len(rows) == len(expected)
    image = cv2.imread(str(root / "images" / "train" / "000147.png"))
    assert image.shape == (576, 768, 3)
    for row, fields in zip(rows, expected, strict=True):
        left, top, width, height = map(float, fields[2:6])
        assert row[0] == "0"
        cx, cy, w, h = map(float, row[1:])
        assert cx == pytest.approx((left + width / 2) / 768, abs=1e-5)
        assert cy == pytest.approx((top + height / 2) / 576, abs=1e-5)
        assert w == pytest.approx(width / 768, abs=1e-5)
        assert h == pytest.approx(height / 576, abs=1e-5)


def test_all_label_coordinates_are_normalised(dataset: Path) -> None:
    values = [
        float(v)
        for path in dataset.parent.glob("labels/*/*.txt")
        for line in path.read_text().splitlines()
        for v in line.split()[1:]
    ]
    assert values
    assert all(0.0 <= v <= 1.0 for v in values)


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((100, 100, 40, 80), "0 0.156250 0.243056 0.052083 0.138889"),
        ((-20, 100, 40, 80), "0 0.013021 0.243056 0.026042 0.138889"),  # clipped at the left
        ((750, 540, 40, 80), "0 0.988281 0.968750 0.023438 0.062500"),  # clipped bottom-right
        ((800, 100, 40, 80), None),  # wholly outside the frame
    ],
)
def test_yolo_line_clips_to_the_frame(box: tuple[float, float, float, float], expected: str | None) -> None:
    left, top, width, height = box
    line = yolo_line(MotBox(1, 1, left, top, width, height, active=True), 768, 576)
    assert line == expected


def test_split_outside_the_readable_frames_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="outside frames"):
        mot_to_yolo(VIDEO, GT, tmp_path, frames=(1, 400), split={"train": (1, 320), "val": (321, 500)})


def test_shipped_model_finds_people_on_pets_frame_100() -> None:
    capture = cv2.VideoCapture(str(VIDEO))
    for _ in range(100):
        ok, image = capture.read()
        assert ok
    capture.release()
    (boxes,) = predict_boxes(MODEL, [image], conf=0.3)
    assert len(boxes) >= 3
    assert (boxes[:, 4] >= 0.3).all()


# --- The bundled person+unit model and `bondwatch train`'s inputs --------------------------

BUNDLED = Path(__file__).parents[1] / "models" / "bondwatch-n.onnx"
BASIC = Path(__file__).parents[1] / "examples" / "scenarios" / "basic.yaml"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (f"{VIDEO}={GT}:1-320:2", MotSource(VIDEO, GT, 1, 320, 2)),
        (f"{VIDEO}={GT}:321-400", MotSource(VIDEO, GT, 321, 400, 1)),
        (f"{VIDEO}={GT}:321-500", "labelled frames 1-400"),  # past the labels: never read
        (f"{VIDEO}={GT}:0-10", "labelled frames 1-400"),
        (f"{VIDEO}={GT}:1-320:0", "step >= 1"),
        (f"{VIDEO}={GT}", "not VIDEO=GT.txt:FIRST-LAST"),
        (f"{VIDEO}={GT}.missing:1-10", "does not exist"),
    ],
)
def test_mot_source_spec(spec: str, expected: MotSource | str) -> None:
    if isinstance(expected, MotSource):
        assert parse_mot_source(spec) == expected
    else:
        with pytest.raises(TrainingError, match=expected):
            parse_mot_source(spec)


@pytest.mark.parametrize(
    ("val", "overlaps"),
    [((321, 400), False), ((320, 400), True), ((1, 1), True), ((300, 330), True)],
)
def test_held_out_frames_must_not_be_trained_on(val: tuple[int, int], overlaps: bool) -> None:
    train = [MotSource(VIDEO, GT, 1, 320, 2)]
    held = [MotSource(VIDEO, GT, *val)]
    if overlaps:
        with pytest.raises(TrainingError, match="overlap"):
            check_disjoint(train, held)
    else:
        check_disjoint(train, held)


@pytest.fixture(scope="module")
def fresh_sim_frames(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[np.ndarray, np.ndarray]]:
    """Twelve seconds of basic.yaml from a seed no training run uses, every 5th frame.

    Returns (image, truth) pairs; truth rows are cls,x1,y1,x2,y2 of clearly visible objects
    (visibility >= 0.5, both sides >= 8 px), the ones a usable detector must find.
    """
    out = tmp_path_factory.mktemp("fresh-sim")
    scenario = load_scenario(BASIC)
    layout = scenario.layout.model_copy(update={"duration_s": 12.0})
    render(scenario.model_copy(update={"layout": layout}), out, seed=90210)
    labels = read_labels(out / "labels" / "cam1.txt")
    frames = []
    for index, _, image in read_frames(out / "cam1.mp4"):
        if index % 5:
            continue
        rows = [
            (cls, left, top, left + w, top + h)
            for _, cls, left, top, w, h, vis in labels.get(index + 1, [])
            if vis >= 0.5 and min(w, h) >= 8
        ]
        frames.append((image, np.array(rows, dtype=np.float32).reshape(-1, 5)))
    return frames


def _bundled_matches(frames: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    dets = predict_boxes(BUNDLED, [image for image, _ in frames], conf=0.25, with_class=True)
    return match_detections(dets, [rows for _, rows in frames])


def test_bundled_model_finds_people_on_a_fresh_sim_scene(
    fresh_sim_frames: list[tuple[np.ndarray, np.ndarray]],
) -> None:
    person = _bundled_matches(fresh_sim_frames)[0]
    assert person.labels >= 20  # the scene really shows people
    assert person.recall >= 0.9, person
    assert person.precision >= 0.4, person


@pytest.mark.xfail(
    strict=True,
    reason="bondwatch-n v4 (60 CPU epochs) still misses units: held-out unit mAP50 0.835, bar 0.90",
)
def test_bundled_model_finds_units_on_a_fresh_sim_scene(
    fresh_sim_frames: list[tuple[np.ndarray, np.ndarray]],
) -> None:
    unit = _bundled_matches(fresh_sim_frames).get(1)
    assert unit is not None and unit.labels >= 10  # the scene really shows units
    assert unit.recall >= 0.8, unit
    assert unit.precision >= 0.8, unit


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((400, 100, 440, 130), "1 0.156250 0.212963 0.062500 0.055556"),  # inside: moved into the crop
        ((950, 100, 1000, 130), None),  # 20 % inside: dropped
        ((310, 100, 350, 130), "1 0.023438 0.212963 0.046875 0.055556"),  # 75 % inside: clipped
    ],
)
def test_crop_labels_moves_clips_and_drops_boxes(box: tuple[int, ...], expected: str | None) -> None:
    x1, y1, x2, y2 = box
    line = f"1 {(x1 + x2) / 2 / 1280} {(y1 + y2) / 2 / 720} {(x2 - x1) / 1280} {(y2 - y1) / 720}"
    out = crop_labels([line], (1280, 720), (320, 0, 640, 540))
    assert out == ([expected] if expected else [])


def test_crop_split_keeps_the_window_with_the_units_at_the_run_size(tmp_path: Path) -> None:
    for sub in ("images", "labels"):
        (tmp_path / sub / "train").mkdir(parents=True)
    image = np.zeros((720, 1280, 3), np.uint8)
    cv2.rectangle(image, (1180, 600), (1219, 629), (255, 255, 255), -1)  # a 40x30 unit, right
    cv2.imwrite(str(tmp_path / "images" / "train" / "a.png"), image)
    unit = f"1 {1200 / 1280} {615 / 720} {40 / 1280} {30 / 720}"
    person = "0 0.1 0.5 0.05 0.3"  # far left
    (tmp_path / "labels" / "train" / "a.txt").write_text(f"{unit}\n{person}\n")

    assert crop_split(tmp_path, "train", run_size=960, crop=640) == 1
    crop = cv2.imread(str(tmp_path / "images" / "train" / "a.png"))
    assert crop.shape == (540, 640, 3)  # 1280x720 -> 960x540, the right-hand 640 columns
    (line,) = (tmp_path / "labels" / "train" / "a.txt").read_text().splitlines()
    cls, cx, cy, w, h = line.split()
    assert cls == "1", "the person outside the window is gone"
    assert abs(float(w) * 640 - 30) < 1 and abs(float(h) * 540 - 22.5) < 1, "unit at 3/4 size"
    assert crop[int(float(cy) * 540), int(float(cx) * 640)].min() > 200, "the label is on the unit"
