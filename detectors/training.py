"""Fit the person detector to a site's camera from a few minutes of labelled footage.

A site collects labelled frames from one of its own cameras (MOTChallenge format), and
this module turns them into an ultralytics dataset, trains a nano YOLO from scratch,
exports it to ONNX and writes a model card.  Nothing here downloads anything: the
model is built from its YAML, plots (which fetch a font) are off and AMP (whose check
fetches weights) is off, so training works on an air-gapped workshop server.

Besides ``detectors/yolo.py`` this is the only module that imports ``ultralytics``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

logger = logging.getLogger(__name__)

CLASS_NAMES: tuple[str, ...] = ("person",)
DEFAULT_SPLIT: dict[str, tuple[int, int]] = {"train": (1, 320), "val": (321, 400)}
RUN_NAME = "run"


class TrainingError(Exception):
    """Raised when labels, video or a training run cannot be used; the message says why."""


@dataclass(frozen=True)
class MotBox:
    """One MOTChallenge label line: a person box in pixels of the labelled frame."""

    frame: int
    track: int
    left: float
    top: float
    width: float
    height: float
    active: bool


@dataclass(frozen=True)
class TrainResult:
    """Where a finished run left its artefacts, and how well it scored on validation."""

    best_pt: Path
    onnx: Path
    card: Path
    metrics: dict[str, float]


def read_mot(gt_file: Path) -> dict[int, list[MotBox]]:
    """Read a MOTChallenge ground-truth file into boxes per 1-based frame number."""
    boxes: dict[int, list[MotBox]] = defaultdict(list)
    for lineno, line in enumerate(Path(gt_file).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        try:
            box = MotBox(
                frame=int(fields[0]),
                track=int(fields[1]),
                left=float(fields[2]),
                top=float(fields[3]),
                width=float(fields[4]),
                height=float(fields[5]),
                active=int(float(fields[6])) != 0,
            )
        except (IndexError, ValueError) as exc:
            raise TrainingError(f"{gt_file}:{lineno}: not a MOTChallenge line: {line!r}") from exc
        boxes[box.frame].append(box)
    return dict(boxes)


def yolo_line(box: MotBox, width: int, height: int) -> str | None:
    """Convert a pixel box to a YOLO label line, clipped to the frame; None if nothing is left.

    Ignored boxes (active=0, a person mostly hidden) are kept as persons: they are real
    people, and leaving them unlabelled would teach the model that visible body parts are
    background.  A detector that still finds a half-hidden person helps the tracker.
    """
    x1 = min(max(box.left, 0.0), width)
    y1 = min(max(box.top, 0.0), height)
    x2 = min(max(box.left + box.width, 0.0), width)
    y2 = min(max(box.top + box.height, 0.0), height)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
    w, h = (x2 - x1) / width, (y2 - y1) / height
    return f"0 {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def mot_to_yolo(
    video: Path,
    gt_file: Path,
    out_dir: Path,
    frames: tuple[int, int] = (1, 400),
    split: dict[str, tuple[int, int]] | None = None,
) -> Path:
    """Write labelled frames of ``video`` as an ultralytics dataset and return its data.yaml.

    ``frames`` bounds the 1-based frame numbers that may be read at all; ``split`` maps
    ``train``/``val`` to inclusive frame ranges inside it.  Frames past ``frames[1]`` are
    never decoded, so footage held out for judging cannot leak into training.
    """
    split = split or DEFAULT_SPLIT
    first, last = frames
    for name, (lo, hi) in split.items():
        if lo < first or hi > last or lo > hi:
            raise TrainingError(f"split {name}={lo}-{hi} lies outside frames {first}-{last}")
    labels = read_mot(gt_file)
    out_dir = Path(out_dir).resolve()
    for name in split:
        for sub in ("images", "labels"):
            target = out_dir / sub / name
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)

    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise TrainingError(f"cannot open video {video}")
    try:
        number = 0
        while number < last:
            ok, image = capture.read()
            if not ok:
                raise TrainingError(f"{video} ends at frame {number}, labels need {last}")
            number += 1
            part = next((n for n, (lo, hi) in split.items() if lo <= number <= hi), None)
            if part is None:
                continue
            height, width = image.shape[:2]
            stem = f"{number:06d}"
            cv2.imwrite(str(out_dir / "images" / part / f"{stem}.png"), image)
            lines = [yolo_line(b, width, height) for b in labels.get(number, [])]
            text = "\n".join(line for line in lines if line)
            (out_dir / "labels" / part / f"{stem}.txt").write_text(text + "\n" if text else "")
    finally:
        capture.release()

    data_yaml = out_dir / "data.yaml"
    data = {
        "path": str(out_dir),
        **{name: f"images/{name}" for name in split},
        "names": dict(enumerate(CLASS_NAMES)),
        "frames": {name: list(bounds) for name, bounds in split.items()},
    }
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    logger.info("wrote dataset %s (%s)", data_yaml, split)
    return data_yaml


def _finished(last_pt: Path) -> bool:
    """ultralytics marks a completed run by stripping last.pt, which sets its epoch to -1."""
    checkpoint = torch.load(last_pt, map_location="cpu", weights_only=False)
    return checkpoint.get("epoch", -1) == -1


def train(
    data_yaml: Path,
    out_dir: Path,
    epochs: int = 60,
    imgsz: int = 416,
    model_yaml: str = "yolo11n.yaml",
    resume: bool = True,
    batch: int = 16,
    workers: int = 2,
    close_mosaic: int = 10,
    hours: float | None = None,
) -> TrainResult:
    """Train (or resume) a person detector, export it to ONNX and write its model card.

    A run interrupted on a busy CPU picks up from ``last.pt``; a run that already
    finished is not repeated, only exported and documented again.  With ``hours`` set,
    ultralytics measures the first epoch and fits the epoch count (and learning-rate
    schedule) to that time budget, which is what a shared CPU needs.
    """
    from ultralytics import YOLO

    out_dir = Path(out_dir).resolve()
    run_dir = out_dir / RUN_NAME
    last_pt = run_dir / "weights" / "last.pt"
    best_pt = run_dir / "weights" / "best.pt"
    started = time.monotonic()
    if resume and last_pt.exists() and _finished(last_pt):
        logger.info("run %s already finished; exporting only", run_dir)
    elif resume and last_pt.exists():
        logger.info("resuming %s", last_pt)
        YOLO(str(last_pt)).train(resume=True, workers=workers, plots=False)
    else:
        YOLO(model_yaml).train(
            data=str(data_yaml),
            epochs=epochs,
            imgsz=imgsz,
            batch=batch,
            workers=workers,
            cache="ram",
            device="cpu",
            amp=False,
            plots=False,
            pretrained=False,
            close_mosaic=close_mosaic,
            time=hours,
            project=str(out_dir),
            name=RUN_NAME,
            exist_ok=True,
            patience=max(epochs, 100),
            deterministic=False,  # bit-exact repeats are not worth slower CPU kernels
            verbose=True,
        )
    train_seconds = time.monotonic() - started
    if not best_pt.exists():
        raise TrainingError(f"training left no {best_pt}")

    model = YOLO(str(best_pt))
    train_args = model.ckpt.get("train_args", {}) if model.ckpt else {}
    imgsz = int(train_args.get("imgsz", imgsz))
    metrics = validate(best_pt, data_yaml, imgsz)
    onnx_path = export_onnx(best_pt, imgsz)
    card = write_card(
        out_dir / "model-card.md",
        data_yaml=Path(data_yaml),
        train_args=train_args,
        metrics=metrics,
        wall_seconds=_wall_seconds(run_dir) or train_seconds,
    )
    return TrainResult(best_pt=best_pt, onnx=onnx_path, card=card, metrics=metrics)


def _wall_seconds(run_dir: Path) -> float | None:
    """Total training time as ultralytics logged it per epoch (survives resumes)."""
    results = run_dir / "results.csv"
    if not results.exists():
        return None
    rows = results.read_text().splitlines()
    header = [h.strip() for h in rows[0].split(",")]
    if "time" not in header or len(rows) < 2:
        return None
    return float(rows[-1].split(",")[header.index("time")])


def validate(weights: Path, data_yaml: Path, imgsz: int) -> dict[str, float]:
    """Score weights on the dataset's val split; per-class figures (one class: person)."""
    from ultralytics import YOLO

    result = YOLO(str(weights)).val(
        data=str(data_yaml), imgsz=imgsz, batch=8, device="cpu", plots=False, workers=0
    )
    precision, recall, map50, map5095 = result.class_result(0)
    return {
        "precision": float(precision),
        "recall": float(recall),
        "mAP50": float(map50),
        "mAP50-95": float(map5095),
    }


def export_onnx(weights: Path, imgsz: int) -> Path:
    """Export a fixed-size ONNX (opset 17 loads in onnxruntime >= 1.14), simplified if possible."""
    from ultralytics import YOLO

    try:
        path = YOLO(str(weights)).export(
            format="onnx", imgsz=imgsz, opset=17, dynamic=False, simplify=True, device="cpu"
        )
    except Exception:  # onnxslim is optional; an unsimplified graph runs the same
        logger.warning("simplified ONNX export failed; exporting without simplification")
        path = YOLO(str(weights)).export(
            format="onnx", imgsz=imgsz, opset=17, dynamic=False, simplify=False, device="cpu"
        )
    return Path(path)


def write_card(
    path: Path,
    data_yaml: Path,
    train_args: dict,
    metrics: dict[str, float],
    wall_seconds: float,
) -> Path:
    """Write the model card that ships next to the weights, so a site knows what it runs."""
    data = yaml.safe_load(data_yaml.read_text())
    frames = data.get("frames", {})
    split = ", ".join(f"{name} = frames {lo}-{hi}" for name, (lo, hi) in frames.items())
    size = train_args.get("imgsz")
    scores = " | ".join(f"{metrics[key]:.3f}" for key in ("precision", "recall", "mAP50", "mAP50-95"))
    text = f"""# bondwatch-person

A YOLO11n person detector trained from scratch (no pretrained weights) on a site
calibration set: the PETS 2009 S2.L1 view-1 sequence (`vtest.avi`, 768x576, 10 fps)
with its MOTChallenge labels for frames 1-400.

| | |
| --- | --- |
| classes | `{dict(enumerate(CLASS_NAMES))}` (class 0 = `person`) |
| architecture | `{train_args.get("model", "yolo11n.yaml")}` from scratch, nc=1 |
| data | {split}; frames 401-795 never read for training |
| labels | MOTChallenge boxes clipped to the frame; `active=0` (mostly hidden) boxes kept |
| epochs | {train_args.get("epochs")} (close_mosaic {train_args.get("close_mosaic")}) |
| imgsz | {size} (the ONNX expects a fixed 1x3x{size}x{size} float input, RGB 0-1) |
| batch | {train_args.get("batch")} |
| device | CPU, wall time {wall_seconds / 60:.1f} min |

## Validation (frames 321-400, all boxes incl. `active=0`)

| class | precision | recall | mAP50 | mAP50-95 |
| --- | --- | --- | --- | --- |
| person | {scores} |

## Reproduce

```bash
python -m detectors.training \\
    --video ../shared/data/pets2009-s2l1/vtest.avi \\
    --gt ../shared/data/pets2009-s2l1/gt-frames-0001-0400.txt \\
    --work .work/person --epochs {train_args.get("epochs")} --imgsz {train_args.get("imgsz")}
python bench/model_quality.py   # AP50 and true-positive confidence figures
```

Training resumes from `.work/person/run/weights/last.pt` when interrupted.
"""
    path.write_text(text)
    return path


def predict_boxes(
    weights: Path, images: list[np.ndarray], imgsz: int | None = None, conf: float = 0.001
) -> list[np.ndarray]:
    """Run a trained model (.pt or .onnx) over BGR images; one (n, 5) x1,y1,x2,y2,conf array each.

    This is for measuring a model (benches, tests); the live pipeline uses
    ``detectors/yolo.py``.  A low default ``conf`` keeps the whole precision-recall curve.
    """
    from ultralytics import YOLO

    model = YOLO(str(weights), task="detect")
    out = []
    for image in images:
        kwargs = {"imgsz": imgsz} if imgsz else {}
        result = model.predict(image, conf=conf, device="cpu", verbose=False, **kwargs)[0]
        boxes = result.boxes
        out.append(
            np.concatenate([boxes.xyxy.numpy(), boxes.conf.numpy()[:, None]], axis=1)
            if len(boxes)
            else np.zeros((0, 5), dtype=np.float32)
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: build the dataset from MOT labels, train, export, write the card."""
    parser = argparse.ArgumentParser(prog="python -m detectors.training", description=main.__doc__)
    parser.add_argument("--video", type=Path, required=True, help="labelled camera footage")
    parser.add_argument("--gt", type=Path, required=True, help="MOTChallenge ground truth file")
    parser.add_argument("--work", type=Path, default=Path(".work/person"), help="work directory")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--imgsz", type=int, default=416)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--close-mosaic", type=int, default=10)
    parser.add_argument("--hours", type=float, help="time budget; overrides --epochs")
    parser.add_argument("--no-resume", action="store_true", help="start over even if a run exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        data_yaml = args.work / "dataset" / "data.yaml"
        if args.no_resume or not data_yaml.exists():
            data_yaml = mot_to_yolo(args.video, args.gt, args.work / "dataset")
        result = train(
            data_yaml,
            args.work,
            epochs=args.epochs,
            imgsz=args.imgsz,
            resume=not args.no_resume,
            batch=args.batch,
            close_mosaic=args.close_mosaic,
            hours=args.hours,
        )
    except TrainingError as exc:
        parser.exit(2, f"error: {exc}\n")
    print(f"weights {result.best_pt}\nonnx {result.onnx}\ncard {result.card}")
    print(" ".join(f"{k}={v:.3f}" for k, v in result.metrics.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
