"""The overview's camera uptime: up, down (the alerts) and unwatched (the service not running).

Each case records a camera through a real RecordingStore (segments with holes, reported
outages, retention) and checks the exact seconds and fractions of one window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dashboard.routes.overview import camera_uptime
from streams.recordings import NOT_RUNNING, NewSegment, RecordingStore

S = 1_700_000_000.0  # the window's start
END = S + 10_000.0  # and its end ("now")
CAM = "gate"


@dataclass(frozen=True)
class Case:
    steps: list[tuple[str, float, float]] = field(default_factory=list)  # ("seg", from, to) / ("outage", ...)
    alerts: list[tuple[str, float]] = field(default_factory=list)  # (type, ts) of CAM's health alerts
    # expected: up_s, down_s, unwatched_s, since_ts, uptime, unwatched, outages
    want: tuple[float, float, float, float, float, float, int] = (0, 0, 0, S, 0, 0, 0)
    retain_after: float | None = None  # retention removes segments that ended before this
    recording: bool = True


CASES = {
    "all up, recorded the whole window": Case(
        steps=[("seg", S - 100, S + 5000), ("seg", S + 5000, END)],
        want=(10_000, 0, 0, S, 1.0, 0.0, 0),
    ),
    # The camera went dark: an offline alert, a reported outage (not a service stop), back online.
    "offline then online": Case(
        steps=[("seg", S - 100, S + 1000), ("outage", 0, 0), ("seg", S + 1600, END)],
        alerts=[("camera_offline", S + 1000), ("camera_online", S + 1600)],
        want=(9400, 600, 0, S, 0.94, 0.0, 1),
    ),
    "offline and still down now": Case(
        steps=[("seg", S - 100, S + 9000), ("outage", 0, 0)],
        alerts=[("camera_offline", S + 9000)],
        want=(9000, 1000, 0, S, 0.9, 0.0, 1),
    ),
    # A hole between two segments that nobody reported: the service was stopped or crashed.
    "service stopped": Case(
        steps=[("seg", S - 100, S + 2000), ("seg", S + 2500, END)],
        want=(9500, 0, 500, S, 0.95, 0.05, 0),
    ),
    "service stopped over the window's start": Case(
        steps=[("seg", S - 3000, S - 2000), ("seg", S + 1000, END)],
        want=(9000, 0, 1000, S, 0.9, 0.1, 0),
    ),
    # Down 1000-3000 by the alerts, not running 1500-2500: those 1000 s count once, as unwatched.
    "outage overlapping a service stop": Case(
        steps=[("seg", S - 100, S + 1500), ("seg", S + 2500, END)],
        alerts=[("camera_offline", S + 1000), ("camera_online", S + 3000)],
        want=(8000, 1000, 1000, S, 0.8, 0.1, 1),
    ),
    "open outage over a service stop": Case(
        steps=[("seg", S - 100, S + 1500), ("seg", S + 2500, END)],
        alerts=[("camera_offline", S + 1000)],
        want=(1000, 8000, 1000, S, 0.1, 0.1, 1),
    ),
    # First recorded at S+4000: the 4000 s before are not unwatched; fractions are over 6000 s.
    "first recorded mid-window": Case(
        steps=[("seg", S + 4000, END)],
        want=(6000, 0, 0, S + 4000, 1.0, 0.0, 0),
    ),
    "first recorded mid-window, then stopped and down": Case(
        steps=[("seg", S + 4000, S + 6000), ("seg", S + 7000, S + 8000), ("outage", 0, 0),
               ("seg", S + 8300, END)],  # fmt: skip
        alerts=[("camera_offline", S + 8000), ("camera_online", S + 8300)],
        want=(4700, 300, 1000, S + 4000, 0.7833, 0.1667, 1),
    ),
    # Offline from the first moment (nothing to record yet): the alert says it was watched then.
    "first watched by an offline alert before its first segment": Case(
        steps=[("seg", S + 3000, END)],
        alerts=[("camera_offline", S + 2000), ("camera_online", S + 3000)],
        want=(7000, 1000, 0, S + 2000, 0.875, 0.0, 1),
    ),
    # Recorded before the window, the segment since removed by retention: watched from the start.
    "recorded before the window, removed by retention": Case(
        steps=[("seg", S - 5000, S - 4000), ("seg", S + 4000, END)],
        retain_after=S - 1000,
        want=(6000, 0, 4000, S, 0.6, 0.4, 0),
    ),
    # Nothing recorded at all: the index cannot say when it was watched; the alerts alone.
    "nothing recorded": Case(
        alerts=[("camera_offline", S + 1000), ("camera_online", S + 2000)],
        want=(9000, 1000, 0, S, 0.9, 0.0, 1),
    ),
    # No recording configured: a stop cannot be told, as before.
    "no recording configured": Case(
        steps=[("seg", S - 100, S + 2000), ("seg", S + 2500, END)],
        alerts=[("camera_offline", S + 1000), ("camera_online", S + 1500)],
        recording=False,
        want=(9500, 500, 0, S, 0.95, 0.0, 1),
    ),
}


def record(rec: RecordingStore, tmp: Path, case: Case) -> None:
    for k, (kind, lo, hi) in enumerate(case.steps):
        if kind == "outage":
            rec.note_outage(CAM, "camera offline: no frames")
            continue
        part = tmp / f"part-{k}.mp4"
        part.write_bytes(b"segment %d" % k)
        final = rec.root / CAM / f"{k:04d}.mp4"
        final.parent.mkdir(parents=True, exist_ok=True)
        rec.add_segment(NewSegment(CAM, part, lo, 0.0, hi - lo, int(hi - lo) * 10), final)
    if case.retain_after is not None:
        rec.max_age_s = 1000.0
        assert rec.enforce_retention(now=case.retain_after + 1000.0)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_uptime_splits_the_window_into_up_down_and_unwatched(case: Case, tmp_path: Path):
    rec = RecordingStore(f"sqlite:///{tmp_path / 'rec.db'}", tmp_path / "recordings")
    record(rec, tmp_path, case)
    # Another camera's alerts are in the same list and must not count.
    events = sorted(
        [(CAM, kind, at) for kind, at in case.alerts] + [("dock", "camera_offline", S + 10.0)],
        key=lambda e: e[2],
    )
    out = camera_uptime(CAM, "Gate", events, S, END, rec if case.recording else None)
    up, down, unwatched, since, uptime, share, outages = case.want
    assert (out.up_s, out.down_s, out.unwatched_s, out.since_ts) == (up, down, unwatched, since)
    assert (out.uptime, out.unwatched, out.outages) == (uptime, share, outages)
    assert out.up_s + out.down_s + out.unwatched_s == pytest.approx(END - out.since_ts)


def test_a_service_stop_is_recorded_as_a_not_running_gap(tmp_path: Path):
    rec = RecordingStore(f"sqlite:///{tmp_path / 'rec.db'}", tmp_path / "recordings")
    record(rec, tmp_path, CASES["service stopped"])
    assert [(g.from_ts, g.to_ts, g.reason) for g in rec.gaps(CAM)] == [(S + 2000, S + 2500, NOT_RUNNING)]
