"""Overview: alerts per day and type, camera uptime and recording coverage over the last days.

Camera uptime splits each camera's window into three parts that add up to it:

- down: from a `camera_offline` alert to the next `camera_online` alert of the camera (or to
  now, if none followed). No camera health history is stored; these alerts are the record.
- unwatched: the service was not running, so nobody watched the camera. The recording index
  knows these times: a hole between two segments that nobody reported is a gap with the reason
  `NOT_RUNNING`. Unwatched time is not up, and it is not down either: an offline alert raised
  before the service stopped says nothing about the time it was stopped, so where the two
  overlap the time counts once, as unwatched.
- up: the rest.

The window of a camera starts at the first moment it was watched inside the period: its first
recorded segment (retention-removed ones count) or its first health alert, whichever is
earlier. The time before a camera was first watched (not yet installed, the service not yet
set up) is neither up nor unwatched; the fractions are over [since_ts, now].

What this cannot see: a camera with nothing recorded at all (the index cannot say when it was
watched; its uptime is from the alerts alone, over the whole period); a stop of the service
while the camera was already in a reported outage (the open outage gap absorbs it, so it counts
as down); and a stop that lasts now (it becomes a gap when recording resumes). Without
recording configured nothing says when the service ran, so uptime is from the alerts alone and
time the service was not running counts as up; `uptime_basis` says which basis was used.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.store import AlertRow
from dashboard.auth import Permission
from dashboard.deps import DashboardDep, UserScope, require
from streams.recordings import NOT_RUNNING, RecordingStore, SegmentRow

router = APIRouter(prefix="/api", tags=["overview"])

HEALTH_TYPES = ("camera_offline", "camera_online")


class DayOut(BaseModel):
    date: str = Field(description="local date, YYYY-MM-DD, in the requested time zone")
    counts: dict[str, int] = Field(description="alert type -> alerts whose event fell on that day")


class UptimeOut(BaseModel):
    camera: str
    name: str
    uptime: float = Field(description="fraction of the camera's window [since_ts, to_ts] it was up (0-1)")
    unwatched: float = Field(description="fraction of that window the service was not running (0-1)")
    up_s: float
    down_s: float = Field(description="seconds offline per the alerts, less the unwatched time")
    unwatched_s: float = Field(description="seconds the service was not running (recording index)")
    since_ts: float = Field(description="start of the camera's window: from_ts, or when it was first watched")
    outages: int = Field(description="offline alerts in the window")


class CoverageOut(BaseModel):
    camera: str
    name: str
    coverage: float | None = Field(description="recorded seconds / window seconds; None: no recording")
    recorded_s: float
    gaps: int = Field(description="recording gaps that overlap the window")


class OverviewOut(BaseModel):
    from_ts: float
    to_ts: float
    timezone: str
    days: list[DayOut]
    types: list[str] = Field(description="the alert types present, in a stable order")
    uptime: list[UptimeOut]
    uptime_basis: str = Field(description="how uptime was derived")
    coverage: list[CoverageOut]


TYPE_ORDER = [
    "unscanned_departure", "unauthorized_entry", "camera_tamper", "camera_offline", "camera_online",
]  # fmt: skip


@router.get("/overview", dependencies=[require(Permission.ALERTS)])
def overview(
    dash: DashboardDep,
    scope: UserScope,
    days: Annotated[int, Query(ge=1, le=90)] = 7,
    tz: Annotated[str | None, Query(description="IANA time zone for the days; default the site's")] = None,
) -> OverviewOut:
    site = dash.live.site
    try:
        zone = ZoneInfo(tz or site.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise HTTPException(422, f"unknown time zone {tz!r}: use an IANA name like Asia/Shanghai") from None
    now = time.time()
    first_day = datetime.fromtimestamp(now, zone).date() - timedelta(days=days - 1)
    start = datetime.combine(first_day, datetime.min.time(), zone).timestamp()
    event_time = func.coalesce(AlertRow.ts, AlertRow.stored_at)
    with Session(dash.store.engine) as s:
        rows = s.execute(
            select(AlertRow.type, event_time, AlertRow.camera).where(event_time >= start, event_time <= now)
        ).all()
        health = s.execute(
            select(AlertRow.camera, AlertRow.type, event_time)
            .where(AlertRow.type.in_(HEALTH_TYPES), event_time <= now)
            .order_by(event_time)
        ).all()
    per_day: dict[str, dict[str, int]] = {
        (first_day + timedelta(days=i)).isoformat(): {} for i in range(days)
    }
    names = {c.id: c.name or c.id for c in site.cameras if scope.allows(c.id)}
    for kind, at, camera in rows:
        if camera not in names:
            continue  # a factory operator sees only its own factory's cameras
        day = datetime.fromtimestamp(at, zone).date().isoformat()
        if day in per_day:
            per_day[day][kind] = per_day[day].get(kind, 0) + 1
    present = {k for counts in per_day.values() for k in counts}
    types = [k for k in TYPE_ORDER if k in present] + sorted(present - set(TYPE_ORDER))
    events = [(cam, kind, at) for cam, kind, at in health]
    recording = dash.recording
    return OverviewOut(
        from_ts=start,
        to_ts=now,
        timezone=zone.key,
        days=[DayOut(date=d, counts=c) for d, c in per_day.items()],
        types=types,
        uptime=[camera_uptime(cam, names[cam], events, start, now, recording) for cam in names],
        uptime_basis=UPTIME_BASIS if recording is not None else UPTIME_BASIS_NO_RECORDING,
        coverage=[_coverage(dash, cam, names[cam], start, now) for cam in names],
    )


UPTIME_BASIS = (
    "down: camera_offline / camera_online alerts (no health history is stored); unwatched: the "
    "recording index's gaps where the service was not running (counted once, as unwatched, where "
    "they overlap down time); each camera from the first moment it was watched (since_ts)"
)
UPTIME_BASIS_NO_RECORDING = (
    "camera_offline / camera_online alerts only (no health history is stored); no recording is "
    "configured, so time the service was not running cannot be told and counts as up"
)

Span = tuple[float, float]


def camera_uptime(
    camera: str,
    name: str,
    events: list[tuple[str, str, float]],
    start: float,
    end: float,
    recording: RecordingStore | None,
) -> UptimeOut:
    """Up, down and unwatched time of `camera` over [since, end]; `events`: health alerts, oldest first."""
    down_spans: list[Span] = []
    down_since: float | None = None
    outages = 0
    first_alert: float | None = None
    for cam, kind, at in events:
        if cam != camera:
            continue
        first_alert = at if first_alert is None else min(first_alert, at)
        if kind == "camera_offline" and down_since is None:
            down_since = at
            outages += at >= start
        elif kind == "camera_online" and down_since is not None:
            down_spans.append((down_since, at))
            down_since = None
    if down_since is not None:
        down_spans.append((down_since, end))
    since = start
    unwatched_spans: list[Span] = []
    if recording is not None:
        first = _first_recorded(recording, camera)
        if first is not None:  # nothing recorded at all: the index cannot say when it was watched
            if first_alert is not None:
                first = min(first, first_alert)  # the service raised it, so it was watching
            since = min(max(start, first), end)
            unwatched_spans = [
                (g.from_ts, g.to_ts if g.to_ts is not None else end)
                for g in recording.gaps(camera)
                if g.reason == NOT_RUNNING
            ]
    unwatched_spans = _clip(unwatched_spans, since, end)
    down_spans = _clip(down_spans, since, end)
    unwatched = _length(unwatched_spans)
    down = _length(down_spans) - _overlap(down_spans, unwatched_spans)
    window = end - since
    up = max(0.0, window - down - unwatched)
    share = max(window, 1e-9)
    return UptimeOut(
        camera=camera, name=name, uptime=round(up / share, 4) if window > 0 else 1.0,
        unwatched=round(unwatched / share, 4), up_s=round(up, 1), down_s=round(down, 1),
        unwatched_s=round(unwatched, 1), since_ts=since, outages=outages,
    )  # fmt: skip


def _first_recorded(recording: RecordingStore, camera: str) -> float | None:
    """When `camera`'s first segment began, counting segments retention has since removed."""
    with Session(recording.engine) as s:
        return s.scalar(select(func.min(SegmentRow.start_ts)).where(SegmentRow.camera == camera))


def _clip(spans: list[Span], lo: float, hi: float) -> list[Span]:
    """`spans` cut to [lo, hi] and merged: sorted, disjoint, each second once."""
    merged: list[Span] = []
    for a, b in sorted((max(a, lo), min(b, hi)) for a, b in spans):
        if b <= a:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _length(spans: list[Span]) -> float:
    return sum(b - a for a, b in spans)


def _overlap(xs: list[Span], ys: list[Span]) -> float:
    """Seconds in both of two merged span lists."""
    total, i, j = 0.0, 0, 0
    while i < len(xs) and j < len(ys):
        total += max(0.0, min(xs[i][1], ys[j][1]) - max(xs[i][0], ys[j][0]))
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return total


def _coverage(dash: DashboardDep, camera: str, name: str, start: float, end: float) -> CoverageOut:
    recording = dash.recording
    if recording is None:
        return CoverageOut(camera=camera, name=name, coverage=None, recorded_s=0.0, gaps=0)
    spans = sorted(
        (max(s.start_ts, start), min(s.end_ts, end)) for s in recording.segments(camera, start, end)
    )
    recorded = 0.0
    reach = start
    for lo, hi in spans:  # segments may touch or overlap by a frame: count each second once
        lo = max(lo, reach)
        if hi > lo:
            recorded += hi - lo
            reach = hi
    gaps = sum(
        1 for g in recording.gaps(camera) if g.from_ts < end and (g.to_ts is None or g.to_ts > start)
    )
    window = max(end - start, 1e-9)
    return CoverageOut(
        camera=camera, name=name, coverage=round(recorded / window, 4),
        recorded_s=round(recorded, 1), gaps=gaps,
    )  # fmt: skip
