"""Ground-truth alerts from labelled tracks: the rules run over perfect detections.

Used to score the system on footage that has identity labels (MOTChallenge format) but no
alert labels, such as the PETS 2009 sequence: the truth is what the same rules say when
the detector and tracker make no mistake.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from alerts.rules import RuleEngine
from alerts.types import Alert
from bondwatch.site import Site
from detectors.types import Detection, DetectionBatch


def read_mot(path: str | Path) -> dict[int, list[tuple[int, tuple[float, float, float, float]]]]:
    """frame (1-based) -> [(identity, (x1, y1, x2, y2))]"""
    frames: dict[int, list[tuple[int, tuple[float, float, float, float]]]] = defaultdict(list)
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        f, tid, left, top, w, h = (float(x) for x in line.split(",")[:6])
        frames[int(f)].append((int(tid), (left, top, left + w, top + h)))
    return frames


def truth_alerts(
    site: Site,
    camera: str,
    labels: dict[int, list[tuple[int, tuple[float, float, float, float]]]],
    fps: float,
    size: tuple[int, int],
    frames: range,
) -> list[Alert]:
    """Run the site's rules over the labelled boxes of `frames` (1-based frame numbers)."""
    engine = RuleEngine(site)
    alerts = []
    for f in frames:
        dets = tuple(
            Detection(cls="person", conf=1.0, box=box, track=tid) for tid, box in labels.get(f, [])
        )
        t = (f - 1) / fps
        batch = DetectionBatch(camera, f - 1, t, t, size[0], size[1], dets)
        alerts.extend(engine.process(batch))
    return alerts + engine.flush()
