"""The restricted-zone rule, from tables of tracks: pure, no model, no clock."""

from __future__ import annotations

import pytest

from alerts.rules import RestrictedZoneRule, RuleEngine
from bondwatch.site import Zone, parse_site
from detectors.types import Detection, DetectionBatch

SQUARE = [(100.0, 100.0), (200.0, 100.0), (200.0, 200.0), (100.0, 200.0)]
IN, OUT, EDGE_IN, EDGE_OUT = (150.0, 150.0), (50.0, 150.0), (101.0, 150.0), (99.0, 150.0)
FPS = 10


def make_zone(dwell_s: float = 1.0, exit_s: float = 1.0) -> Zone:
    return Zone(id="cage", camera="cam", kind="restricted", polygon=SQUARE, dwell_s=dwell_s,
                exit_s=exit_s)  # fmt: skip


def make_batch(i: int, people: dict[int, tuple[float, float]], cls: str = "person") -> DetectionBatch:
    """Frame `i` at FPS with each track's foot point at the given position."""
    dets = tuple(
        Detection(cls=cls, conf=0.8, box=(x - 10, y - 60, x + 10, y), track=tid)
        for tid, (x, y) in people.items()
    )
    return DetectionBatch("cam", i, i / FPS, 1_000_000 + i / FPS, 640, 480, dets)


def run(rule: RestrictedZoneRule, timeline: list[dict[int, tuple[float, float]]]):
    return [a for i, people in enumerate(timeline) for a in rule.update(make_batch(i, people))]


def seq(*parts: tuple[int, dict[int, tuple[float, float]]]) -> list[dict[int, tuple[float, float]]]:
    """(frames, people) runs joined into one timeline."""
    return [people for n, people in parts for _ in range(n)]


CASES = [
    # (name, timeline, dwell, expected [(track, t)])
    ("walks in and stays", seq((10, {1: OUT}), (30, {1: IN})), 1.0, [(1, 1.0)]),
    ("stays one minute: one alert", seq((5, {1: OUT}), (600, {1: IN})), 1.0, [(1, 0.5)]),
    ("leaves before dwell", seq((10, {1: OUT}), (5, {1: IN}), (20, {1: OUT})), 1.0, []),
    ("walks past outside", seq((50, {1: OUT})), 1.0, []),
    ("edge jitter, no dwell reached", seq((10, {1: OUT}), (8, {1: EDGE_IN}),
        *[(1, {1: EDGE_OUT}) if k % 2 else (1, {1: EDGE_IN}) for k in range(6)],
        (20, {1: OUT})), 2.0, []),
    ("edge jitter after entry is one alert", seq((10, {1: OUT}), (15, {1: IN}),
        *[(1, {1: EDGE_OUT}) if k % 2 else (1, {1: EDGE_IN}) for k in range(20)]), 1.0, [(1, 1.0)]),
    ("leaves and comes back: two entries", seq((10, {1: OUT}), (15, {1: IN}), (20, {1: OUT}),
        (15, {1: IN})), 1.0, [(1, 1.0), (1, 4.5)]),
    ("two people, two alerts", seq((10, {1: OUT, 2: OUT}), (15, {1: IN, 2: OUT}),
        (15, {1: IN, 2: IN})), 1.0, [(1, 1.0), (2, 2.5)]),
    ("id switch inside the zone is the same person", seq((10, {1: OUT}), (20, {1: IN}),
        (5, {}), (20, {7: (152.0, 151.0)})), 1.0, [(1, 1.0)]),
    ("new person far away after a loss is a new entry", seq((10, {1: OUT}), (20, {1: IN}),
        (5, {}), (10, {7: OUT}), (20, {7: IN})), 1.0, [(1, 1.0), (7, 4.5)]),
    ("zero dwell alerts on the entry frame", seq((3, {1: OUT}), (1, {1: IN})), 0.0, [(1, 0.3)]),
]


@pytest.mark.parametrize(("timeline", "dwell", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_restricted_zone_rule(timeline, dwell, expected):
    alerts = run(RestrictedZoneRule(make_zone(dwell)), timeline)
    assert [(a.track, round(a.t, 3)) for a in alerts] == expected
    for a in alerts:
        assert a.type == "unauthorized_entry" and a.zone == "cage" and a.camera == "cam"
        assert f"track {a.track}" in a.explanation


def test_units_never_trigger_an_entry():
    rule = RestrictedZoneRule(make_zone())
    alerts = [a for i in range(30) for a in rule.update(make_batch(i, {1: IN}, cls="unit"))]
    assert alerts == []


def test_entry_time_is_capture_time_of_entry_frame():
    rule = RestrictedZoneRule(make_zone(dwell_s=2.0))
    alerts = run(rule, seq((7, {3: OUT}), (40, {3: IN})))
    assert len(alerts) == 1
    assert alerts[0].t == pytest.approx(0.7)
    assert alerts[0].ts == pytest.approx(1_000_000.7)
    assert "stayed 2.0s" in alerts[0].explanation


def test_engine_routes_batches_to_their_camera_zones():
    site = parse_site("""
cameras: [{id: cam, url: a.mp4}, {id: other, url: b.mp4}]
zones:
  - {id: cage, camera: cam, kind: restricted, polygon: [[100,100],[200,100],[200,200],[100,200]]}
""")
    engine = RuleEngine(site)
    timeline = seq((2, {1: OUT}), (20, {1: IN}))
    got = [a for i, p in enumerate(timeline) for a in engine.process(make_batch(i, p))]
    assert [(a.camera, a.zone) for a in got] == [("cam", "cage")]
    for i in range(40):  # the same person inside the same pixels of another camera: no zone there
        b = make_batch(i, {1: IN})
        other = DetectionBatch("other", i, b.t, b.ts, 640, 480, b.detections)
        assert engine.process(other) == []
