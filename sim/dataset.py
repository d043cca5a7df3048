"""Rendered scenarios as an ultralytics (YOLO) dataset: images, label files and data.yaml.

The frames are read back from the MP4s rather than taken before encoding, so the detector
trains on the same compression artefacts it meets when the service decodes these videos.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import yaml

from sim.video import read_frames

logger = logging.getLogger(__name__)

NAMES = {0: "person", 1: "unit"}


def read_labels(path: Path) -> dict[int, list[tuple[int, int, float, float, float, float, float]]]:
    """MOT-style label file -> frame (1-based) -> [(id, class, left, top, width, height, vis)]."""
    out: dict[int, list[tuple[int, int, float, float, float, float, float]]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        f = line.split(",")
        out[int(f[0])].append(
            (int(f[1]), int(f[7]), float(f[2]), float(f[3]), float(f[4]), float(f[5]), float(f[8]))
        )
    return out


def export_yolo(
    render_dirs: list[str | Path],
    out_dir: str | Path,
    every_n: int = 5,
    val_fraction: float = 0.2,
    min_visibility: float = 0.25,
    min_size: float = 4.0,
) -> Path:
    """Write an ultralytics dataset from rendered scenario directories; returns data.yaml.

    Takes every n-th frame of every camera. The last `val_fraction` of each video goes to
    validation, so neighbouring, nearly identical frames never straddle the split. Boxes less
    visible than `min_visibility` or smaller than `min_size` pixels are left out: a detector
    cannot be asked to find what the picture does not show.
    """
    out = Path(out_dir)
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    counts = {"train": 0, "val": 0}
    for d in map(Path, render_dirs):
        for labels_path in sorted((d / "labels").glob("*.txt")):
            cam = labels_path.stem
            video = d / f"{cam}.mp4"
            labels = read_labels(labels_path)
            frames = list(_sampled(video, every_n))
            cut = int(len(frames) * (1.0 - val_fraction))
            for k, (index, image) in enumerate(frames):
                split = "train" if k < cut or val_fraction == 0 else "val"
                stem = f"{d.name}_{cam}_{index + 1:06d}"
                h, w = image.shape[:2]
                cv2.imwrite(str(out / "images" / split / f"{stem}.jpg"), image)
                lines = []
                for _, cls, left, top, bw, bh, vis in labels.get(index + 1, []):
                    if vis < min_visibility or min(bw, bh) < min_size:
                        continue
                    cx, cy = (left + bw / 2) / w, (top + bh / 2) / h
                    lines.append(f"{cls} {cx:.6f} {cy:.6f} {bw / w:.6f} {bh / h:.6f}")
                (out / "labels" / split / f"{stem}.txt").write_text(
                    "".join(line + "\n" for line in lines), encoding="utf-8"
                )
                counts[split] += 1
    data = {
        "path": str(out.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": NAMES,
    }
    data_yaml = out / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    logger.info("YOLO dataset %s: %d train, %d val images", out, counts["train"], counts["val"])
    return data_yaml


def _sampled(video: Path, every_n: int) -> Iterator[tuple[int, np.ndarray]]:
    for index, _, image in read_frames(video):
        if index % every_n == 0:
            yield index, image
