"""Rule state handed from one owner of a camera to the next (RuleEngine.export_state /
restore_state), from tables: pure, no model, no clock, no Redis.

Each case runs a timeline of tracked people and units three ways: one owner seeing it all (the
reference), two owners with the state handed over through JSON (the old one sees the frames
before the handover, the new one those after a gap, on a new stream whose video time starts at
0 and whose tracker numbers the same objects anew), and two owners without the state (what
happened before this existed). Scans and badges reach every owner, as the scan stream does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from alerts.rules import RuleEngine
from alerts.types import Alert
from bondwatch.scans import ScanEvent
from bondwatch.site import parse_site
from detectors.types import Detection, DetectionBatch

FPS = 5
TS0 = 1_750_000_000.0
NEW_IDS = 100  # the new owner's tracker calls track k `k + 100`
CAGE_IN, CAGE_IN2, CAGE_OUT = (350.0, 350.0), (320.0, 390.0), (250.0, 350.0)
S01_IN, S01_OUT = (150.0, 150.0), (150.0, 260.0)
S01_IN2, S01_OUT2 = (120.0, 180.0), (100.0, 260.0)  # a second unit beside the first
SITE = """
cameras: [{{id: cam, url: a.mp4}}]
zones:
  - {{id: cage, camera: cam, kind: restricted, dwell_s: {dwell}, badge_window_s: {window},
     polygon: [[300,300],[400,300],[400,400],[300,400]]}}
  - {{id: S01, camera: cam, kind: station, station: S01, dwell_s: 2, scan_grace_s: 3,
     scan_before_s: 5, polygon: [[100,100],[200,100],[200,200],[100,200]]}}
"""

Frame = dict[tuple[str, int], tuple[float, float]]  # (class, track) -> foot point


def person(*feet: tuple[float, float]) -> Frame:
    return {("person", k + 1): f for k, f in enumerate(feet)}


def unit(foot: tuple[float, float]) -> Frame:
    return {("unit", 1): foot}


def seq(*parts: tuple[int, Frame]) -> list[Frame]:
    return [frame for n, frame in parts for _ in range(n)]


def batch(i: int, frame: Frame, t: float, ids: int = 0) -> DetectionBatch:
    dets = tuple(
        Detection(cls=cls, conf=0.8, box=(x - 10, y - 60, x + 10, y), track=tid + ids)
        for (cls, tid), (x, y) in frame.items()
    )
    return DetectionBatch("cam", i, t, TS0 + i / FPS, 640, 480, dets)


def live(kind: str, at_s: float, **kw: str) -> ScanEvent:
    """A live scan or badge stamped `at_s` seconds after the first frame's wall clock."""
    return ScanEvent(kind=kind, ts=datetime.fromtimestamp(TS0 + at_s, UTC), **kw)  # type: ignore[arg-type]


def feed(engines: list[RuleEngine], events: list[ScanEvent], upto: float) -> list[Alert]:
    """Scans and badges up to wall-clock `upto` go to every engine (every worker reads them)."""
    out: list[Alert] = []
    while events and events[0].ts is not None and events[0].ts.timestamp() <= upto:
        e = events.pop(0)
        for i, engine in enumerate(engines):
            got = engine.add_scan(e)
            out += got if i == len(engines) - 1 else []  # only the owner's alerts count
    return out


def one_owner(site_text: str, timeline: list[Frame], events: list[ScanEvent]) -> list[Alert]:
    engine = RuleEngine(parse_site(site_text))
    todo, out = list(events), []
    for i, frame in enumerate(timeline):
        b = batch(i, frame, i / FPS)
        out += feed([engine], todo, b.ts)
        out += engine.process(b)
    return out + feed([engine], todo, float("inf")) + engine.flush()


def two_owners(
    site_text: str, timeline: list[Frame], events: list[ScanEvent], at: int, gap: int, handed: bool
) -> list[Alert]:
    """Frames [0, at) on the old owner, [at + gap, end) on the new one (its video time from 0)."""
    old, new = RuleEngine(parse_site(site_text)), RuleEngine(parse_site(site_text))
    todo, out = list(events), []
    for i, frame in enumerate(timeline[:at]):
        b = batch(i, frame, i / FPS)
        out += feed([new, old], todo, b.ts)
        out += old.process(b)
    state = json.loads(json.dumps(old.export_state("cam")))  # what travels through Redis
    old.restore_state("cam", None)  # the old owner lets the camera go
    new.restore_state("cam", state if handed else None)
    start = at + gap
    for i in range(start, len(timeline)):
        b = batch(i, timeline[i], (i - start) / FPS, ids=NEW_IDS)
        out += feed([old, new], todo, b.ts)
        out += new.process(b)
    return out + feed([old, new], todo, float("inf")) + new.flush()


def summary(alerts: list[Alert]) -> list[tuple[str, str | None, int | None, float]]:
    return sorted((a.type, a.zone, a.track, round(a.t, 3)) for a in alerts)


ENTRY, DEPART = "unauthorized_entry", "unscanned_departure"
CASES = [
    # (name, (dwell, badge window), timeline, events, handover frame, gap frames,
    #  expected with the state handed over, expected without, same as one owner)
    ("alerted before the handover, still inside: not again", (1, 0),
     seq((5, person(CAGE_OUT)), (60, person(CAGE_IN))), [], 30, 10,
     [(ENTRY, "cage", 1, 1.0)], [(ENTRY, "cage", 1, 1.0), (ENTRY, "cage", 101, 0.0)], True),
    ("two people inside: neither again", (1, 0),
     seq((5, person(CAGE_OUT, CAGE_OUT)), (60, person(CAGE_IN, CAGE_IN2))), [], 30, 10,
     [(ENTRY, "cage", 1, 1.0), (ENTRY, "cage", 2, 1.0)],
     [(ENTRY, "cage", 1, 1.0), (ENTRY, "cage", 2, 1.0), (ENTRY, "cage", 101, 0.0),
      (ENTRY, "cage", 102, 0.0)], True),
    ("entry waiting for its badge window: decided once, by the new owner", (1, 5),
     seq((5, person(CAGE_OUT)), (60, person(CAGE_IN))), [], 20, 5,
     [(ENTRY, "cage", 1, 1.0)], [(ENTRY, "cage", 101, 0.0)], True),
    ("a badge after the handover still covers the waiting entry", (1, 5),
     seq((5, person(CAGE_OUT)), (60, person(CAGE_IN))), [live("badge", 5.5, zone="cage")], 20, 5,
     [], [], True),
    ("a badge the old owner used is not used again", (1, 5),
     seq((5, person(CAGE_OUT, CAGE_OUT)), (5, person(CAGE_IN, CAGE_OUT)),
         (60, person(CAGE_IN, CAGE_IN2))), [live("badge", 0.5, zone="cage")], 20, 5,
     [(ENTRY, "cage", 2, 2.0)], [(ENTRY, "cage", 102, 0.0)], True),
    ("dwell not reached at the handover: counted from the first entry", (3, 0),
     seq((5, person(CAGE_OUT)), (60, person(CAGE_IN))), [], 15, 5,
     [(ENTRY, "cage", 101, 1.0)], [(ENTRY, "cage", 101, 0.0)], True),
    ("seen again only after the adoption window: a new entry (the limit)", (1, 0),
     seq((5, person(CAGE_OUT)), (25, person(CAGE_IN)), (30, {}), (30, person(CAGE_IN))), [], 28, 2,
     [(ENTRY, "cage", 1, 1.0), (ENTRY, "cage", 101, 6.0)],
     [(ENTRY, "cage", 1, 1.0), (ENTRY, "cage", 101, 6.0)], False),
    # (seen leaving by the new owner: `t` is the new stream's video time, 6.0 - 4.6 s)
    ("unit at the station leaves after the handover: its stay counts", (1, 0),
     seq((30, unit(S01_IN)), (40, unit(S01_OUT))), [], 20, 3,
     [(DEPART, "S01", 101, 1.4)], [], True),
    ("departure waiting for its scan: decided once, by the new owner", (1, 0),
     seq((20, unit(S01_IN)), (60, unit(S01_OUT))), [], 25, 5,
     [(DEPART, "S01", 1, 4.0)], [], True),
    ("a scan after the handover still covers the waiting departure", (1, 0),
     seq((20, unit(S01_IN)), (60, unit(S01_OUT))), [live("scan", 6.5, station="S01", serial="SN1")],
     25, 5, [], [], True),
    ("a scan the old owner's departure used does not cover the next", (1, 0),
     seq((20, {("unit", 1): S01_IN, ("unit", 2): S01_IN2}), (10, {("unit", 1): S01_OUT,
          ("unit", 2): S01_IN2}), (60, {("unit", 1): S01_OUT, ("unit", 2): S01_OUT2})),
     [live("scan", 3.5, station="S01", serial="SN1")], 35, 5,
     [(DEPART, "S01", 2, 6.0)], [], True),
]  # fmt: skip


@pytest.mark.parametrize(
    "name,settings,timeline,events,at,gap,handed,fresh,same", CASES, ids=[c[0] for c in CASES]
)
def test_rule_state_handed_over(name, settings, timeline, events, at, gap, handed, fresh, same):
    site_text = SITE.format(dwell=settings[0], window=settings[1])
    got = two_owners(site_text, timeline, events, at, gap, handed=True)
    assert summary(got) == handed
    assert summary(two_owners(site_text, timeline, events, at, gap, handed=False)) == fresh
    reference = one_owner(site_text, timeline, events)
    if same:
        # The same events at the same wall-clock times with the same ids: if both owners raise
        # one, the store keeps it once. (`t` is the video time of the stream it was seen in.)
        key = sorted((a.type, a.zone, a.ts, a.id) for a in got)
        assert key == sorted((a.type, a.zone, a.ts, a.id) for a in reference)
    assert len({a.id for a in got}) == len(got)


def test_an_alert_raised_twice_across_a_handover_has_one_id():
    """The old owner raised the entry after its last checkpoint: the new owner, restored from
    that checkpoint, raises it again with the same id, which the store keeps once."""
    site_text = SITE.format(dwell=1, window=2)
    timeline = seq((5, person(CAGE_OUT)), (60, person(CAGE_IN)))
    old, new = RuleEngine(parse_site(site_text)), RuleEngine(parse_site(site_text))
    first: list[Alert] = []
    for i, frame in enumerate(timeline[:30]):
        if i == 12:
            checkpoint = json.loads(json.dumps(old.export_state("cam")))  # entry still waiting
        first += old.process(batch(i, frame, i / FPS))
    assert summary(first) == [(ENTRY, "cage", 1, 1.0)]  # raised at t > 3.0, after the checkpoint
    new.restore_state("cam", checkpoint)
    again = [a for i in range(32, 65) for a in new.process(batch(i, timeline[i], (i - 32) / FPS, NEW_IDS))]
    assert [(a.id, a.t, a.ts) for a in again] == [(a.id, a.t, a.ts) for a in first]


def test_frames_older_than_the_snapshot_are_ignored_and_times_map_by_wall_clock():
    site_text = SITE.format(dwell=1, window=5)
    old, new = RuleEngine(parse_site(site_text)), RuleEngine(parse_site(site_text))
    timeline = seq((5, person(CAGE_OUT)), (40, person(CAGE_IN)))
    for i, frame in enumerate(timeline[:20]):
        old.process(batch(i, frame, 100.0 + i / FPS))  # the old stream's video time starts at 100
    state = old.export_state("cam")
    assert state["at_t"] == pytest.approx(103.8) and state["at_ts"] == pytest.approx(TS0 + 3.8)
    assert [p["origin"] for p in state["zones"]["cage"]["people"]] == [1]
    new.restore_state("cam", state)
    assert new.export_state("cam") is state  # not applied yet: a checkpoint now keeps it whole
    assert new.process(batch(10, timeline[10], 0.0, NEW_IDS)) == []  # older than the snapshot
    got = [a for i in range(21, 45) for a in new.process(batch(i, timeline[i], (i - 21) / FPS, NEW_IDS))]
    assert summary(got) == [(ENTRY, "cage", 1, 101.0)]  # the old stream's video time of the entry
    assert got[0].ts == pytest.approx(TS0 + 1.0)
    assert new.export_state("cam")["zones"]["cage"]["people"][0]["origin"] == 1


def test_a_snapshot_of_another_camera_is_refused():
    engine = RuleEngine(parse_site(SITE.format(dwell=1, window=0)))
    with pytest.raises(ValueError, match="not a rule state snapshot"):
        engine.restore_state("cam", {"v": 1, "camera": "other", "zones": {}})
