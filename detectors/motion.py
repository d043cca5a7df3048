"""Motion gating: skip inference on a camera whose picture has not changed.

A workshop camera watches an empty bench for most of the night; running the model on the same
picture again only burns CPU that other cameras need. The gate compares a small grey thumbnail
of each frame with the one of the last frame that went through the model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detectors.types import Box
from detectors.zones import Point, inside

logger = logging.getLogger(__name__)

THUMB_W = 64  # thumbnail width in pixels; the height follows the frame's aspect


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A grey thumbnail about THUMB_W wide by striding, cheap enough to run on every frame."""
    step = max(1, image.shape[1] // THUMB_W)
    return image[::step, ::step].mean(axis=2, dtype=np.float32)


@dataclass
class MotionGate:
    """Decides per frame of one camera whether the model must run.

    The model always runs when the picture changed (mean absolute difference of the grey
    thumbnail, 0-255, at least `threshold`), when `max_skip_s` of video time passed since the
    last inference, or while a tracked `unit` is near one of `stations` (within `margin_px`),
    because a unit that starts to move there must not be missed.
    """

    threshold: float = 2.0
    max_skip_s: float = 1.0
    stations: Sequence[Sequence[Point]] = ()
    margin_px: float = 50.0
    _thumb: np.ndarray | None = None
    _t: float | None = None
    skipped: int = 0

    def needs_inference(self, t: float, image: np.ndarray, units: Sequence[Box] = ()) -> bool:
        """True when the frame at video time `t` must go through the model; remembers it then."""
        thumb = thumbnail(image)
        run = (
            self._thumb is None
            or self._t is None
            or self._thumb.shape != thumb.shape
            or t - self._t >= self.max_skip_s
            or any(self._near_station(b) for b in units)
            or float(np.abs(thumb - self._thumb).mean()) >= self.threshold
        )
        if run:
            self._thumb, self._t = thumb, t
        else:
            self.skipped += 1
        return run

    def _near_station(self, box: Box) -> bool:
        x1, y1, x2, y2 = box
        m = self.margin_px
        probes = [((x1 + x2) / 2, y2), (x1 - m, y2), (x2 + m, y2), ((x1 + x2) / 2, y2 + m),
                  ((x1 + x2) / 2, y1 - m)]  # fmt: skip
        return any(inside(p, poly) for poly in self.stations for p in probes)
