"""Frames in, tracked detections and alerts out: the one path that `run` and `replay` share."""

from __future__ import annotations

from alerts.rules import RuleEngine
from alerts.types import Alert
from bondwatch.scans import ScanEvent
from bondwatch.site import Site
from detectors.motion import MotionGate
from detectors.types import DetectionBatch
from detectors.yolo import Detector
from streams.frame import Frame


class Pipeline:
    def __init__(self, site: Site, detector: Detector, replay: bool = False):
        self.site = site
        self.detector = detector
        self.rules = RuleEngine(site, replay)
        self.fps = {c.id: c.detect_fps for c in site.cameras}
        for cam in site.cameras:
            if cam.motion_gate:
                stations = [z.polygon for z in site.zones_of(cam.id) if z.kind == "station"]
                gate = MotionGate(site.detection.motion_threshold, site.detection.max_skip_s, stations)
                detector.gate(cam.id, gate)

    def process(self, frames: list[Frame]) -> tuple[list[DetectionBatch], list[Alert]]:
        batches = self.detector.track(frames, self.fps)
        alerts = [a for b in batches for a in self.rules.process(b)]
        return batches, alerts

    def scan(self, scan: ScanEvent) -> list[Alert]:
        """A scan may cover a pending departure, or close the grace window of others."""
        return self.rules.add_scan(scan)

    def flush(self, t: float | None = None, camera: str | None = None) -> list[Alert]:
        return self.rules.flush(t, camera)
