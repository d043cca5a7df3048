"""Detections: what the detector produces from one frame."""

from __future__ import annotations

from dataclasses import dataclass

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


@dataclass(frozen=True)
class Detection:
    cls: str
    conf: float
    box: Box
    track: int | None = None  # stable id per camera; None when the tracker has not confirmed it

    @property
    def foot(self) -> tuple[float, float]:
        """Bottom-centre of the box: where a person stands or a unit rests."""
        x1, _, x2, y2 = self.box
        return ((x1 + x2) / 2.0, y2)


@dataclass(frozen=True)
class DetectionBatch:
    """All detections of one frame, carrying that frame's capture times."""

    camera: str
    index: int
    t: float
    ts: float
    width: int
    height: int
    detections: tuple[Detection, ...]

    def tracked(self, cls: str | None = None) -> list[Detection]:
        return [
            d for d in self.detections if d.track is not None and (cls is None or d.cls == cls)
        ]
