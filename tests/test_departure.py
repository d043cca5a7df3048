"""The unscanned-departure rule, from tables of unit tracks and scans: pure, no model, no clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.departure import DepartureRule
from alerts.explain import untranslated
from alerts.rules import RuleEngine
from alerts.types import Alert
from bondwatch.scans import ScanEvent
from bondwatch.site import Zone, parse_site
from detectors.types import Detection, DetectionBatch

SQUARE = [(100.0, 100.0), (200.0, 100.0), (200.0, 200.0), (100.0, 200.0)]
IN, IN2, OUT, OUT2 = (150.0, 150.0), (120.0, 180.0), (50.0, 150.0), (50.0, 100.0)
EDGE_IN, EDGE_OUT = (101.0, 150.0), (99.0, 150.0)
FPS = 5  # a camera's detect_fps: one batch every 0.2 s
TS0 = 1_784_592_000.0  # wall clock of frame 0

Pos = tuple[float, float]
Timeline = list[dict[int, Pos]]


def make_zone(**settings: float) -> Zone:
    return Zone(id="S01", camera="cam", kind="station", station="S01", polygon=SQUARE, **settings)


def make_batch(i: int, units: dict[int, Pos], width: float = 20.0, camera: str = "cam"):
    """Frame `i` at FPS with each unit track's foot point at the given position."""
    dets = tuple(
        Detection(cls="unit", conf=0.9, box=(x - width / 2, y - 20, x + width / 2, y), track=tid)
        for tid, (x, y) in units.items()
    )
    return DetectionBatch(camera, i, i / FPS, TS0 + i / FPS, 640, 480, dets)


def seq(*parts: tuple[int, dict[int, Pos]]) -> Timeline:
    """(frames, units) runs joined into one timeline."""
    return [units for n, units in parts for _ in range(n)]


def scan(t: float, serial: str = "SN1", station: str = "S01") -> ScanEvent:
    return ScanEvent(t=t, station=station, serial=serial)


def run(
    rule: DepartureRule, timeline: Timeline, scans: list[ScanEvent], width: float = 20.0
) -> list[tuple[float, Alert]]:
    """Replay order: each scan before the first batch at or after its time, then flush.

    Returns (time of release, alert) so a test can see when an alert came out.
    """
    out: list[tuple[float, Alert]] = []
    todo = sorted(scans, key=lambda s: s.t or 0.0)
    for i, units in enumerate(timeline):
        while todo and (todo[0].t or 0.0) <= i / FPS:
            s = todo.pop(0)
            out += [(s.t or 0.0, a) for a in rule.add_scan(s)]
        out += [(i / FPS, a) for a in rule.update(make_batch(i, units, width))]
    for s in todo:
        out += [(s.t or 0.0, a) for a in rule.add_scan(s)]
    return out + [(float("inf"), a) for a in rule.flush()]


def walk(start: Pos, step: Pos, n: int) -> Timeline:
    """Track 1 moving `n` frames from `start` by `step` per frame (carried by hand or tray)."""
    return [{1: (start[0] + step[0] * k, start[1] + step[1] * k)} for k in range(n)]


JITTER = [{1: EDGE_OUT} if k % 3 == 2 else {1: EDGE_IN} for k in range(30)]  # one out in three
JITTER_2 = [{1: EDGE_OUT} if k % 3 else {1: EDGE_IN} for k in range(30)]  # two outs in three

CASES = [
    # (name, timeline, scans, zone settings, expected [(track, t)])
    ("scanned then carried off", seq((10, {1: IN}), (60, {1: OUT})), [scan(1.0)], {}, []),
    ("carried off without scan: alert at the exit moment",
        seq((10, {1: IN}), (60, {1: OUT})), [], {}, [(1, 2.0)]),
    ("scan with no movement", seq((100, {1: IN})), [scan(2.0)], {}, []),
    ("put down and picked up within the station", seq((10, {1: IN}), (10, {1: IN2}),
        (5, {}), (10, {1: IN}), (10, {1: IN2})), [], {}, []),
    ("late scan within grace", seq((10, {1: IN}), (100, {1: OUT})), [scan(9.0)], {}, []),
    ("late scan on the grace limit", seq((10, {1: IN}), (100, {1: OUT})), [scan(12.0)], {}, []),
    ("late scan after grace", seq((10, {1: IN}), (100, {1: OUT})), [scan(12.4)], {}, [(1, 2.0)]),
    ("late scan after a shorter grace", seq((10, {1: IN}), (100, {1: OUT})), [scan(9.0)],
        {"scan_grace_s": 5.0}, [(1, 2.0)]),
    ("scan on the window's start", seq((310, {1: IN}), (10, {1: OUT})), [scan(2.0)], {}, []),
    ("scan before the window", seq((310, {1: IN}), (10, {1: OUT})), [scan(1.8)], {},
        [(1, 62.0)]),
    ("two units, one scan: the later one alerts", seq((10, {1: IN, 2: IN2}),
        (5, {1: OUT, 2: IN2}), (60, {1: OUT, 2: OUT2})), [scan(0.4)], {}, [(2, 3.0)]),
    ("two units, two scans", seq((10, {1: IN, 2: IN2}), (5, {1: OUT, 2: IN2}),
        (60, {1: OUT, 2: OUT2})), [scan(0.4), scan(0.6, "SN2")], {}, []),
    ("one scan between two departures covers the first", seq((10, {1: IN, 2: IN2}),
        (100, {1: OUT, 2: IN2}), (60, {1: OUT, 2: OUT2})), [scan(5.0)], {}, [(2, 22.0)]),
    ("earliest scan first leaves the late one for the next unit", seq((10, {1: IN, 2: IN2}),
        (340, {1: OUT, 2: IN2}), (60, {1: OUT, 2: OUT2})), [scan(1.0), scan(11.0, "SN2")], {}, []),
    ("jitter at the edge shorter than K", seq((10, {1: IN})) + JITTER_2, [], {}, []),
    ("jitter at the edge, K=2 catches two outs in a row", seq((10, {1: IN})) + JITTER_2, [],
        {"exit_detections": 2}, [(1, 2.2)]),
    ("single outside detections never add up", seq((10, {1: IN})) + JITTER, [],
        {"exit_detections": 2}, []),
    ("track lost inside the station", seq((10, {1: IN}), (200, {})), [], {}, []),
    ("lost inside, found outside under the same id", seq((10, {1: IN}), (10, {}),
        (60, {1: OUT})), [], {}, [(1, 4.0)]),
    ("unit in a hand walks out", seq((10, {1: IN})) + walk(IN, (12.0, 0.0), 60), [], {},
        [(1, 3.0)]),
    ("carried through the station without stopping", seq((5, {1: OUT}), (4, {1: IN}),
        (60, {1: OUT})), [], {}, []),
    ("a short stay counts with dwell_s 0", seq((5, {1: OUT}), (4, {1: IN}), (60, {1: OUT})),
        [], {"dwell_s": 0.0}, [(1, 1.8)]),
    ("passing by outside, never in the station", seq((100, {1: OUT})), [], {}, []),
    ("leaves, comes back, leaves again: the scan covers one", seq((10, {1: IN}),
        (10, {1: OUT}), (90, {1: IN}), (60, {1: OUT})), [scan(1.0)], {}, [(1, 22.0)]),
    ("a tracker id switch on the way out", seq((10, {1: IN}), (2, {}), (60, {9: (230.0, 150.0)})),
        [], {}, [(9, 2.4)]),
    ("a scan at another station does not cover", seq((10, {1: IN}), (60, {1: OUT})),
        [scan(1.0, station="S02")], {}, [(1, 2.0)]),
]  # fmt: skip


@pytest.mark.parametrize(("timeline", "scans", "settings", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_departure_rule(timeline, scans, settings, expected):
    alerts = [a for _, a in run(DepartureRule(make_zone(**settings)), timeline, scans)]
    assert [(a.track, round(a.t, 3)) for a in alerts] == expected
    for a in alerts:
        assert (a.type, a.camera, a.zone, a.station) == ("unscanned_departure", "cam", "S01", "S01")
        assert a.ts == pytest.approx(TS0 + a.t)
        assert f"unit track {a.track} left station S01" in a.explanation
        assert untranslated(a.explanation) == []  # an officer reading Chinese reads all of it


def test_unit_in_a_tray_is_the_same_as_in_a_hand():
    """A wide tray box: only its foot point (bottom-centre) decides, so it leaves at x=200."""
    timeline = seq((10, {1: IN})) + walk(IN, (12.0, 0.0), 60)
    alerts = [a for _, a in run(DepartureRule(make_zone()), timeline, [], width=90.0)]
    assert [(a.track, round(a.t, 3)) for a in alerts] == [(1, 3.0)]


def test_people_never_depart():
    rule = DepartureRule(make_zone())
    for i, pos in enumerate(seq((10, {1: IN}), (60, {1: OUT}))):
        b = make_batch(i, pos)
        people = tuple(Detection("person", d.conf, d.box, d.track) for d in b.detections)
        assert rule.update(DetectionBatch("cam", i, b.t, b.ts, 640, 480, people)) == []
    assert rule.flush() == []


def test_alert_is_held_until_the_grace_window_has_passed_in_video_time():
    released = run(DepartureRule(make_zone()), seq((10, {1: IN}), (100, {1: OUT})), [])
    assert [(round(when, 3), round(a.t, 3)) for when, a in released] == [(12.2, 2.0)]


def test_a_later_scan_releases_an_alert_whose_grace_has_passed():
    rule = DepartureRule(make_zone())
    for i, units in enumerate(seq((10, {1: IN}), (5, {1: OUT}))):
        assert rule.update(make_batch(i, units)) == []
    # the camera stalls; the scanner's clock moves on past the grace of the departure at 2.0 s
    assert rule.add_scan(scan(11.0, "SN7")) == []  # within grace: it covers the unit
    for i, units in enumerate(seq((15, {2: IN}), (5, {2: OUT})), start=15):
        assert rule.update(make_batch(i, units)) == []
    got = rule.add_scan(scan(16.2, "SN8"))  # 10.2 s after unit 2 left at 6.0 s
    assert [(a.track, round(a.t, 3)) for a in got] == [(2, 6.0)]
    assert "scan SN7 at t=11.0 s was used by track 1 (left at t=2.0 s)" in got[0].explanation
    assert "outside that window: SN8 at t=16.2 s, 10.2 s after it left" in got[0].explanation


def test_flush_decides_what_is_pending_at_the_end():
    rule = DepartureRule(make_zone())
    timeline = seq((10, {1: IN}), (5, {1: OUT}))
    assert [a for i, u in enumerate(timeline) for a in rule.update(make_batch(i, u))] == []
    assert rule.flush(11.0) == []  # grace of the departure at 2.0 s not over yet
    assert [a.track for a in rule.flush()] == [1]
    assert rule.flush() == []


def test_explanation_names_the_scan_used_by_another_track():
    timeline = seq((10, {1: IN, 7: IN2}), (5, {1: IN, 7: OUT2}), (60, {1: OUT, 7: OUT2}))
    alerts = [a for _, a in run(DepartureRule(make_zone()), timeline, [scan(0.4, "SN123")])]
    assert len(alerts) == 1
    text = alerts[0].explanation
    assert "unit track 1 left station S01 (zone S01) at t=3.0 s" in text
    assert "seen outside in 3 detections in a row" in text
    assert "scan SN123 at t=0.4 s was used by track 7 (left at t=2.0 s)" in text


def test_explanation_without_any_scan_gives_the_window():
    timeline = seq((400, {1: IN}), (60, {1: OUT}))
    alerts = [a for _, a in run(DepartureRule(make_zone()), timeline, [scan(3.0, "SN9")])]
    assert len(alerts) == 1
    assert "no scan at S01 between t=20.0 s and t=90.0 s" in alerts[0].explanation
    assert "outside that window: SN9 at t=3.0 s, 77.0 s before it left" in alerts[0].explanation
    assert "(window 60 s before to 10 s after)" in alerts[0].explanation


@pytest.mark.parametrize(
    ("scan_offset_s", "skew_s", "alerts"),
    [(-5.0, 0.0, 0), (8.0, 0.0, 0), (14.0, 0.0, 1), (35.0, 30.0, 0), (35.0, 0.0, 1)],
)
def test_live_scans_compare_wall_clock_with_wall_clock(scan_offset_s, skew_s, alerts):
    """Live scans carry `ts` only: compared with the frames' `ts`, less the scanner's skew."""
    rule = DepartureRule(make_zone(clock_skew_s=skew_s))
    ts = datetime.fromtimestamp(TS0 + 2.0 + scan_offset_s, UTC)  # the unit leaves at TS0 + 2 s
    got = rule.add_scan(ScanEvent(ts=ts, station="S01", serial="SN1"))
    for i, units in enumerate(seq((10, {1: IN}), (60, {1: OUT}))):
        got += rule.update(make_batch(i, units))
    got += rule.flush()
    assert len(got) == alerts


def test_engine_routes_scans_to_their_station_and_reads_zone_settings():
    site = parse_site("""
cameras: [{id: cam, url: a.mp4}, {id: other, url: b.mp4}]
zones:
  - {id: S01, camera: cam, kind: station, station: S01, scan_grace_s: 2,
     polygon: [[100,100],[200,100],[200,200],[100,200]]}
  - {id: S02, camera: other, kind: station, station: S02,
     polygon: [[100,100],[200,100],[200,200],[100,200]]}
  - {id: cage, camera: cam, kind: restricted, polygon: [[300,300],[400,300],[400,400],[300,400]]}
""")
    engine = RuleEngine(site)
    s01 = next(r for r in engine.departures if r.zone.id == "S01")
    assert (s01.zone.exit_detections, s01.zone.scan_before_s, s01.zone.scan_grace_s) == (3, 60, 2)
    timeline = seq((10, {1: IN}), (60, {1: OUT}))
    got: list[Alert] = engine.add_scan(scan(1.0, station="S02"))  # S02's scan, S01's unit
    for i, units in enumerate(timeline):
        got += engine.process(make_batch(i, units))
        got += engine.process(make_batch(i, units, camera="other"))
    got += engine.add_scan(scan(4.4, station="S01"))  # 2.4 s late, S01's grace is 2 s
    got += engine.flush(camera="cam") + engine.flush(camera="other")
    assert sorted((a.camera, a.zone, a.track, a.t) for a in got) == [
        ("cam", "S01", 1, 2.0),
    ]
