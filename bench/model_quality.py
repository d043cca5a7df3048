"""How good is the shipped person model on PETS, and how confident are its hits?

Prints AP50 against the MOTChallenge labels (``active=0`` boxes are ignore regions:
a detection on one is neither a hit nor a false alarm), precision/recall at a few
confidence thresholds, and the confidence distribution of true positives — the lead
sets the tracker's thresholds (ByteTrack ``new_track_thresh``) below typical hit
confidence.  With ``--draw`` it also saves predictions on unlabelled frames 401-795 as
PNGs, for a human look at generalisation (those frames are never labelled or scored).

    python bench/model_quality.py [--model models/bondwatch-person.onnx] [--frames 321 400]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detectors.training import iou, predict_boxes, read_mot  # noqa: E402

logger = logging.getLogger(__name__)

PETS = REPO.parent / "shared" / "data" / "pets2009-s2l1"
IOU_MATCH = 0.5
GREEN = (0, 255, 0)


def read_frames(video: Path, numbers: list[int]) -> dict[int, np.ndarray]:
    """Decode the requested 1-based frame numbers (label frame n = n-th decoded frame)."""
    wanted = set(numbers)
    frames: dict[int, np.ndarray] = {}
    capture = cv2.VideoCapture(str(video))
    number = 0
    while number < max(wanted):
        ok, image = capture.read()
        if not ok:
            break
        number += 1
        if number in wanted:
            frames[number] = image
    capture.release()
    return frames


def match_frame(
    dets: np.ndarray, gt: np.ndarray, ignore: np.ndarray
) -> tuple[list[float], list[float]]:
    """Greedy match by confidence; returns confidences of true and of false positives."""
    tp, fp = [], []
    taken = np.zeros(len(gt), dtype=bool)
    for det in dets[np.argsort(-dets[:, 4])]:
        if len(gt):
            overlaps = np.where(taken, -1.0, iou(det, gt))
            best = int(np.argmax(overlaps))
            if overlaps[best] >= IOU_MATCH:
                taken[best] = True
                if not ignore[best]:
                    tp.append(float(det[4]))
                continue
        fp.append(float(det[4]))
    return tp, fp


def average_precision(tp: list[float], fp: list[float], positives: int) -> float:
    """All-point interpolated AP (the VOC/COCO way) from matched confidences."""
    scores = np.array(tp + fp)
    hits = np.array([1] * len(tp) + [0] * len(fp))
    order = np.argsort(-scores, kind="stable")
    hits = hits[order]
    tps, fps = np.cumsum(hits), np.cumsum(1 - hits)
    recall = tps / max(positives, 1)
    precision = tps / np.maximum(tps + fps, 1)
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[1.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.where(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def score(model: Path, first: int, last: int, imgsz: int | None) -> None:
    """Print AP50, P/R at thresholds and the true-positive confidence distribution."""
    labels = read_mot(PETS / "gt-frames-0001-0400.txt")
    numbers = list(range(first, last + 1))
    frames = read_frames(PETS / "vtest.avi", numbers)
    predictions = predict_boxes(model, [frames[n] for n in numbers], imgsz=imgsz)
    tp: list[float] = []
    fp: list[float] = []
    positives = 0
    for number, dets in zip(numbers, predictions, strict=True):
        boxes = labels.get(number, [])
        gt = np.array([[b.left, b.top, b.left + b.width, b.top + b.height] for b in boxes])
        ignore = np.array([not b.active for b in boxes], dtype=bool)
        positives += int((~ignore).sum())
        frame_tp, frame_fp = match_frame(dets, gt.reshape(-1, 4), ignore)
        tp += frame_tp
        fp += frame_fp
    print(f"model {model}  frames {first}-{last}  labelled people (active) {positives}")
    print(f"AP50 {average_precision(tp, fp, positives):.3f}")
    tp_conf, fp_conf = np.array(tp), np.array(fp)
    for threshold in (0.1, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7):
        hits = int((tp_conf >= threshold).sum())
        false = int((fp_conf >= threshold).sum())
        print(
            f"conf>={threshold:.2f}  precision {hits / max(hits + false, 1):.3f}"
            f"  recall {hits / max(positives, 1):.3f}  false/frame {false / len(numbers):.2f}"
        )
    confident = tp_conf[tp_conf >= 0.1]
    if len(confident):
        p10, p25, median = np.percentile(confident, [10, 25, 50])
        print(
            f"true-positive conf (of hits >= 0.1, n={len(confident)}): "
            f"p10 {p10:.3f}  p25 {p25:.3f}  median {median:.3f}"
        )


def draw(model: Path, numbers: list[int], out_dir: Path, imgsz: int | None) -> None:
    """Save unlabelled frames with predicted boxes (conf >= 0.25) for a visual check."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = read_frames(PETS / "vtest.avi", numbers)
    predictions = predict_boxes(model, [frames[n] for n in numbers], imgsz=imgsz, conf=0.25)
    for number, dets in zip(numbers, predictions, strict=True):
        image = frames[number].copy()
        for x1, y1, x2, y2, conf in dets:
            cv2.rectangle(image, (int(x1), int(y1)), (int(x2), int(y2)), GREEN, 2)
            label_at = (int(x1), int(y1) - 3)
            cv2.putText(image, f"{conf:.2f}", label_at, cv2.FONT_HERSHEY_SIMPLEX, 0.45, GREEN, 1)
        path = out_dir / f"pred-{number:04d}.png"
        cv2.imwrite(str(path), image)
        print(f"{path}: {len(dets)} people at conf>=0.25")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "bondwatch-person.onnx")
    parser.add_argument(
        "--frames", type=int, nargs=2, default=(321, 400), metavar=("FIRST", "LAST")
    )
    parser.add_argument("--imgsz", type=int, help="only for .pt models; ONNX has a fixed size")
    parser.add_argument(
        "--draw", type=int, nargs="*", metavar="FRAME", help="also draw unlabelled frames 401-795"
    )
    parser.add_argument("--draw-dir", type=Path, default=REPO / ".work" / "predictions")
    args = parser.parse_args()
    score(args.model, args.frames[0], args.frames[1], args.imgsz)
    if args.draw is not None:
        numbers = args.draw or [450, 550, 650, 750]
        if min(numbers) <= 400:
            parser.error("--draw is for unlabelled frames 401-795")
        draw(args.model, numbers, args.draw_dir, args.imgsz)


if __name__ == "__main__":
    main()
