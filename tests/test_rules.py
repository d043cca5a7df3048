"""The restricted-zone rule, from tables of tracks and badges: pure, no model, no clock."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from alerts.explain import untranslated
from alerts.rules import RestrictedZoneRule, RuleEngine, Schedule
from bondwatch.scans import ScanEvent
from bondwatch.site import SiteError, Zone, parse_site
from detectors.types import Detection, DetectionBatch

SQUARE = [(100.0, 100.0), (200.0, 100.0), (200.0, 200.0), (100.0, 200.0)]
IN, OUT, EDGE_IN, EDGE_OUT = (150.0, 150.0), (50.0, 150.0), (101.0, 150.0), (99.0, 150.0)
FPS = 10


def make_zone(dwell_s: float = 1.0, exit_s: float = 1.0, **kw: object) -> Zone:
    return Zone(id="cage", camera="cam", kind="restricted", polygon=SQUARE, dwell_s=dwell_s,
                exit_s=exit_s, **kw)  # fmt: skip


def make_batch(
    i: int, people: dict[int, tuple[float, float]], cls: str = "person", ts0: float = 1_000_000
) -> DetectionBatch:
    """Frame `i` at FPS with each track's foot point at the given position; wall clock from ts0."""
    dets = tuple(
        Detection(cls=cls, conf=0.8, box=(x - 10, y - 60, x + 10, y), track=tid)
        for tid, (x, y) in people.items()
    )
    return DetectionBatch("cam", i, i / FPS, ts0 + i / FPS, 640, 480, dets)


def badge(t: float, name: str = "B-W4", zone: str = "cage") -> ScanEvent:
    return ScanEvent(kind="badge", zone=zone, t=t, badge=name)


def run(rule: RestrictedZoneRule, timeline: list[dict[int, tuple[float, float]]],
        badges: list[ScanEvent] = (), ts0: float = 1_000_000):  # fmt: skip
    """Feed each replay badge before the first frame that passes its `t` (as replay does), live
    ones (`ts` only, stamped by the reader's clock) before the first frame; flush at the end."""
    live = [b for b in badges if b.t is None]
    alerts = [a for b in live for a in rule.add_badge(b)]
    todo = sorted((b for b in badges if b.t is not None), key=lambda b: b.t)
    for i, people in enumerate(timeline):
        batch = make_batch(i, people, ts0=ts0)
        while todo and todo[0].t <= batch.t:
            alerts += rule.add_badge(todo.pop(0))
        alerts += rule.update(batch)
    for b in todo:
        alerts += rule.add_badge(b)
    return alerts + rule.flush()


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
    ("lost inside before the dwell, not seen leaving: an entry", seq((10, {1: OUT}), (4, {1: IN}),
        (30, {})), 1.0, [(1, 1.0)]),
    ("a glimpse inside, then lost: no entry", seq((10, {1: OUT}), (2, {1: IN}), (30, {})), 1.0, []),
    ("lost inside, then seen leaving before the dwell: no entry", seq((10, {1: OUT}), (4, {1: IN}),
        (3, {}), (20, {1: OUT})), 1.0, []),
]


@pytest.mark.parametrize(("timeline", "dwell", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_restricted_zone_rule(timeline, dwell, expected):
    alerts = run(RestrictedZoneRule(make_zone(dwell)), timeline)
    assert [(a.track, round(a.t, 3)) for a in alerts] == expected
    for a in alerts:
        assert a.type == "unauthorized_entry" and a.zone == "cage" and a.camera == "cam"
        assert f"track {a.track}" in a.explanation
        assert untranslated(a.explanation) == []


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
    assert [(a.camera, a.zone) for a in got + engine.flush()] == [("cam", "cage")]
    for i in range(40):  # the same person inside the same pixels of another camera: no zone there
        b = make_batch(i, {1: IN})
        other = DetectionBatch("other", i, b.t, b.ts, 640, 480, b.detections)
        assert engine.process(other) == []


# Badge events authorize entries: one person per badge (unless the zone says more), within
# badge_window_s (10 s) before or after the badge. Entry at t=1.0 unless the timeline says else.
ENTERS = seq((10, {1: OUT}), (30, {1: IN}), (100, {1: OUT}))
TWO_ENTER = seq((10, {1: OUT, 2: OUT}), (15, {1: IN, 2: OUT}), (30, {1: IN, 2: IN}), (100, {}))
BADGE_CASES = [
    # (name, timeline, badges, zone options, expected [(track, t)])
    ("badged entry: no alert", ENTERS, [badge(0.6)], {}, []),
    ("no badge: alert", ENTERS, [], {}, [(1, 1.0)]),
    ("badge for one, two enter: one alert", TWO_ENTER, [badge(0.6)], {}, [(2, 2.5)]),
    ("badge for one, two enter, the badge was for the second", TWO_ENTER, [badge(2.2)], {},
     [(1, 1.0)]),
    ("two per badge admits both", TWO_ENTER, [badge(0.6)], {"persons_per_badge": 2}, []),
    ("two badges admit two", TWO_ENTER, [badge(0.6), badge(2.2, "B-W5")], {}, []),
    ("badge too early", seq((120, {1: OUT}), (30, {1: IN})), [badge(1.5)], {}, [(1, 12.0)]),
    ("badge too late", ENTERS, [badge(11.5)], {}, [(1, 1.0)]),
    ("late badge within window: no alert", ENTERS, [badge(6.0)], {}, []),
    ("badge just before the window's end", ENTERS, [badge(10.9)], {}, []),
    ("badge at another zone", ENTERS, [badge(0.6, zone="vault")], {}, [(1, 1.0)]),
    ("one badge, coming back is a second entry", seq((10, {1: OUT}), (15, {1: IN}), (20, {1: OUT}),
        (15, {1: IN}), (100, {1: OUT})), [badge(0.6)], {}, [(1, 4.5)]),
    ("shorter window", ENTERS, [badge(4.0)], {"badge_window_s": 2.0}, [(1, 1.0)]),
    ("window 0: a badge at the entry frame", ENTERS, [badge(1.0)], {"badge_window_s": 0.0}, []),
    ("entry that never reaches the dwell uses no badge", seq((10, {1: OUT, 2: OUT}),
        (5, {1: IN}), (20, {1: OUT}), (30, {2: IN}), (100, {})), [badge(0.6)], {}, []),
]


@pytest.mark.parametrize(("timeline", "badges", "options", "expected"), [c[1:] for c in BADGE_CASES],
                         ids=[c[0] for c in BADGE_CASES])  # fmt: skip
def test_badges_authorize_entries(timeline, badges, options, expected):
    alerts = run(RestrictedZoneRule(make_zone(**options)), timeline, badges)
    assert [(a.track, round(a.t, 3)) for a in alerts] == expected
    assert [s for a in alerts for s in untranslated(a.explanation)] == []


def test_unbadged_entry_waits_for_the_window_in_capture_time():
    """No badge: the alert comes from the first frame past entry + window (t > 11.0), not before."""
    rule = RestrictedZoneRule(make_zone())
    raised = [i for i, p in enumerate(ENTERS) for _ in rule.update(make_batch(i, p))]
    assert raised == [111]
    assert rule.flush() == []


def test_a_late_badge_ends_the_window_of_earlier_entries():
    """A badge 11.5 s after an entry cannot cover it: its arrival decides the entry at once."""
    rule = RestrictedZoneRule(make_zone())
    assert [a for i, p in enumerate(ENTERS[:40]) for a in rule.update(make_batch(i, p))] == []
    assert [(a.track, a.t) for a in rule.add_badge(badge(11.5))] == [(1, 1.0)]


def test_explanation_names_the_badges_considered():
    timeline = seq((10, {5: OUT, 9: OUT}), (20, {5: IN, 9: OUT}), (40, {5: IN, 9: IN}), (100, {}))
    alerts = run(RestrictedZoneRule(make_zone()), timeline, [badge(0.6)])
    assert [(a.track, a.t) for a in alerts] == [(9, 3.0)]
    why = alerts[0].explanation
    assert "person track 9 entered restricted zone cage at t=3.0s" in why
    assert "badge B-W4 at t=0.6 s authorized track 5 (1 per badge)" in why
    assert "track 9 entered 2.4 s after badge B-W4 without a badge of its own" in why


def test_explanation_without_a_badge_in_the_window_names_the_nearest():
    timeline = seq((120, {1: OUT}), (30, {1: IN}))
    alerts = run(RestrictedZoneRule(make_zone()), timeline, [badge(1.5, "B-W7")])
    assert len(alerts) == 1
    why = alerts[0].explanation
    assert "no badge at zone cage within 10 s of the entry" in why
    assert "nearest badge: B-W7 at t=1.5 s, the entry 10.5 s after it" in why


SHANGHAI = ZoneInfo("Asia/Shanghai")


def local_ts(hh: int, mm: int) -> float:
    """Wall clock of 2026-07-21 hh:mm in Shanghai: ts0 of a live timeline."""
    return datetime(2026, 7, 21, hh, mm, tzinfo=SHANGHAI).timestamp()


def live_badge(ts0: float, after_s: float) -> ScanEvent:
    """A live badge event (`ts` only) stamped after_s into the timeline by the reader's clock."""
    return ScanEvent(kind="badge", zone="cage", ts=datetime.fromtimestamp(ts0 + after_s, UTC),
                     badge="B-W4")


# Open hours, read from the frames' wall clock (live): the entry is at ts0 + 1.0 s.
SCHEDULE_CASES = [
    # (name, local start hh:mm, open_hours, badge offset from the start or None, options, alerts)
    ("open hours, badge: no alert", (9, 0), ["08:00-12:00", "13:00-18:00"], 0.6, {}, 0),
    ("open hours, no badge: alert", (9, 0), ["08:00-12:00", "13:00-18:00"], None, {}, 1),
    ("lunch break, badge: alert", (12, 30), ["08:00-12:00", "13:00-18:00"], 0.6, {}, 1),
    ("night, badge: alert", (23, 0), ["08:00-18:00"], 0.6, {}, 1),
    ("night shift spans midnight, badge: no alert", (23, 0), ["22:00-06:00"], 0.6, {}, 0),
    ("no open hours: always open", (3, 0), [], 0.6, {}, 0),
    ("reader clock 30 s ahead, skew configured", (9, 0), [], 30.6, {"clock_skew_s": 30.0}, 0),
    ("reader clock 30 s ahead, skew not configured", (9, 0), [], 30.6, {}, 1),
]


@pytest.mark.parametrize(("start", "hours", "badge_at", "options", "alerts"),
                         [c[1:] for c in SCHEDULE_CASES], ids=[c[0] for c in SCHEDULE_CASES])  # fmt: skip
def test_open_hours_and_live_badges(start, hours, badge_at, options, alerts):
    ts0 = local_ts(*start)
    rule = RestrictedZoneRule(make_zone(open_hours=hours, **options), Schedule(SHANGHAI))
    badges = [] if badge_at is None else [live_badge(ts0, badge_at)]
    got = run(rule, ENTERS, badges, ts0=ts0)
    assert [(a.track, a.t, a.ts) for a in got] == [(1, 1.0, ts0 + 1.0)] * alerts


def test_closed_hours_alert_is_immediate_and_says_why():
    ts0 = local_ts(12, 30)
    rule = RestrictedZoneRule(make_zone(open_hours=["08:00-12:00", "13:00-18:00"]), Schedule(SHANGHAI))
    rule.add_badge(live_badge(ts0, 0.6))
    raised = [(i, a) for i, p in enumerate(ENTERS) for a in rule.update(make_batch(i, p, ts0=ts0))]
    assert [i for i, _ in raised] == [20]  # at the dwell: no badge can help, so no wait
    why = raised[0][1].explanation
    assert "closed hours: entered at 12:30 Asia/Shanghai, zone cage is open 08:00-12:00, 13:00-18:00" in why
    assert "badge B-W4 at 2026-07-21T04:30:00.600+00:00 admits no one at closed hours" in why
    assert untranslated(why) == []


ENGINE_SITE = """
timezone: Asia/Shanghai
{start}
cameras: [{{id: cam, url: a.mp4}}, {{id: other, url: b.mp4}}]
zones:
  - {{id: cage, camera: cam, kind: restricted, open_hours: ['08:00-18:00'],
     polygon: [[100,100],[200,100],[200,200],[100,200]]}}
  - {{id: s1, camera: other, kind: station, station: s1, polygon: [[0,0],[50,0],[50,50]]}}
"""


@pytest.mark.parametrize(
    ("start", "replay", "ts0", "alerts"),
    [
        ("", True, local_ts(20, 0), 0),  # replay without replay_start: open hours ignored
        ("replay_start: 2026-07-21T20:00:00", True, local_ts(9, 0), 1),  # replay at 20:00 local
        ("replay_start: 2026-07-21T09:00:00", True, local_ts(20, 0), 0),  # replay at 09:00 local
        ("replay_start: 2026-07-21T20:00:00", False, local_ts(9, 0), 0),  # live: the frames' clock
        ("", False, local_ts(20, 0), 1),  # live at 20:00
    ],
)
def test_engine_routes_badges_and_reads_open_hours_by_mode(start, replay, ts0, alerts):
    engine = RuleEngine(parse_site(ENGINE_SITE.format(start=start)), replay=replay)
    assert engine.add_scan(badge(0.6)) == []
    assert engine.add_scan(ScanEvent(station="s1", serial="SN1", t=0.7)) == []
    got = [a for i, p in enumerate(ENTERS) for a in engine.process(make_batch(i, p, ts0=ts0))]
    got += engine.flush()
    assert [(a.zone, a.track, a.t) for a in got] == [("cage", 1, 1.0)] * alerts


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("open_hours: ['8:00-12:00']", "open hours '8:00-12:00' are not HH:MM-HH:MM"),
        ("open_hours: ['12:00-12:00']", "open hours '12:00-12:00' are not HH:MM-HH:MM"),
        ("open_hours: ['08:00-24:30']", "open hours '08:00-24:30' are not HH:MM-HH:MM"),
        ("persons_per_badge: 0", "Input should be greater than or equal to 1"),
        ("badge_window_s: -1", "Input should be greater than or equal to 0"),
    ],
)
def test_badge_and_schedule_fields_are_validated(change, message):
    text = f"""
timezone: Asia/Shanghai
cameras: [{{id: cam, url: a.mp4}}]
zones:
  - {{id: cage, camera: cam, kind: restricted, {change}, polygon: [[0,0],[9,0],[9,9]]}}
"""
    with pytest.raises(SiteError) as e:
        parse_site(text)
    assert any(message in err and "line 5" in err for err in e.value.errors), e.value.errors


def test_unknown_time_zone_is_refused():
    with pytest.raises(SiteError, match="unknown time zone 'Asia/Shanghia'"):
        parse_site("timezone: Asia/Shanghia\ncameras: [{id: cam, url: a.mp4}]\n")


def test_rules_over_a_rendered_badged_entry_give_exactly_the_truth(tmp_path):
    """The simulator's truth admits a badged entry and reports an unbadged one: the rules, fed
    its perfect label boxes and its scan feed (badges included), agree alert for alert."""
    import json

    import yaml

    from bondwatch.site import load_site
    from sim.dataset import read_labels
    from sim.render import render
    from sim.scenario import parse_scenario

    scenario = {
        "name": "badges",
        "layout": {"width_m": 8, "depth_m": 6, "canvas": [320, 180], "fps": 5, "duration_s": 24},
        "cameras": [{"id": "cam1", "pose": "oblique", "position": [0.3, 0.3, 3.2],
                     "look_at": [4.5, 3.5], "hfov_deg": 90}],
        "restricted": [{"id": "cage", "polygon": [[5.0, 3.6], [7.6, 3.6], [7.6, 5.7], [5.0, 5.7]],
                        "gate": [5.6, 3.6]}],
        "actors": [
            {"id": "w1", "start": [4.0, 3.0],
             "script": [{"enter": "cage", "authorized": True, "stay_s": 3}]},
            {"id": "w2", "start": [4.0, 3.2], "appear_at": 3,
             "script": [{"enter": "cage", "stay_s": 3}]},
        ],
    }  # fmt: skip
    result = render(parse_scenario(yaml.safe_dump(scenario)), tmp_path, 0)
    events = [json.loads(line) for line in result.scans.read_text().splitlines()]
    assert [(e["kind"], e["zone"], e["badge"]) for e in events] == [("badge", "cage", "B-W1")]
    engine = RuleEngine(load_site(result.site), replay=True)
    labels = read_labels(result.labels["cam1"])
    alerts = []
    for f in range(1, result.frames + 1):
        t = (f - 1) / result.fps
        while events and events[0]["t"] <= t:
            alerts += engine.add_scan(ScanEvent.model_validate(events.pop(0)))
        dets = tuple(
            Detection(("person", "unit")[c], 1.0, (x, y, x + w, y + h), track)
            for track, c, x, y, w, h, _ in labels.get(f, [])
        )
        alerts += engine.process(DetectionBatch("cam1", f - 1, t, t, 320, 180, dets))
    alerts += engine.flush()
    got = sorted((a.type, a.zone, a.track, round(a.t, 1)) for a in alerts)
    truth = [json.loads(line) for line in result.truth.read_text().splitlines()]
    assert [(a["type"], a["track"]) for a in truth] == [("unauthorized_entry", 2)]
    assert got == sorted((a["type"], a["zone"], a["track"], round(a["t"], 1)) for a in truth)
