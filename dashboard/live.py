"""What the dashboard needs from the running service: newest frames, detections and health.

The dashboard owns this protocol (the consumer defines what it consumes), so the service can
hand in whatever object it has, and tests can hand in a small one that serves real footage.
"""

from __future__ import annotations

from typing import Any, Protocol

from bondwatch.site import Site
from detectors.types import DetectionBatch
from streams.frame import Frame


class LiveView(Protocol):
    site: Site

    def latest(self, camera: str) -> tuple[Frame | None, DetectionBatch | None]:
        """The newest decoded frame of `camera` and the newest detections on it (a slot)."""
        ...

    def health(self) -> dict[str, Any]:
        """Camera id -> health record with `state`, `fps`, `frames`, `dropped`, ... attributes."""
        ...
