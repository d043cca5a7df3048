"""The border with ultralytics: the only module of the product that imports it.

A `Detector` runs one YOLO model for every camera of a worker and keeps one ByteTrack
tracker per camera, so track ids never mix between cameras. Everything it returns is
our own `DetectionBatch`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")  # never reach for the hub: nothing can be downloaded
os.environ.setdefault("YOLO_VERBOSE", "False")

import numpy as np  # noqa: E402
from ultralytics import YOLO  # noqa: E402
from ultralytics.trackers.byte_tracker import BYTETracker  # noqa: E402
from ultralytics.utils import IterableSimpleNamespace  # noqa: E402

from detectors.types import Detection, DetectionBatch  # noqa: E402
from streams.frame import Frame  # noqa: E402

logger = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL = MODELS_DIR / "bondwatch-person.onnx"


class ModelError(Exception):
    """The model file is missing or is not a YOLO detection model."""


@dataclass(frozen=True)
class TrackerParams:
    """ByteTrack settings, chosen from the bundled model's confidences (see its model card)."""

    high: float = 0.4  # first-stage match threshold
    low: float = 0.1  # second-stage threshold for weak detections of existing tracks
    new: float = 0.4  # a new track starts only from a detection at least this confident
    buffer_s: float = 3.0  # seconds a lost track is kept for re-association
    match: float = 0.8
    fuse_score: bool = True

    def namespace(self, fps: float) -> IterableSimpleNamespace:
        return IterableSimpleNamespace(
            tracker_type="bytetrack",
            track_high_thresh=self.high,
            track_low_thresh=self.low,
            new_track_thresh=self.new,
            track_buffer=max(1, round(self.buffer_s * fps)),
            match_thresh=self.match,
            fuse_score=self.fuse_score,
        )


class Detector:
    """One YOLO model, many cameras: `track(frames)` returns one batch per frame."""

    def __init__(
        self,
        model_path: str | Path = DEFAULT_MODEL,
        *,
        conf: float = 0.1,
        tracker: TrackerParams = TrackerParams(),
    ):
        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        if path.suffix not in (".pt", ".onnx"):
            raise ModelError(f"{path} is not a YOLO detection model (expected a .pt or .onnx file)")
        try:
            self.model = YOLO(str(path), task="detect")
            self.names: dict[int, str] = dict(self.model.names)
        except Exception as e:  # ultralytics raises many kinds on a bad file
            raise ModelError(f"{path} is not a YOLO detection model ({e})") from None
        self.path = path
        self.conf = conf
        self.tracker_params = tracker
        self._trackers: dict[str, BYTETracker] = {}

    def reset(self, camera: str) -> None:
        """Forget a camera's tracks, e.g. after it reconnected."""
        self._trackers.pop(camera, None)

    def track(self, frames: list[Frame], fps: float | dict[str, float] = 10.0) -> list[DetectionBatch]:
        """Detect on every frame and update that frame's camera tracker.

        `fps` is the detection rate of the cameras, which sets how long lost tracks live.
        """
        if not frames:
            return []
        results = self.model.predict(
            [f.image for f in frames], conf=self.conf, verbose=False, stream=False
        )
        batches = []
        for frame, result in zip(frames, results, strict=True):
            tracker = self._trackers.get(frame.camera)
            if tracker is None:
                rate = fps[frame.camera] if isinstance(fps, dict) else fps
                tracker = BYTETracker(self.tracker_params.namespace(rate))
                self._trackers[frame.camera] = tracker
            boxes = result.boxes.cpu().numpy()
            tracks = tracker.update(boxes, frame.image)
            batches.append(self._batch(frame, tracks))
        return batches

    def _batch(self, frame: Frame, tracks: np.ndarray) -> DetectionBatch:
        # rows: x1, y1, x2, y2, track_id, score, cls, idx
        dets = tuple(
            Detection(
                cls=self.names.get(int(row[6]), str(int(row[6]))),
                conf=float(row[5]),
                box=(float(row[0]), float(row[1]), float(row[2]), float(row[3])),
                track=int(row[4]),
            )
            for row in tracks
        )
        return DetectionBatch(
            camera=frame.camera,
            index=frame.index,
            t=frame.t,
            ts=frame.ts,
            width=frame.width,
            height=frame.height,
            detections=dets,
        )
