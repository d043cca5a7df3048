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
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from detectors.yolo import RUN_IMGSZ_KEY, trained_imgsz  # noqa: E402

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


def _trainable(weights: str) -> Any:
    """A YOLO model for ``.train``, which then uses every core.

    ultralytics caps torch at ``cpu_count - 1`` threads for CPU training (`select_device`), and
    its CPU dataloader then works in the main process: on a 2-core machine one core sat idle.
    A callback at the start of training lifts the cap again.
    """
    from ultralytics import YOLO

    model = YOLO(weights)
    model.add_callback("on_train_start", lambda _: torch.set_num_threads(os.cpu_count() or 1))
    return model


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
        _trainable(str(last_pt)).train(resume=True, workers=workers, plots=False)
    else:
        _trainable(model_yaml).train(
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
    weights: Path,
    images: list[np.ndarray],
    imgsz: int | None = None,
    conf: float = 0.001,
    with_class: bool = False,
) -> list[np.ndarray]:
    """Run a trained model (.pt or .onnx) over BGR images; one (n, 5) x1,y1,x2,y2,conf array each.

    This is for measuring a model (benches, tests); the live pipeline uses
    ``detectors/yolo.py``.  A low default ``conf`` keeps the whole precision-recall curve.
    ``with_class`` appends the class index as a sixth column, for multi-class models. A ``.pt``
    runs at the size it runs at in the product (`trained_imgsz`) unless ``imgsz`` says otherwise.
    """
    from ultralytics import YOLO

    model = YOLO(str(weights), task="detect")
    if imgsz is None and Path(weights).suffix == ".pt":
        imgsz = trained_imgsz(Path(weights))
    out = []
    for image in images:
        kwargs = {"imgsz": imgsz} if imgsz else {}
        result = model.predict(image, conf=conf, device="cpu", verbose=False, **kwargs)[0]
        boxes = result.boxes
        columns = [boxes.xyxy.numpy(), boxes.conf.numpy()[:, None]]
        if with_class:
            columns.append(boxes.cls.numpy()[:, None])
        out.append(np.concatenate(columns, axis=1).astype(np.float32))
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


# --- The bundled multi-class model: simulator scenes plus labelled site footage ----------

BUNDLED_NAMES: dict[int, str] = {0: "person", 1: "unit"}
IMAGE_SUFFIXES = {".jpg", ".png"}


@dataclass(frozen=True)
class MotSource:
    """Labelled frames ``first``-``last`` (1-based, inclusive) of a video, every ``step``-th."""

    video: Path
    gt: Path
    first: int
    last: int
    step: int = 1

    @property
    def label(self) -> str:
        every = f", step {self.step}" if self.step > 1 else ""
        return f"`{self.video.name}` frames {self.first}-{self.last}{every}"


@dataclass(frozen=True)
class EvalScore:
    """One class on one held-out set: ultralytics' figures plus true-positive confidences."""

    images: int
    instances: int
    precision: float
    recall: float
    map50: float
    map50_95: float
    tp_conf_p10: float
    tp_conf_median: float
    recall_at_04: float
    recall_at_05: float


@dataclass(frozen=True)
class BundledResult:
    """The shipped files of a multi-class run and its held-out scores per set and class."""

    weights: Path
    onnx: Path
    card: Path
    scores: dict[str, dict[str, EvalScore]]


def parse_mot_source(text: str) -> MotSource:
    """Parse ``VIDEO=GT.txt:FIRST-LAST[:STEP]``; frames past the labelled ones are refused."""
    try:
        video, rest = text.split("=", 1)
        gt, frames, *step = rest.rsplit(":", 2) if rest.count(":") >= 2 else rest.rsplit(":", 1)
        first, last = (int(v) for v in frames.split("-"))
        source = MotSource(Path(video), Path(gt), first, last, int(step[0]) if step else 1)
    except ValueError as exc:
        raise TrainingError(f"{text!r} is not VIDEO=GT.txt:FIRST-LAST[:STEP]") from exc
    for path in (source.video, source.gt):
        if not path.is_file():
            raise TrainingError(f"{path} does not exist")
    labelled = max(read_mot(source.gt), default=0)
    if not 1 <= source.first <= source.last <= labelled or source.step < 1:
        raise TrainingError(f"{text!r}: frames must lie within the labelled frames 1-{labelled}, step >= 1")
    return source


def check_disjoint(train: list[MotSource], val: list[MotSource]) -> None:
    """Refuse validation frames that training also reads: held-out must mean held out."""
    for held in val:
        for seen in train:
            same = held.video.resolve() == seen.video.resolve()
            if same and held.first <= seen.last and seen.first <= held.last:
                raise TrainingError(
                    f"validation frames {held.first}-{held.last} of {held.video} overlap "
                    f"training frames {seen.first}-{seen.last}"
                )


def _link(src: Path, dst: Path) -> None:
    """Hard-link (same disk, no copy) or copy a file into the merged dataset."""
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _add_split(images: Path, prefix: str, out: Path, split: str, keep=lambda _: True) -> int:
    """Link one split's images and labels (``images/x`` -> ``labels/x``) under ``out``."""
    count = 0
    for image in sorted(images.iterdir()):
        if image.suffix not in IMAGE_SUFFIXES or not keep(image):
            continue
        label = images.parent.parent / "labels" / images.name / f"{image.stem}.txt"
        _link(image, out / "images" / split / f"{prefix}{image.name}")
        _link(label, out / "labels" / split / f"{prefix}{image.stem}.txt")
        count += 1
    return count


def crop_windows(width: int, height: int, crop: int) -> list[tuple[int, int]]:
    """Top-left corners of the crop positions tried in a picture: left, centre, right
    (and top, middle, bottom when the picture is taller than the crop)."""
    xs = sorted({0, max(0, (width - crop) // 2), max(0, width - crop)})
    ys = sorted({0, max(0, (height - crop) // 2), max(0, height - crop)})
    return [(x, y) for y in ys for x in xs]


def crop_labels(lines: list[str], size: tuple[int, int], window: tuple[int, int, int, int]) -> list[str]:
    """YOLO label lines of a picture of ``size`` (w, h), re-expressed in ``window``
    (x, y, w, h): boxes clipped to it, dropped when less than 40 % of them is inside."""
    width, height = size
    x0, y0, cw, ch = window
    out = []
    for line in lines:
        cls, cx, cy, bw, bh = line.split()
        w, h = float(bw) * width, float(bh) * height
        left, top = float(cx) * width - w / 2, float(cy) * height - h / 2
        x1, y1 = max(left, x0), max(top, y0)
        x2, y2 = min(left + w, x0 + cw), min(top + h, y0 + ch)
        if x2 - x1 < 2 or y2 - y1 < 2 or (x2 - x1) * (y2 - y1) < 0.4 * w * h:
            continue
        out.append(f"{cls} {((x1 + x2) / 2 - x0) / cw:.6f} {((y1 + y2) / 2 - y0) / ch:.6f} "
                   f"{(x2 - x1) / cw:.6f} {(y2 - y1) / ch:.6f}")  # fmt: skip
    return out


def crop_split(out: Path, split: str, run_size: int, crop: int, unit: int = 1) -> int:
    """Replace every picture of ``out``'s split by one ``crop``-pixel window of it, after
    resizing it so its long side is ``run_size``: the size the model will see it at.

    Training at ``crop`` pixels then costs what training at that size costs, while small
    objects are learnt at the size they have when the model runs at ``run_size``. The window
    kept is the one holding the most units; ties go round the positions by picture.
    """
    count = 0
    for k, image_path in enumerate(sorted((out / "images" / split).iterdir())):
        label_path = out / "labels" / split / f"{image_path.stem}.txt"
        image = cv2.imread(str(image_path))
        h, w = image.shape[:2]
        r = run_size / max(h, w)
        image = cv2.resize(image, (round(w * r), round(h * r)), interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
        lines = [line for line in label_path.read_text().splitlines() if line.strip()]
        windows = [(x, y, min(crop, w), min(crop, h)) for x, y in crop_windows(w, h, crop)]

        def units(window: tuple[int, int, int, int], lines: list[str] = lines, size=(w, h)) -> int:
            return sum(line.split()[0] == str(unit) for line in crop_labels(lines, size, window))

        most = max(units(window) for window in windows)
        best = [window for window in windows if units(window) == most]
        x, y, cw, ch = best[k % len(best)]
        image_path.unlink()  # hard links into the source exports: never write through them
        label_path.unlink()
        cv2.imwrite(str(image_path), image[y : y + ch, x : x + cw])
        kept = crop_labels(lines, (w, h), (x, y, cw, ch))
        label_path.write_text("".join(line + "\n" for line in kept))
        count += 1
    return count


def _mot_part(source: MotSource, out_dir: Path) -> Path:
    """Convert one MOT source once (cached by its frame range); returns its images dir."""
    part = out_dir / f"{source.video.stem}-{source.first}-{source.last}"
    images = part / "images" / "all"
    if not (part / "data.yaml").exists():
        mot_to_yolo(
            source.video, source.gt, part, frames=(1, source.last),
            split={"all": (source.first, source.last)},
        )  # fmt: skip
    return images


def _data_yaml(path: Path, root: Path, train: str, val: str, extra: dict | None = None) -> Path:
    data = {"path": str(root.resolve()), "train": train, "val": val, "names": BUNDLED_NAMES}
    path.write_text(yaml.safe_dump({**data, **(extra or {})}, sort_keys=False))
    return path


def merge_datasets(
    sim_data: Path, sim_heldout: Path, mot_train: list[MotSource], mot_val: list[MotSource],
    work: Path, crop: tuple[int, int] | None = None,
) -> Path:  # fmt: skip
    """Build the training dataset and the held-out evaluation sets; returns the training yaml.

    ``sim_data`` is an export of the training scenes (its val split, the tail of each
    training video, picks the best epoch); ``sim_heldout`` an export of scenes from seeds
    never trained on, kept whole in its val split for the final scores only. ``crop`` (run
    size, crop size) cuts the training pictures as in `crop_split`; the held-out sets stay
    whole pictures, scored at the run size.
    """
    check_disjoint(mot_train, mot_val)
    work = work.resolve()
    merged = work / "dataset"
    if merged.exists():
        shutil.rmtree(merged)
    for sub in ("images", "labels"):
        for split in ("train", "val"):
            (merged / sub / split).mkdir(parents=True)
    sim_root = Path(sim_data).resolve().parent
    counts = {
        "sim train": _add_split(sim_root / "images" / "train", "sim_", merged, "train"),
        "sim val": _add_split(sim_root / "images" / "val", "sim_", merged, "val"),
    }
    for kind, sources in (("train", mot_train), ("val", mot_val)):
        for k, source in enumerate(sources):
            images = _mot_part(source, work / "mot")

            def keep(path: Path, s: MotSource = source) -> bool:
                return (int(path.stem) - s.first) % s.step == 0

            counts[f"mot {kind} {k}"] = _add_split(images, f"mot{k}_", merged, kind, keep)
            if kind == "val":
                label = f"{source.video.name} frames {source.first}-{source.last}"
                _data_yaml(work / f"eval-2-mot{k}.yaml", images.parent.parent, "images/all",
                           "images/all", {"label": label})  # fmt: skip
    _data_yaml(work / "eval-1-sim.yaml", Path(sim_heldout).resolve().parent, "images/val",
               "images/val", {"label": "simulator, held-out seeds"})  # fmt: skip
    extra: dict = {"counts": counts}
    if crop:
        for split in ("train", "val"):
            crop_split(merged, split, *crop)
        extra["crop"] = {"run_imgsz": crop[0], "crop": crop[1]}
    train_yaml = _data_yaml(merged / "data.yaml", merged, "images/train", "images/val", extra)
    logger.info("merged dataset %s: %s", merged, counts)
    return train_yaml


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one x1,y1,x2,y2 box against many."""
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / ((box[2] - box[0]) * (box[3] - box[1]) + areas - inter + 1e-9)


@dataclass(frozen=True)
class ClassMatch:
    """One class on some images: confidences of true hits, labels, and false detections."""

    hits: tuple[float, ...]
    labels: int
    false: int

    @property
    def recall(self) -> float:
        return len(self.hits) / self.labels if self.labels else 0.0

    @property
    def precision(self) -> float:
        found = len(self.hits) + self.false
        return len(self.hits) / found if found else 0.0


def match_detections(
    dets: list[np.ndarray], truth: list[np.ndarray], min_iou: float = 0.5
) -> dict[int, ClassMatch]:
    """Greedy per-class matching by confidence over many images.

    ``dets`` rows are x1,y1,x2,y2,conf,cls (``predict_boxes(..., with_class=True)``);
    ``truth`` rows are cls,x1,y1,x2,y2 in pixels.
    """
    hits: dict[int, list[float]] = defaultdict(list)
    labels: dict[int, int] = defaultdict(int)
    false: dict[int, int] = defaultdict(int)
    for found, gt in zip(dets, truth, strict=True):
        for cls in np.unique(np.concatenate([gt[:, 0], found[:, 5]])).astype(int):
            boxes = gt[gt[:, 0] == cls, 1:]
            labels[cls] += len(boxes)
            taken = np.zeros(len(boxes), dtype=bool)
            mine = found[found[:, 5] == cls]
            for det in mine[np.argsort(-mine[:, 4])]:
                overlaps = np.where(taken, -1.0, iou(det, boxes)) if len(boxes) else np.zeros(1)
                best = int(np.argmax(overlaps))
                if overlaps[best] >= min_iou:
                    taken[best] = True
                    hits[cls].append(float(det[4]))
                else:
                    false[cls] += 1
    return {
        cls: ClassMatch(tuple(hits[cls]), labels[cls], false[cls])
        for cls in sorted(labels.keys() | false.keys())
    }


def yolo_truth(label_file: Path, width: int, height: int) -> np.ndarray:
    """A YOLO label file as rows of cls,x1,y1,x2,y2 in pixels."""
    rows = np.array(
        [list(map(float, line.split())) for line in label_file.read_text().splitlines() if line.strip()]
    ).reshape(-1, 5)
    cx, cy, w, h = rows[:, 1] * width, rows[:, 2] * height, rows[:, 3] * width, rows[:, 4] * height
    return np.column_stack([rows[:, 0], cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def true_positive_confidences(
    weights: Path, data_yaml: Path, imgsz: int, conf: float = 0.1
) -> tuple[dict[int, ClassMatch], int]:
    """Per-class matches on a dataset's val images at the detector's floor ``conf``; image count.

    The tracker's thresholds must sit below what true hits typically score; this measures
    that on the same held-out images the card reports.
    """
    data = yaml.safe_load(Path(data_yaml).read_text())
    images_dir = Path(data["path"]) / data["val"]
    paths = sorted(p for p in images_dir.iterdir() if p.suffix in IMAGE_SUFFIXES)
    dets, truth = [], []
    for chunk in range(0, len(paths), 32):  # bounded memory for long held-out sets
        images = [cv2.imread(str(path)) for path in paths[chunk : chunk + 32]]
        dets += predict_boxes(weights, images, imgsz=imgsz, conf=conf, with_class=True)
        for path, image in zip(paths[chunk : chunk + 32], images, strict=True):
            label = images_dir.parent.parent / "labels" / images_dir.name / f"{path.stem}.txt"
            truth.append(yolo_truth(label, image.shape[1], image.shape[0]))
    return match_detections(dets, truth), len(paths)


def score_heldout(weights: Path, data_yaml: Path, imgsz: int) -> dict[str, EvalScore]:
    """ultralytics' per-class validation plus the true-positive confidence profile."""
    from ultralytics import YOLO

    result = YOLO(str(weights)).val(
        data=str(data_yaml), imgsz=imgsz, batch=8, device="cpu", plots=False, workers=0
    )
    profile, images = true_positive_confidences(weights, data_yaml, imgsz)
    seen = {int(c): i for i, c in enumerate(result.box.ap_class_index)}
    scores = {}
    for cls, name in BUNDLED_NAMES.items():
        match = profile.get(cls)
        if cls not in seen or match is None or not match.labels:
            continue
        precision, recall, map50, map5095 = result.class_result(seen[cls])
        hits = np.array(match.hits)
        scores[name] = EvalScore(
            images=images,
            instances=match.labels,
            precision=float(precision),
            recall=float(recall),
            map50=float(map50),
            map50_95=float(map5095),
            tp_conf_p10=float(np.percentile(hits, 10)) if len(hits) else 0.0,
            tp_conf_median=float(np.median(hits)) if len(hits) else 0.0,
            recall_at_04=float((hits >= 0.4).sum() / match.labels),
            recall_at_05=float((hits >= 0.5).sum() / match.labels),
        )
    return scores


def shrink_onnx(path: Path) -> Path:
    """Store the weights as float16 and cast them back to float32 when the graph loads.

    Halves the file (a nano model fits the repository's size budget) while inference
    still runs in float32: onnxruntime folds the casts into constants at session start.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    casts = []
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT or np.prod(init.dims) < 16:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16),
                                       f"{init.name}_fp16")  # fmt: skip
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
        graph.initializer.remove(init)
        graph.initializer.append(half)
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def train_bundled(
    name: str,
    sim_data: Path,
    sim_heldout: Path,
    mot_train: list[MotSource],
    mot_val: list[MotSource],
    work: Path,
    out: Path,
    base: Path | None = None,
    epochs: int = 15,
    imgsz: int = 640,
    batch: int = 16,
    close_mosaic: int = 5,
    hours: float | None = None,
    scale: float = 0.5,
    about: dict[str, str] | None = None,
    run_imgsz: int | None = None,
) -> BundledResult:
    """Train (or resume) the person+unit model, score it on held-out data, ship it to ``out``.

    ``base`` is a trained checkpoint to fine-tune from (matching layers are transferred,
    the head is rebuilt for two classes); without it the model starts from its YAML.
    ``hours`` fits the epoch count to a time budget, as in ``train``; ``scale`` is the
    random zoom range (ultralytics' default 0.5 shrinks a small unit to half).  ``about`` holds
    lines for the card that only the caller knows (sources, the command).  ``run_imgsz``, when
    larger than ``imgsz``, is the size the model runs at: it trains on ``imgsz`` crops of
    pictures resized to it (`crop_split`), is scored and exported at it, and the shipped
    ``.pt`` records it (`RUN_IMGSZ_KEY`) for the detector.
    """
    from ultralytics import YOLO

    work = Path(work).resolve()
    run_dir = work / RUN_NAME
    last_pt, best_pt = run_dir / "weights" / "last.pt", run_dir / "weights" / "best.pt"
    if last_pt.exists() and _finished(last_pt):
        logger.info("run %s already finished; scoring and exporting only", run_dir)
    elif last_pt.exists():
        logger.info("resuming %s", last_pt)
        _trainable(str(last_pt)).train(resume=True, workers=2, plots=False)
    else:
        crop = (run_imgsz, imgsz) if run_imgsz and run_imgsz > imgsz else None
        data_yaml = merge_datasets(sim_data, sim_heldout, mot_train, mot_val, work, crop)
        start = str(base) if base else "yolo11n.yaml"
        _trainable(start).train(
            data=str(data_yaml),
            epochs=epochs,
            imgsz=imgsz,
            batch=batch,
            workers=2,
            cache="ram",
            device="cpu",
            amp=False,
            plots=False,
            pretrained=bool(base),
            close_mosaic=close_mosaic,
            time=hours,
            scale=scale,
            # One optimizer step per batch (ultralytics' nominal 64 takes one per 4 batches of
            # 16) and a one-epoch warmup: a CPU budget of ~10 epochs is only ~270 batches, and
            # with a quarter of them as steps a new class never left its prior (measured).
            nbs=batch,
            warmup_epochs=1,
            project=str(work),
            name=RUN_NAME,
            exist_ok=True,
            patience=max(epochs, 100),
            deterministic=False,
            verbose=True,
        )
    if not best_pt.exists():
        raise TrainingError(f"training left no {best_pt}")
    train_args = YOLO(str(best_pt)).ckpt.get("train_args", {})
    imgsz = int(train_args.get("imgsz", imgsz))
    cropped = yaml.safe_load((work / "dataset" / "data.yaml").read_text()).get("crop")
    if cropped:  # what the run was started with decides, also when it is resumed
        imgsz = int(cropped["run_imgsz"])
    scores = {label: score_heldout(best_pt, path, imgsz) for label, path in _eval_sets(work).items()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{name}.pt"
    checkpoint = torch.load(best_pt, map_location="cpu", weights_only=False)
    if cropped:
        checkpoint[RUN_IMGSZ_KEY] = imgsz
    torch.save(checkpoint, weights)
    onnx_path = out / f"{name}.onnx"
    shutil.move(str(shrink_onnx(export_onnx(best_pt, imgsz))), onnx_path)
    card = write_bundled_card(
        out / f"{name}.md", name, yaml.safe_load((work / "dataset" / "data.yaml").read_text()),
        train_args, scores, run_dir, about or {},
    )  # fmt: skip
    return BundledResult(weights=weights, onnx=onnx_path, card=card, scores=scores)


def _eval_sets(work: Path) -> dict[str, Path]:
    """The held-out sets a run was started with, read back from their data.yamls."""
    sets = {}
    for path in sorted(work.glob("eval-*.yaml")):
        label = yaml.safe_load(path.read_text()).get("label", path.stem)
        sets[label] = path
    return sets


def _epoch_seconds(run_dir: Path) -> list[float]:
    """Seconds each epoch took, from the cumulative times ultralytics logs per epoch."""
    results = run_dir / "results.csv"
    if not results.exists():
        return []
    rows = [r.split(",") for r in results.read_text().splitlines()]
    column = [h.strip() for h in rows[0]].index("time")
    times = [float(r[column]) for r in rows[1:]]
    return [b - a for a, b in zip([0.0, *times], times, strict=False)]


def write_bundled_card(
    path: Path,
    name: str,
    data: dict,
    train_args: dict,
    scores: dict[str, dict[str, EvalScore]],
    run_dir: Path,
    about: dict[str, str],
) -> Path:
    """Write ``models/<name>.md``: what the model saw, how it was trained, how it scores."""
    epochs = _epoch_seconds(run_dir)
    size = train_args.get("imgsz")
    counts = data.get("counts", {})
    if cropped := data.get("crop"):
        run = cropped["run_imgsz"]
        size_row = (f"trained on {size} px crops of pictures resized to {run} px (long side), the crop "
                    f"with the most units; runs at {run}; the ONNX takes 1x3x{run}x{run} float RGB 0-1")
    else:
        size_row = f"{size}; the ONNX takes 1x3x{size}x{size} float RGB 0-1"
    rows = [
        f"| {where} | {cls} | {s.images} | {s.instances} | {s.precision:.3f} | {s.recall:.3f} | "
        f"{s.map50:.3f} | {s.map50_95:.3f} | {s.tp_conf_median:.2f} | {s.tp_conf_p10:.2f} | "
        f"{s.recall_at_04:.3f} | {s.recall_at_05:.3f} |"
        for where, per_class in scores.items()
        for cls, s in per_class.items()
    ]
    facts = "\n".join(f"| {key} | {value} |" for key, value in about.items() if key != "command")
    text = f"""# {name}

A YOLO11n detector of people and handled units for BondWatch, trained on CPU from
simulated workshop scenes (`bondwatch sim render`) and the labelled site calibration
frames of PETS 2009 S2.L1.

| | |
| --- | --- |
| classes | `{BUNDLED_NAMES}` |
{facts}
| images | {", ".join(f"{k}: {v}" for k, v in counts.items())} |
| start | `{train_args.get("model")}` (matching layers transferred, head rebuilt for 2 classes) |
| epochs | {len(epochs)} of {train_args.get("epochs")}, close_mosaic {train_args.get("close_mosaic")} |
| augmentation | ultralytics defaults, zoom (scale) ±{train_args.get("scale")} |
| optimizer | ultralytics auto; one step per batch (nbs = batch), 1 warmup epoch |
| imgsz | {size_row} |
| batch | {train_args.get("batch")} |
| time | CPU, {sum(epochs) / 60:.1f} min wall, {np.median(epochs) if epochs else 0:.0f} s per epoch (median) |
| files | `{name}.pt` (fp16 weights), `{name}.onnx` (fp16-stored weights cast to fp32 at load) |

## Held-out scores

Never trained on.  P/R/mAP from ultralytics `val`; the confidence columns are for true
positives (IoU >= 0.5, detector floor conf 0.1), and the last two are the recall left
when detections below 0.4 / 0.5 are dropped (ByteTrack's high and new-track thresholds).

| data | class | images | labels | P | R | mAP50 | mAP50-95 | TP conf median | TP conf p10 | R@0.4 | R@0.5 |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

## Reproduce

```bash
{about.get("command", "bondwatch train ...")}
```

Re-running the same command resumes an interrupted run from its `last.pt`; a finished
run is only scored and exported again.
"""
    path.write_text(text)
    return path
