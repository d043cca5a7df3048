"""The border with ultralytics: the only module of the product that imports it.

A `Detector` runs one YOLO model for every camera of a worker and keeps one ByteTrack
tracker per camera, so track ids never mix between cameras. Everything it returns is
our own `DetectionBatch`.

Runtime choice, measured on the 2-core CPU box with the bundled person model (416 px) on
768x576 PETS frames, ms per frame, two rounds while another job kept one core busy:

    torch .pt, rect 416x320                 b1 40-44   batch of 4: 35-39
    ONNX static 416x416, batch 1            b1 81-84   batch of 4: 74-80 (split into 1s)
    ONNX dynamic, square 416x416, 1 thread  b1 42-43   batch of 4: 44-49
    ONNX dynamic, rect 416x320, 1 thread    b1 30-42   batch of 4: 29-39
    ONNX dynamic, rect, 2 threads spinning  b1 57-61   batch of 4: 54-58
    ONNX dynamic, rect, 2 threads no spin   b1 37-44   batch of 4: 32-34

So on a CPU a `.pt` is exported once to ONNX with dynamic batch and shape (rect letterbox:
4:3 video runs at 416x320, a quarter fewer pixels than the square), cached by the hash of
the `.pt`, and run with ONNX Runtime on all but one core without busy-waiting threads (the
other core decodes video). Batching across cameras gains 5-15%, within the noise here, but
costs nothing. With CUDA the `.pt` runs on torch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")  # never reach for the hub: nothing can be downloaded
os.environ.setdefault("YOLO_VERBOSE", "False")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from ultralytics import YOLO  # noqa: E402
from ultralytics.trackers.byte_tracker import BYTETracker  # noqa: E402
from ultralytics.utils import IterableSimpleNamespace  # noqa: E402

from detectors.motion import MotionGate  # noqa: E402
from detectors.types import Box, Detection, DetectionBatch  # noqa: E402
from streams.frame import Frame  # noqa: E402

logger = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
# People and units, from simulator scenes and PETS calibration frames (models/bondwatch-n.md).
# On a CPU machine the .pt is exported once to a cached dynamic-shape ONNX.
DEFAULT_MODEL = MODELS_DIR / "bondwatch-n.pt"
DEFAULT_CACHE = Path.home() / ".cache" / "bondwatch"
DEFAULT_IMGSZ = 640
RUN_IMGSZ_KEY = "bondwatch_run_imgsz"  # in a .pt trained on crops: the size it runs at
SOURCE_KEY = "bondwatch_source_sha256"  # int8 model metadata: file_hash of the .pt it came from


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


def file_hash(path: Path) -> str:
    """The first 12 hex digits of the file's SHA-256: what names its cached export."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def cached_onnx(pt: Path, cache_dir: Path, imgsz: int) -> Path:
    """The ONNX export of `pt` in `cache_dir`, exported now unless an export of these bytes exists.

    The name carries the hash of the `.pt`, so a retrained model is never served by a stale
    export; exports of older versions of the same file are removed.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"{pt.stem}-{file_hash(pt)}-{imgsz}.onnx"
    if target.is_file():
        return target
    for old in cache_dir.glob(f"{pt.stem}-" + "?" * 12 + f"-{imgsz}.onnx"):
        logger.info("removing stale export %s", old)
        old.unlink(missing_ok=True)
    logger.info("exporting %s to ONNX (%d px, dynamic shapes) into %s", pt, imgsz, cache_dir)
    work = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".export-"))
    try:
        shutil.copy2(pt, work / pt.name)  # export writes next to its input
        out = YOLO(str(work / pt.name), task="detect").export(
            format="onnx", imgsz=imgsz, dynamic=True, simplify=True, verbose=False
        )
        os.replace(out, target)  # atomic: a reader never sees half a file
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def trained_imgsz(pt: Path) -> int:
    """The image size a `.pt` runs at: the size it was trained at, or the one it records when
    it was trained on crops of larger pictures (detectors/training.py, `crop_split`)."""
    model = YOLO(str(pt), task="detect")
    imgsz = (model.ckpt or {}).get(RUN_IMGSZ_KEY) or model.overrides.get("imgsz") or DEFAULT_IMGSZ
    return int(imgsz if isinstance(imgsz, int) else max(imgsz))


def int8_path(pt: Path) -> Path:
    """Where the int8 model of `pt` lies: beside it, `NAME.int8.onnx` (detectors/quantize.py)."""
    return pt.with_name(f"{pt.stem}.int8.onnx")


def int8_for(pt: Path) -> Path | None:
    """The int8 model of exactly these `.pt` bytes, or None (missing, or made from another .pt)."""
    path = int8_path(pt)
    if not path.is_file():
        return None
    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
    made_from = meta.custom_metadata_map.get(SOURCE_KEY)
    if made_from != file_hash(pt):
        logger.warning("ignoring %s: it was quantized from another version of %s", path, pt.name)
        return None
    return path


def cpu_session(path: Path, threads: int | None = None) -> ort.InferenceSession:
    """An ONNX Runtime session on all cores but one (decoding needs one), without spinning:
    spinning threads fight the decoders and made 2 threads slower than 1 on 2 cores."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or max(1, (os.cpu_count() or 1) - 1)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class _Trackers:
    """One camera's ByteTrack: one tracker for all classes, or, given `unit` settings, units on
    a tracker of their own (a small unit scores lower than a person: it may need lower
    thresholds). With two trackers, ids are interleaved (others odd, units even) so they never
    collide within the camera."""

    def __init__(self, main: TrackerParams, unit: TrackerParams | None, unit_cls: int | None, fps: float):
        self.main = BYTETracker(main.namespace(fps))
        self.unit = BYTETracker(unit.namespace(fps)) if unit is not None and unit_cls is not None else None
        self.unit_cls = unit_cls

    def update(self, boxes, image: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
        if self.unit is None:
            return self.main.update(boxes, image)
        is_unit = boxes.cls == self.unit_cls
        rows = []
        for tracker, mask, parity in ((self.main, ~is_unit, 1), (self.unit, is_unit, 0)):
            out = tracker.update(boxes[mask], image)
            if len(out):
                out = out.copy()
                out[:, 4] = out[:, 4] * 2 - parity
            rows.append(out.reshape(-1, 8))
        return np.concatenate(rows)


class Detector:
    """One YOLO model, many cameras: `track(frames)` returns one batch per frame.

    Given a `.pt`: torch on CUDA when there is a GPU; else its int8 model when one made from
    these very bytes lies beside it and `int8` is on (about twice as fast on a CPU, same
    accuracy: detectors/quantize.py), else its cached float32 ONNX export (see the module
    docstring). Given an `.onnx`: that file as is. `batch_size` caps the frames of one model
    call. `parallel` ONNX sessions of one thread each run the model calls of one `track`
    side by side (replay uses one per core: for this small model, frames in parallel beat
    threads inside one call); with 1, one session on `threads` threads.
    """

    def __init__(
        self,
        model_path: str | Path = DEFAULT_MODEL,
        *,
        conf: float = 0.1,
        tracker: TrackerParams = TrackerParams(),
        unit_tracker: TrackerParams | None = None,
        cache_dir: str | Path | None = None,
        batch_size: int = 8,
        threads: int | None = None,
        int8: bool = True,
        parallel: int = 1,
    ):
        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        if path.suffix not in (".pt", ".onnx"):
            raise ModelError(f"{path} is not a YOLO detection model (expected a .pt or .onnx file)")
        self.imgsz: int | None = None
        self.conf = conf
        self.batch_size = max(1, batch_size)
        try:
            run = path
            if path.suffix == ".pt":
                self.imgsz = trained_imgsz(path)
            if path.suffix == ".pt" and not torch.cuda.is_available():
                quantized = int8_for(path) if int8 else None
                run = quantized or cached_onnx(path, Path(cache_dir or DEFAULT_CACHE), self.imgsz)
            self.model = YOLO(str(run), task="detect")
            self.names: dict[int, str] = dict(self.model.names)
            self._models = [self.model]
            if run.suffix == ".onnx":
                self._models += [YOLO(str(run), task="detect") for _ in range(max(1, parallel) - 1)]
                for model in self._models:
                    self._warm_up(model, run, 1 if len(self._models) > 1 else threads)
        except ModelError:
            raise
        except Exception as e:  # ultralytics raises many kinds on a bad file
            raise ModelError(f"{path} is not a YOLO detection model ({e})") from None
        self.path = path
        self.runtime = run
        self.tracker_params = tracker
        self.unit_tracker_params = unit_tracker
        self._unit_cls = next((k for k, v in self.names.items() if v == "unit"), None)
        self._pool = ThreadPoolExecutor(len(self._models)) if len(self._models) > 1 else None
        self._trackers: dict[str, _Trackers] = {}
        self._gates: dict[str, MotionGate] = {}
        self._last_boxes: dict[str, object] = {}  # the camera's last model output, for skips
        self._last_units: dict[str, list[Box]] = {}
        logger.info("model %s runs as %s", path, run)

    @property
    def parallel(self) -> int:
        """How many model calls run side by side."""
        return len(self._models)

    def _warm_up(self, model: YOLO, onnx: Path, threads: int | None) -> None:
        """Create ultralytics' predictor, then give it our CPU session (threads, no spinning)."""
        self._predict([np.zeros((64, 64, 3), np.uint8)], model)
        backend = getattr(model.predictor.model, "backend", None)
        if backend is not None and not torch.cuda.is_available() and hasattr(backend, "session"):
            backend.session = cpu_session(onnx, threads)

    def _predict(self, images: list[np.ndarray], model: YOLO | None = None) -> list:  # type: ignore[type-arg]
        extra = {"imgsz": self.imgsz} if self.imgsz else {}
        model = model or self.model
        return model.predict(images, conf=self.conf, verbose=False, stream=False, rect=True, **extra)

    def _detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """The model's boxes for each image, in order: in chunks of `batch_size`, the chunks
        shared out over the model instances."""
        chunks = [images[i : i + self.batch_size] for i in range(0, len(images), self.batch_size)]
        n = len(self._models)
        if self._pool is None or len(chunks) < 2:
            results = [self._predict(chunk) for chunk in chunks]
        else:
            parts = list(self._pool.map(
                lambda k: [self._predict(c, self._models[k]) for c in chunks[k::n]], range(n)
            ))  # fmt: skip
            results = [parts[i % n][i // n] for i in range(len(chunks))]
        return [r.boxes.cpu().numpy() for chunk in results for r in chunk]

    def gate(self, camera: str, gate: MotionGate | None) -> None:
        """Turn motion gating on (a gate) or off (None) for `camera`."""
        if gate is None:
            self._gates.pop(camera, None)
        else:
            self._gates[camera] = gate

    def reset(self, camera: str) -> None:
        """Forget a camera's tracks, e.g. after it reconnected."""
        self._trackers.pop(camera, None)
        self._last_boxes.pop(camera, None)
        self._last_units.pop(camera, None)

    def track(self, frames: Sequence[Frame], fps: float | dict[str, float] = 10.0) -> list[DetectionBatch]:
        """Detect on every frame and update that frame's camera tracker.

        `fps` is the detection rate of the cameras, which sets how long lost tracks live. A
        frame its camera's motion gate lets pass is not run through the model: its tracker is
        fed that camera's last detections again, so tracks stay put and ByteTrack's lost-track
        clock, counted in frames, still advances once per frame. Several frames of one camera
        are tracked in their order (replay); with a motion gate, give one per call, as the gate
        of a frame needs the units tracked in the frame before.
        """
        frames = list(frames)
        todo = [
            i
            for i, f in enumerate(frames)
            if f.camera not in self._last_boxes
            or (gate := self._gates.get(f.camera)) is None
            or gate.needs_inference(f.t, f.image, self._last_units.get(f.camera, ()))
        ]
        found = dict(zip(todo, self._detect([frames[i].image for i in todo]), strict=True))
        batches = []
        for i, frame in enumerate(frames):
            if i in found:
                self._last_boxes[frame.camera] = found[i]
            trackers = self._trackers.get(frame.camera)
            if trackers is None:
                rate = fps[frame.camera] if isinstance(fps, dict) else fps
                trackers = _Trackers(self.tracker_params, self.unit_tracker_params, self._unit_cls, rate)
                self._trackers[frame.camera] = trackers
            batch = self._batch(frame, trackers.update(self._last_boxes[frame.camera], frame.image))
            self._last_units[frame.camera] = [d.box for d in batch.tracked("unit")]
            batches.append(batch)
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
