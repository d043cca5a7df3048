"""Frames in, tracked detections and alerts out: the one path that `run` and `replay` share."""

from __future__ import annotations

import threading
from typing import Any

from alerts.rules import RuleEngine
from alerts.types import Alert
from bondwatch.scans import ScanEvent
from bondwatch.site import Site
from detectors.motion import MotionGate
from detectors.types import DetectionBatch
from detectors.yolo import Detector
from streams.frame import Frame


class Pipeline:
    """Detection then rules. The rules are used under a lock, so the dashboard's zone editor can
    swap zones (`reload_zones`) from another thread; a swap lands between two batches."""

    def __init__(self, site: Site, detector: Detector, replay: bool = False):
        self.site = site
        self.detector = detector
        self.rules = RuleEngine(site, replay)
        self.fps = {c.id: c.detect_fps for c in site.cameras}
        self._lock = threading.Lock()
        self._gate(site)

    def _gate(self, site: Site) -> None:
        """Motion gates watch the station polygons, so they follow zone edits too."""
        for cam in site.cameras:
            if cam.motion_gate:
                stations = [z.polygon for z in site.zones_of(cam.id) if z.kind == "station"]
                gate = MotionGate(site.detection.motion_threshold, site.detection.max_skip_s, stations)
                self.detector.gate(cam.id, gate)

    def process(self, frames: list[Frame]) -> tuple[list[DetectionBatch], list[Alert]]:
        batches = self.track(frames)
        with self._lock:
            alerts = [a for b in batches for a in self.rules.process(b)]
        return batches, alerts

    def track(self, frames: list[Frame]) -> list[DetectionBatch]:
        """Detection and tracking only: `process` without the rules, which `apply` then runs."""
        return self.detector.track(frames, self.fps)

    def apply(self, batch: DetectionBatch) -> list[Alert]:
        """The rules over one tracked frame."""
        with self._lock:
            return self.rules.process(batch)

    def scan(self, scan: ScanEvent) -> list[Alert]:
        """A scan may cover a pending departure, or close the grace window of others."""
        with self._lock:
            return self.rules.add_scan(scan)

    def flush(self, t: float | None = None, camera: str | None = None) -> list[Alert]:
        with self._lock:
            return self.rules.flush(t, camera)

    def reload_zones(self, site: Site) -> list[Alert]:
        """Apply the zones of `site` (same cameras) without a restart; returns the alerts of
        removed zones that were still pending (see RuleEngine.reload_zones)."""
        with self._lock:
            alerts = self.rules.reload_zones(site)
            self.site = site
            self._gate(site)
        return alerts

    def export_state(self, camera: str) -> dict[str, Any]:
        """The rule state of `camera` to hand to its next owner (RuleEngine.export_state)."""
        with self._lock:
            return self.rules.export_state(camera)

    def restore_state(self, camera: str, state: dict[str, Any] | None) -> None:
        """Take `camera`'s rule state from its previous owner, or start it empty (None)."""
        with self._lock:
            self.rules.restore_state(camera, state)
