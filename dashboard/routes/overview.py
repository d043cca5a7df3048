"""Overview: alerts per day and type, camera uptime and recording coverage over the last days.

No camera health history is stored, so uptime is derived from the `camera_offline` and
`camera_online` alerts the service raises when a camera goes dark and comes back: a camera is
down from an offline alert to the next online alert (or to now, if none followed). Time when
the service itself was not running counts as up, because nothing recorded it; recording
coverage (recorded seconds over the window, from the recording index) shows that time as a
hole, so the two charts side by side tell the whole story.
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

router = APIRouter(prefix="/api", tags=["overview"])

HEALTH_TYPES = ("camera_offline", "camera_online")


class DayOut(BaseModel):
    date: str = Field(description="local date, YYYY-MM-DD, in the requested time zone")
    counts: dict[str, int] = Field(description="alert type -> alerts whose event fell on that day")


class UptimeOut(BaseModel):
    camera: str
    name: str
    uptime: float = Field(description="fraction of the window the camera was up (0-1)")
    down_s: float
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
    return OverviewOut(
        from_ts=start,
        to_ts=now,
        timezone=zone.key,
        days=[DayOut(date=d, counts=c) for d, c in per_day.items()],
        types=types,
        uptime=[_uptime(cam, names[cam], events, start, now) for cam in names],
        uptime_basis="camera_offline / camera_online alerts (no health history is stored)",
        coverage=[_coverage(dash, cam, names[cam], start, now) for cam in names],
    )


def _uptime(
    camera: str, name: str, events: list[tuple[str, str, float]], start: float, end: float
) -> UptimeOut:
    """Down from each offline alert to the next online alert of `camera`, clipped to the window."""
    down_since: float | None = None
    down = 0.0
    outages = 0
    for cam, kind, at in events:
        if cam != camera:
            continue
        if kind == "camera_offline" and down_since is None:
            down_since = at
            outages += at >= start
        elif kind == "camera_online" and down_since is not None:
            down += max(0.0, min(at, end) - max(down_since, start))
            down_since = None
    if down_since is not None:
        down += max(0.0, end - max(down_since, start))
    window = max(end - start, 1e-9)
    return UptimeOut(
        camera=camera, name=name, uptime=round(1 - down / window, 4), down_s=round(down, 1), outages=outages
    )


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
