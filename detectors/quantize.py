"""Int8 ONNX models for CPUs: the same trained weights, quantized after training.

A YOLO11n on this 2-core CPU spends nearly all of a frame's time in convolutions, and ONNX
Runtime's int8 convolutions (VNNI) run them about twice as fast as float32 (bondwatch-person
at 416x320, 1 thread: 28-39 ms float32, 15-21 ms int8). Quantization is static (QDQ, weights
per channel, activation ranges calibrated on training images), and the detection head's
decoding (box distribution, sigmoid, concatenation of boxes in pixels with scores in 0..1)
stays in float32: quantized together they share one scale and the scores vanish (measured:
mAP50 0.0 with the head quantized, 0.957 against 0.956 float32 with it kept in float).

The int8 file records the hash of the `.pt` it came from, so a retrained `.pt` is never
served by an old int8 file (see detectors.yolo.int8_for).
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from detectors.yolo import SOURCE_KEY, cached_onnx, file_hash, int8_path

logger = logging.getLogger(__name__)

# Nodes of the Detect head (layer 23 of yolo11n) kept in float: everything but the branch
# convolutions, and the last convolution of each branch (its outputs are the raw logits).
_HEAD = "/model.23/"
_BRANCH = re.compile(r"/cv[23]\.\d+/")
_BRANCH_LAST = re.compile(r"/cv[23]\.\d+\.2/")


class QuantizeError(Exception):
    pass


def letterbox(image: np.ndarray, imgsz: int, stride: int = 32) -> np.ndarray:
    """The model input for a BGR image as ultralytics' rect predictor makes it: long side to
    `imgsz`, padded with grey (114) to a multiple of `stride`, RGB, 1x3xHxW float in 0..1."""
    h, w = image.shape[:2]
    r = imgsz / max(h, w)
    nh, nw = round(h * r), round(w * r)
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    ph, pw = (-nh) % stride, (-nw) % stride
    padded = cv2.copyMakeBorder(
        resized, ph // 2, ph - ph // 2, pw // 2, pw - pw // 2, cv2.BORDER_CONSTANT, value=(114, 114, 114)
    )
    return np.ascontiguousarray(padded[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


class _Images(CalibrationDataReader):
    def __init__(self, input_name: str, images: Sequence[Path], imgsz: int):
        self.input_name = input_name
        self.images = images
        self.imgsz = imgsz
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def _feed(self) -> Iterator[dict[str, np.ndarray]]:
        for path in self.images:
            image = cv2.imread(str(path))
            if image is not None:
                yield {self.input_name: letterbox(image, self.imgsz)}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._feed()
        return next(self._it, None)


def calibration_images(folders: Sequence[Path], count: int = 64) -> list[Path]:
    """`count` images spread evenly over the images in `folders` (sorted, so reproducible)."""
    found = sorted(p for d in folders for p in Path(d).rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    if not found:
        raise QuantizeError(f"no calibration images (.jpg, .png) in {', '.join(map(str, folders))}")
    step = max(1, len(found) // count)
    return found[::step][:count]


def quantize(pt: Path, images: Sequence[Path], imgsz: int, cache_dir: Path) -> Path:
    """Write the int8 model of `pt` beside it (NAME.int8.onnx), calibrated on `images`."""
    fp32 = cached_onnx(pt, cache_dir, imgsz)
    return quantize_int8(fp32, file_hash(pt), images, int8_path(pt), imgsz)


def quantize_int8(fp32_onnx: Path, source_hash: str, images: Sequence[Path], out: Path, imgsz: int) -> Path:
    """Write the int8 (QDQ) version of a dynamic-shape float32 ONNX export to `out`."""
    model = onnx.load(str(fp32_onnx))
    keep_float = [
        n.name
        for n in model.graph.node
        if n.name.startswith(_HEAD) and (not _BRANCH.search(n.name) or _BRANCH_LAST.search(n.name))
    ]
    input_name = model.graph.input[0].name
    work = Path(tempfile.mkdtemp(prefix="bondwatch-quant-"))
    try:
        pre = work / "pre.onnx"
        # Symbolic shape inference cannot follow the dynamic head; plain ONNX inference suffices.
        quant_pre_process(str(fp32_onnx), str(pre), skip_symbolic_shape=True)
        tmp = work / "int8.onnx"
        quantize_static(
            str(pre),
            str(tmp),
            _Images(input_name, images, imgsz),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_float,
        )
        q = onnx.load(str(tmp))
        onnx.helper.set_model_props(
            q, {**{p.key: p.value for p in q.metadata_props}, SOURCE_KEY: source_hash}
        )
        onnx.save(q, str(tmp))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp), out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("int8 model %s (%d nodes kept in float32)", out, len(keep_float))
    return out
