"""Units carried off hidden: the departure rule follows a unit lost under a person through that
person. Tables of unit and person tracks, each with the alerts expected; pure, no model."""

from __future__ import annotations

import pytest

from alerts.departure import DepartureRule
from alerts.explain import untranslated
from alerts.types import Alert
from bondwatch.scans import ScanEvent
from bondwatch.site import Zone
from detectors.types import Detection, DetectionBatch

SQUARE = [(100.0, 100.0), (200.0, 100.0), (200.0, 200.0), (100.0, 200.0)]
AT_EDGE = [(400.0, 100.0), (640.0, 100.0), (640.0, 300.0), (400.0, 300.0)]  # runs to the picture's edge
IN = (150.0, 150.0)  # a unit on the bench
BESIDE = (150.0, 230.0)  # the foot point of a worker at it: the box covers the unit
FAR = (400.0, 400.0)  # a worker out of reach
FPS = 5
TS0 = 1_784_592_000.0

Pos = tuple[float, float]
Frame = tuple[dict[int, Pos], dict[int, Pos]]  # units, people: track id -> foot point


def frames(n: int, units: dict[int, Pos] | None = None, people: dict[int, Pos] | None = None) -> list[Frame]:
    return [(units or {}, people or {})] * n


def walk(n: int, start: Pos, step: Pos, person: int = 5, units: dict[int, Pos] | None = None) -> list[Frame]:
    """A person walking `n` frames from `start` by `step` per frame."""
    return [(units or {}, {person: (start[0] + step[0] * k, start[1] + step[1] * k)}) for k in range(n)]


def batch(i: int, frame: Frame) -> DetectionBatch:
    units, people = frame
    dets = [Detection("unit", 0.8, (x - 10, y - 20, x + 10, y), tid) for tid, (x, y) in units.items()]
    dets += [Detection("person", 0.9, (x - 25, y - 120, x + 25, y), tid) for tid, (x, y) in people.items()]
    return DetectionBatch("cam", i, i / FPS, TS0 + i / FPS, 640, 480, tuple(dets))


def run(zone: Zone, timeline: list[Frame], scans: list[ScanEvent]) -> list[Alert]:
    rule = DepartureRule(zone)
    todo = sorted(scans, key=lambda s: s.t or 0.0)
    out: list[Alert] = []
    for i, frame in enumerate(timeline):
        while todo and (todo[0].t or 0.0) <= i / FPS:
            out += rule.add_scan(todo.pop(0))
        out += rule.update(batch(i, frame))
    return out + rule.flush()


def zone(polygon: list[Pos] = SQUARE) -> Zone:
    return Zone(id="S01", camera="cam", kind="station", station="S01", polygon=polygon)


AT_BENCH = frames(10, {1: IN}, {5: BESIDE})  # 2 s at the station, the worker beside it
PICKED_UP = frames(5, {}, {5: BESIDE})  # the unit vanishes into the worker's hand
WALK_OFF = walk(30, BESIDE, (-12.0, 0.0))  # unit estimate leaves x=100 on the 6th frame: t=4.0 s

CASES = [
    # (name, zone, timeline, scans, expected [(track, t)])
    ("carried off hidden in a hand: alert when the estimate leaves", SQUARE,
        AT_BENCH + PICKED_UP + WALK_OFF, [], [(1, 4.0)]),
    ("carried off hidden, but scanned", SQUARE, AT_BENCH + PICKED_UP + WALK_OFF, [ScanEvent(t=1.0,
        station="S01", serial="SN1")], []),
    ("hidden behind a monitor: lost with nobody in reach", SQUARE,
        frames(10, {1: IN}, {5: FAR}) + frames(100, {}, {5: FAR}) + walk(30, FAR, (-12.0, 0.0)), [], []),
    ("a worker comes by only after it was lost", SQUARE,
        frames(10, {1: IN}) + frames(10) + walk(60, BESIDE, (-12.0, 0.0)), [], []),
    ("put down again inside, 4 s later, under a new id", SQUARE, AT_BENCH + PICKED_UP
        + walk(5, BESIDE, (-6.0, 0.0)) + frames(20, {}, {5: (120.0, 230.0)})
        + walk(30, (120.0, 230.0), (-12.0, 0.0), units={2: (122.0, 150.0)}), [], []),
    ("only hidden by the worker, seen again as the worker walks off", SQUARE,
        AT_BENCH + PICKED_UP + WALK_OFF[:10] + walk(20, (30.0, 230.0), (-12.0, 0.0), units={1: IN}), [], []),
    ("another unit put where it was, later: the departure stands", SQUARE,
        AT_BENCH + PICKED_UP + WALK_OFF + frames(30, {1: IN}), [], [(1, 4.0)]),
    ("carrier switches track id on the way out", SQUARE,
        AT_BENCH + PICKED_UP + WALK_OFF[:3] + walk(27, (114.0, 230.0), (-12.0, 0.0), person=9), [],
        [(1, 4.0)]),
    ("carrier lost mid-way, nowhere near the picture's edge: unknown, no alert", SQUARE,
        AT_BENCH + PICKED_UP + WALK_OFF[:3] + frames(60), [], []),
    ("carried out of the picture", AT_EDGE, frames(10, {1: (600.0, 150.0)}, {5: (600.0, 230.0)})
        + frames(5, {}, {5: (600.0, 230.0)}) + walk(3, (600.0, 230.0), (12.0, 0.0)) + frames(20), [],
        [(1, 3.4)]),
    ("a duplicate box of the unit leaves with it once", SQUARE,
        frames(10, {1: IN, 2: (151.0, 151.0)}, {5: BESIDE}) + PICKED_UP + WALK_OFF, [], [(1, 4.0)]),
    ("a new id for the unit as it is lifted", SQUARE,
        AT_BENCH + frames(3, {2: (150.0, 132.0)}, {5: BESIDE}) + PICKED_UP + WALK_OFF, [], [(2, 4.6)]),
    ("two tracks of one unit being lifted leave once", SQUARE,
        AT_BENCH + frames(10, {1: IN, 2: (150.0, 132.0)}, {5: BESIDE}) + PICKED_UP + WALK_OFF, [],
        [(1, 6.0)]),
    ("two units side by side, carried off together", SQUARE,  # the one 30 px right leaves later
        AT_BENCH + frames(10, {1: IN, 2: (180.0, 150.0)}, {5: BESIDE}) + PICKED_UP + WALK_OFF, [],
        [(1, 6.0), (2, 6.4)]),
    ("a short stay below dwell_s does not count", SQUARE,
        frames(5, {1: IN}, {5: BESIDE}) + PICKED_UP + WALK_OFF, [], []),
]  # fmt: skip


@pytest.mark.parametrize(("polygon", "timeline", "scans", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_carried_units(polygon, timeline, scans, expected):
    alerts = run(zone(polygon), timeline, scans)
    assert [(a.track, round(a.t, 3)) for a in alerts] == expected
    assert [s for a in alerts for s in untranslated(a.explanation)] == []


def test_a_carried_departure_explains_itself():
    (alert,) = run(zone(), AT_BENCH + PICKED_UP + WALK_OFF, [])
    assert alert.explanation.startswith(
        "unit track 1 left station S01 (zone S01) at t=4.0 s, carried: last seen at t=1.8 s under"
        " person track 5, not seen at the station again, and that person took it out of the station"
    )
    assert alert.ts == pytest.approx(TS0 + 4.0)
    assert alert.carrier == 5  # the snapshot shows this person (alerts/evidence.py)


def test_a_carried_departure_waits_for_the_unit_to_show_up_even_with_no_grace():
    """With a zone grace of 0 s a carried departure still waits 3 s, long enough to be withdrawn."""
    z = Zone(id="S01", camera="cam", kind="station", station="S01", polygon=SQUARE, scan_grace_s=0.0)
    timeline = AT_BENCH + PICKED_UP + WALK_OFF[:10] + frames(30, {1: IN})
    assert run(z, timeline, []) == []
