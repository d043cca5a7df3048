"""Serial trace (进—修—出): where a unit's serial was scanned, in time order, the alerts that
concern it, and for each scan the station's cameras at that moment, for one click to the video.

How alerts are matched, and what the page says about each:

- `mentions`: the alert's explanation names the serial as a whole word. The departure rule
  writes the scans it considered into its explanation ("scan SN1 at ... was used by track 3"),
  so this finds the alerts this scan took part in.
- `near_scan`: an unscanned departure at the scan's station whose time lies in the window in
  which this scan could have covered it (from the station's `scan_grace_s` before the scan to
  its `scan_before_s` after, with the scanner's clock skew removed). This is a candidate, not
  proof: the departed unit may be another one; the page shows it as "nearby".
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from alerts.store import AlertRow, AlertStore
from alerts.types import Alert
from bondwatch.scanlog import ScanLog, ScanRecord
from bondwatch.site import Site
from dashboard.auth import Permission, Principal
from dashboard.deps import LiveDep, StoreDep, UserScope, require
from dashboard.schemas import AlertOut

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/trace", tags=["trace"])

MAX_ALERTS = 200
Step = Literal["in", "repair", "out"]
# What factories send as `step` or `direction`, read as one of the three steps.
STEP_WORDS: dict[str, Step] = {
    "in": "in", "进": "in", "receive": "in", "inbound": "in",
    "repair": "repair", "修": "repair", "test": "repair",
    "out": "out", "出": "out", "ship": "out", "outbound": "out",
}  # fmt: skip


class VideoLink(BaseModel):
    camera: str
    name: str
    t: float = Field(description="UNIX time to open the recording at: the scan, on the camera clock")


class TraceScan(BaseModel):
    id: str
    ts: str = Field(description="ISO 8601, as the scanner sent it")
    station: str | None
    station_name: str = Field(description="the station's name in the site file, else its id")
    step: Step = Field(description="进 in, 修 repair or 出 out")
    step_from: Literal["sender", "station", "order"] = Field(
        description="sender: the scan's own `step`/`direction`; station: the station's `step` in"
        " the site file; order: inferred, the first scan in, the last out, those between repair"
    )
    operator: str | None = None
    extra: dict[str, object]
    video: list[VideoLink] = Field(description="the station's cameras at the scan's time")


class TraceAlert(BaseModel):
    alert: AlertOut
    match: Literal["mentions", "near_scan"]
    scan: str | None = Field(None, description="id of the scan it is near (near_scan)")
    offset_s: float | None = Field(None, description="seconds from that scan to the alert's event")


class TraceOut(BaseModel):
    serial: str
    scans: list[TraceScan]
    alerts: list[TraceAlert]


class SerialsOut(BaseModel):
    serials: list[str]


def _scanlog(request: Request) -> ScanLog:
    return request.app.state.scanlog


@router.get("", dependencies=[require(Permission.ALERTS)])
def suggest(
    request: Request, prefix: Annotated[str, Query(min_length=1, max_length=200)]
) -> SerialsOut:
    """Serials starting with `prefix`, for the search box."""
    return SerialsOut(serials=_scanlog(request).serials_like(prefix.strip()))


@router.get("/{serial}", response_model_exclude_none=True)
def trace(
    request: Request,
    live: LiveDep,
    store: StoreDep,
    serial: Annotated[str, Path(min_length=1, max_length=200)],
    user: Annotated[Principal, require(Permission.ALERTS)],
    scope: UserScope,
) -> TraceOut:
    serial = serial.strip()
    site = live.site
    visible = {c.id for c in site.cameras if scope.allows(c.id)}
    records = [
        r
        for r in _scanlog(request).of_serial(serial)
        if r.kind == "scan" and _may_see(site, r.station, visible, user)
    ]
    scans = [_scan_out(site, r, i, len(records), visible) for i, r in enumerate(records)]
    found: dict[str, TraceAlert] = {}
    for alert in _mentioning(store.engine, serial):
        if alert.camera in visible:
            found[alert.id] = TraceAlert(alert=_alert_out(alert), match="mentions")
    for r in records:
        for alert, offset in _near(store, site, r):
            if alert.camera in visible and alert.id not in found:
                found[alert.id] = TraceAlert(
                    alert=_alert_out(alert), match="near_scan", scan=r.id, offset_s=round(offset, 1)
                )
    alerts = sorted(found.values(), key=lambda a: a.alert.ts or "")[:MAX_ALERTS]
    states = store.states([a.alert.id for a in alerts])
    for a in alerts:
        a.alert.state, a.alert.group_id = states.get(a.alert.id, (None, None))
    logger.info("%s traced serial %r: %d scans, %d alerts", user.name, serial, len(scans), len(alerts))
    return TraceOut(serial=serial, scans=scans, alerts=alerts)


def _may_see(site: Site, station: str | None, visible: set[str], user: Principal) -> bool:
    """A scan at a station of a visible camera; customs staff also see scans at stations no
    camera watches (a scanner the site file does not know yet)."""
    cameras = {z.camera for z in site.zones if z.kind == "station" and z.station == station}
    return bool(cameras & visible) if cameras else user.factory is None


def _step(
    site: Site, record: ScanRecord, index: int, count: int
) -> tuple[Step, Literal["sender", "station", "order"]]:
    for key in ("step", "direction"):
        word = str(record.extra.get(key, "")).strip().lower()
        if word in STEP_WORDS:
            return STEP_WORDS[word], "sender"
    station = next((s for s in site.stations if s.id == record.station), None)
    if station is not None and station.step is not None:
        return station.step, "station"
    if index == 0:
        return "in", "order"
    return ("out" if index == count - 1 else "repair"), "order"


def _scan_out(site: Site, r: ScanRecord, index: int, count: int, visible: set[str]) -> TraceScan:
    step, source = _step(site, r, index, count)
    station = next((s for s in site.stations if s.id == r.station), None)
    video = []
    for z in site.zones:
        if z.kind == "station" and z.station == r.station and z.camera in visible:
            if any(v.camera == z.camera for v in video):
                continue
            cam = site.camera(z.camera)
            video.append(VideoLink(camera=cam.id, name=cam.name or cam.id, t=r.ts - z.clock_skew_s))
    operator = r.extra.get("operator")
    return TraceScan(
        id=r.id,
        ts=datetime.fromtimestamp(r.ts, UTC).isoformat(timespec="milliseconds"),
        station=r.station,
        station_name=(station.name if station is not None else "") or r.station or "",
        step=step,
        step_from=source,
        operator=str(operator) if operator is not None else None,
        extra=r.extra,
        video=video,
    )


def _mentioning(engine: Engine, serial: str) -> list[Alert]:
    """Alerts whose explanation names `serial` as a whole word (not as part of a longer one)."""
    escaped = serial.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    q = (
        select(AlertRow)
        .where(AlertRow.explanation.like(f"%{escaped}%", escape="\\"))
        .order_by(AlertRow.stored_at.desc())
        .limit(MAX_ALERTS)
    )
    word = re.compile(rf"(?<![\w-]){re.escape(serial)}(?![\w-])")
    with Session(engine) as s:
        return [r.to_alert() for r in s.scalars(q) if word.search(r.explanation or "")]


def _near(store: AlertStore, site: Site, r: ScanRecord) -> list[tuple[Alert, float]]:
    """Unscanned departures at the scan's station that this scan could have covered."""
    out = []
    for z in site.zones:
        if z.kind != "station" or z.station != r.station:
            continue
        at = r.ts - z.clock_skew_s
        for alert in store.recent(
            limit=MAX_ALERTS, types=["unscanned_departure"], camera=z.camera, station=z.station,
            from_ts=at - z.scan_grace_s, to_ts=at + z.scan_before_s,
        ):  # fmt: skip
            if alert.ts is not None:
                out.append((alert, alert.ts - at))
    return out


def _alert_out(alert: Alert) -> AlertOut:
    return AlertOut.model_validate(alert.to_dict(live=True))
