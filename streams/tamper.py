"""Camera tamper detection: lens covered, view moved, heavy blur, frozen picture.

A camera that still streams but no longer shows the workshop is as blind as one that is
offline, and harder to notice. `TamperDetector` watches one camera through small grey
thumbnails sampled by video time (`Frame.t`, never a clock), so replay and live agree and a
backlog never turns into an alert. It is pure: no I/O, no clock; it returns `TamperEvent`s.

Every measure is relative, so ordinary life does not fire it: brightness is divided out,
the scene is split into a grid and a condition must hold over most cells (a person close to
the lens covers a few cells, a moved camera or a blurred lens all of them), and each
condition must last some seconds before it is raised and be gone some seconds before it
clears. Blur, view and noise are compared with what this camera showed while it learned,
over its first seconds of video.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from streams.frame import Frame
from streams.rate import RateSampler

logger = logging.getLogger(__name__)

TamperKind = Literal["covered", "moved", "blurred", "frozen"]
KINDS: tuple[TamperKind, ...] = ("covered", "moved", "blurred", "frozen")
THUMB_WIDTH = 160
GRID = 4  # the picture is judged in GRID x GRID cells


@dataclass(frozen=True)
class TamperEvent:
    """A tamper condition raised (`active`) or cleared on one camera.

    `t`/`ts` are the video and wall-clock time the condition began (raised) or ended
    (cleared), not when it was confirmed; `detail` says what was seen, in one sentence.
    """

    camera: str
    kind: TamperKind
    t: float
    ts: float
    active: bool
    detail: str


@dataclass(frozen=True)
class TamperConfig:
    """Thresholds; the defaults were measured on the PETS clip and its simulated tampering.

    `*_s` is how long (video time) a condition must hold before it is raised; `clear_s` how
    long it must be gone before it clears. Each measure has a raise and a laxer clear level
    (hysteresis), so a condition near its threshold does not flap.
    """

    sample_s: float = 0.5  # one thumbnail per this much video time
    learn_s: float = 8.0  # video time the baselines are learned over
    clear_s: float = 2.0
    covered_s: float = 3.0
    moved_s: float = 5.0
    blurred_s: float = 5.0
    frozen_s: float = 5.0
    # covered: share of the picture within `flat_tol` grey levels of its median tone
    flat_tol: float = 12.0
    covered_raise: float = 0.90
    covered_clear: float = 0.75
    # moved: share of textured cells whose edge map no longer correlates with the reference
    moved_ncc: float = 0.4
    moved_raise: float = 0.75
    moved_clear: float = 0.5
    # blurred: share of textured cells whose sharpness fell below `blur_ratio` of normal
    blur_ratio: float = 0.35
    blurred_raise: float = 0.75
    blurred_clear: float = 0.5
    # frozen: mean change between samples below this share of the learned noise floor
    frozen_ratio: float = 0.2
    frozen_clear_ratio: float = 0.5
    min_noise: float = 0.02  # a source stiller than this cannot tell frozen from static


def thumbnail(image: np.ndarray, width: int = THUMB_WIDTH) -> np.ndarray:
    """A `width`-wide grey float32 copy of a BGR picture: all the detector needs, cheaply.

    Float, so that averaging keeps the sensor noise that tells a live picture from a frozen one.
    """
    h, w = image.shape[:2]
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    size = (width, max(GRID, round(h * width / w)))
    return cv2.resize(grey.astype(np.float32), size, interpolation=cv2.INTER_AREA)


@dataclass
class _Baseline:
    """What this camera normally looks like, learned over its first `learn_s`."""

    edges: np.ndarray  # median gradient magnitude: the static background's structure
    sharpness: np.ndarray  # per cell, median brightness-normalised Laplacian energy
    textured: np.ndarray  # cells with enough structure to judge (bool, GRID x GRID)
    noise: float  # typical per-pixel change between samples of a still background


@dataclass
class _Condition:
    since_t: float | None = None  # first sample of the current run of this condition
    since_ts: float = 0.0
    gone_t: float | None = None  # first sample without it, while active
    gone_ts: float = 0.0
    active: bool = False


@dataclass
class _Sample:
    grey: np.ndarray
    edges: np.ndarray
    sharpness: np.ndarray
    flat: float
    change: float | None  # mean |difference| to the previous sample
    still: float | None  # median |difference| to the previous sample: noise, not motion


class TamperDetector:
    """Per-camera tamper state from frames; `feed` returns the events each frame causes."""

    def __init__(self, camera: str, config: TamperConfig | None = None) -> None:
        self.camera = camera
        self.config = config or TamperConfig()
        self._sampler = RateSampler(1.0 / self.config.sample_s)
        self._learning: list[_Sample] = []
        self._learn_from: float | None = None
        self._baseline: _Baseline | None = None
        self._prev: np.ndarray | None = None
        self._conds = {k: _Condition() for k in KINDS}

    @property
    def active(self) -> tuple[TamperKind, ...]:
        """The conditions raised now, in a fixed order."""
        return tuple(k for k in KINDS if self._conds[k].active)

    def feed(self, frame: Frame) -> list[TamperEvent]:
        """Look at `frame` if one is due by its video time (every `sample_s`); else nothing."""
        if not self._sampler.take(frame.t):
            return []
        return self.update(frame.t, frame.ts, thumbnail(frame.image))

    def update(self, t: float, ts: float, grey: np.ndarray) -> list[TamperEvent]:
        """Judge one grey thumbnail (see `thumbnail`) taken at video time `t`."""
        sample = self._measure(grey)
        cfg = self.config
        covered = self._conds["covered"]
        flat_level = cfg.covered_clear if covered.active else cfg.covered_raise
        is_covered = sample.flat >= flat_level
        if self._baseline is None and not is_covered:
            self._learn(t, sample)
        seen: dict[TamperKind, tuple[bool, str]] = {
            "covered": (
                is_covered,
                f"lens covered or blacked out: {sample.flat:.0%} of the picture is one flat tone "
                f"(mean grey {float(grey.mean()):.0f})",
            )
        }
        base = self._baseline
        if base is not None:
            # A covered lens also looks blurred, moved and frozen: name only the cause.
            seen["moved"] = self._moved(sample, base, not is_covered)
            seen["blurred"] = self._blurred(sample, base, not is_covered)
            seen["frozen"] = self._frozen(sample, base, not is_covered)
        events = []
        for kind, (now, detail) in seen.items():
            event = self._step(kind, now, t, ts, detail)
            if event is not None:
                events.append(event)
        return events

    def _measure(self, grey: np.ndarray) -> _Sample:
        grey = grey.astype(np.float32, copy=False)
        flat = float(np.mean(np.abs(grey - np.median(grey)) <= self.config.flat_tol))
        smooth = cv2.GaussianBlur(grey, (0, 0), 1.5)
        edges = cv2.magnitude(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
        # Dividing by the mean brightness makes sharpness blind to lighting changes.
        lap = np.abs(cv2.Laplacian(grey, cv2.CV_32F)) / max(float(grey.mean()), 10.0)
        sharpness = _cells(lap).mean(axis=(2, 3))
        change = still = None
        prev = self._prev
        if prev is not None and prev.shape == grey.shape:
            diff = np.abs(grey - prev)
            change, still = float(diff.mean()), float(np.median(diff))
        self._prev = grey
        return _Sample(grey, edges, sharpness, flat, change, still)

    def _learn(self, t: float, sample: _Sample) -> None:
        if self._learn_from is None:
            self._learn_from = t
        self._learning.append(sample)
        if t - self._learn_from < self.config.learn_s or len(self._learning) < 3:
            return
        edges = np.median([s.edges for s in self._learning], axis=0).astype(np.float32)
        sharpness = np.median([s.sharpness for s in self._learning], axis=0)
        stills = [s.still for s in self._learning if s.still is not None]
        edge_cells = _cells(edges)
        # A cell of sky or bare wall has no structure to shift or blur: leave it out.
        textured = (edge_cells.std(axis=(2, 3)) > 2.0) & (sharpness > 0.02)
        if not textured.any():
            textured[:] = True
        noise = float(np.median(stills)) if stills else 0.0
        self._baseline = _Baseline(edges, sharpness, textured, noise)
        self._learning = []
        if noise < self.config.min_noise:
            logger.info(
                "camera %s: the picture is still without any noise; a frozen picture cannot be told apart",
                self.camera,
            )
        logger.info("camera %s: tamper baselines learned (noise %.3f)", self.camera, noise)

    def _moved(self, s: _Sample, base: _Baseline, judge: bool) -> tuple[bool, str]:
        cfg = self.config
        ncc = _cell_ncc(s.edges, base.edges)[base.textured]
        off = float(np.mean(ncc < cfg.moved_ncc))
        level = cfg.moved_clear if self._conds["moved"].active else cfg.moved_raise
        detail = f"view moved: {off:.0%} of the picture no longer matches the view learned at start"
        return judge and off >= level, detail

    def _blurred(self, s: _Sample, base: _Baseline, judge: bool) -> tuple[bool, str]:
        cfg = self.config
        ratio = (s.sharpness / np.maximum(base.sharpness, 1e-6))[base.textured]
        soft = float(np.mean(ratio < cfg.blur_ratio))
        level = cfg.blurred_clear if self._conds["blurred"].active else cfg.blurred_raise
        detail = f"heavy blur: sharpness at {float(np.median(ratio)):.0%} of this camera's normal"
        return judge and soft >= level, detail

    def _frozen(self, s: _Sample, base: _Baseline, judge: bool) -> tuple[bool, str]:
        cfg = self.config
        if s.change is None or base.noise < cfg.min_noise:
            return False, ""
        ratio = cfg.frozen_clear_ratio if self._conds["frozen"].active else cfg.frozen_ratio
        detail = (
            f"frozen picture: it changes by {s.change:.3f} grey levels between samples, "
            f"below its own sensor noise ({base.noise:.3f})"
        )
        return judge and s.change <= ratio * base.noise, detail

    def _step(self, kind: TamperKind, now: bool, t: float, ts: float, detail: str) -> TamperEvent | None:
        """Advance one condition; an event when it is raised or cleared."""
        c = self._conds[kind]
        hold = getattr(self.config, f"{kind}_s")
        if not c.active:
            if not now:
                c.since_t = None
                return None
            if c.since_t is None:
                c.since_t, c.since_ts = t, ts
            if t - c.since_t < hold:
                return None
            c.active, c.gone_t = True, None
            logger.warning("camera %s: %s", self.camera, detail)
            return TamperEvent(self.camera, kind, c.since_t, c.since_ts, True, detail)
        if now:
            c.gone_t = None
            return None
        if c.gone_t is None:
            c.gone_t, c.gone_ts = t, ts
        if t - c.gone_t < self.config.clear_s:
            return None
        c.active, c.since_t = False, None
        logger.info("camera %s: %s cleared", self.camera, kind)
        return TamperEvent(self.camera, kind, c.gone_t, c.gone_ts, False, f"{kind} cleared")


def _cells(a: np.ndarray) -> np.ndarray:
    """View `a` as GRID x GRID cells (trimming the edge rows/columns that do not fit)."""
    h, w = a.shape[0] // GRID, a.shape[1] // GRID
    return a[: h * GRID, : w * GRID].reshape(GRID, h, GRID, w).transpose(0, 2, 1, 3)


def _cell_ncc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of `a` and `b` in each cell: 1 same structure, ~0 none."""
    ca, cb = _cells(a), _cells(b)
    ca = ca - ca.mean(axis=(2, 3), keepdims=True)
    cb = cb - cb.mean(axis=(2, 3), keepdims=True)
    num = (ca * cb).sum(axis=(2, 3))
    den = np.sqrt((ca * ca).sum(axis=(2, 3)) * (cb * cb).sum(axis=(2, 3)))
    return num / np.maximum(den, 1e-6)
