"""Evidence search: a camera's recording timeline (spans, gaps, alerts) and clips cut from it.

The timeline is what an officer scrubs: where the camera was recorded, where it was not and
why, and which alerts fall in the window. A clip is the recording itself, copied out of the
segments without re-encoding (streams.clips), so what is played or downloaded is the evidence
the hash chain vouches for; every clip served is an evidence view in the audit log.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from alerts.types import Alert, iso
from dashboard.auth import Permission, Principal
from dashboard.deps import AuditDep, CameraId, RecordingDep, StoreDep, require
from dashboard.schemas import AlertOut
from streams.clips import Clip, ClipError, cut_clip
from streams.recordings import RecordingStore, Segment

logger = logging.getLogger(__name__)

MAX_TIMELINE_S = 7 * 86400.0  # a week of segment rows is still a quick query
MAX_CLIP_S = 3600.0  # a longer stretch is downloaded in pieces
MAX_TIMELINE_ALERTS = 1000

router = APIRouter(prefix="/api/recordings", tags=["recordings"], dependencies=[require(Permission.CAMERAS)])

When = Annotated[datetime, Query(description="ISO 8601 or UNIX seconds; naive means UTC")]


class SpanOut(BaseModel):
    """A stretch recorded without a break (adjacent segments merged)."""

    start: str = Field(description="ISO 8601")
    end: str = Field(description="ISO 8601")
    segments: int


class GapOut(BaseModel):
    start: str = Field(description="ISO 8601")
    end: str | None = Field(description="ISO 8601; null while the gap still lasts")
    reason: str


class TimelineOut(BaseModel):
    camera: str
    start: str = Field(description="the window asked for, ISO 8601")
    end: str
    spans: list[SpanOut]
    gaps: list[GapOut]
    alerts: list[AlertOut] = Field(description="alerts of the camera in the window, oldest first")


@router.get("/{camera_id}/timeline", response_model_exclude_none=True)
def timeline(
    camera_id: CameraId,
    recording: RecordingDep,
    store: StoreDep,
    from_: Annotated[datetime, Query(alias="from", description="ISO 8601 or UNIX seconds")],
    to: When,
) -> TimelineOut:
    """What there is to see of `camera_id` between `from` and `to` (at most a week)."""
    start, end = _window(from_, to, MAX_TIMELINE_S)
    segments = recording.segments(camera_id, start, end)
    gaps = [
        g
        for g in recording.gaps(camera_id)
        if g.from_ts < end and (g.to_ts is None or g.to_ts > start)
    ]
    alerts = store.recent(limit=MAX_TIMELINE_ALERTS, camera=camera_id, from_ts=start, to_ts=end)
    states = store.states([a.id for a in alerts])
    return TimelineOut(
        camera=camera_id,
        start=iso(start),
        end=iso(end),
        spans=_spans(segments, recording.gap_tolerance_s),
        gaps=[
            GapOut(start=iso(g.from_ts), end=iso(g.to_ts) if g.to_ts is not None else None, reason=g.reason)
            for g in gaps
        ],
        alerts=[_alert_out(a, *states.get(a.id, (None, None))) for a in reversed(alerts)],
    )


@router.get(
    "/{camera_id}/clip.mp4",
    response_class=FileResponse,
    responses={
        200: {"content": {"video/mp4": {}}, "description": "X-Clip-Start/End: its first/last moment"},
        403: {"description": "download asked by a role that may not export evidence"},
        404: {"description": "nothing recorded in the window"},
        422: {},
        503: {"description": "the site records no video"},
    },
)
def clip(
    camera_id: CameraId,
    recording: RecordingDep,
    audit: AuditDep,
    user: Annotated[Principal, require(Permission.EVIDENCE)],
    from_: Annotated[datetime, Query(alias="from", description="ISO 8601 or UNIX seconds")],
    to: When,
    download: Annotated[bool, Query(description="as a file to keep: an evidence export")] = False,
) -> FileResponse:
    """The original recording of `from`..`to` (at most an hour), starting at the keyframe at or
    before `from`; the window is held against retention only while the file is being sent.

    Playing it in the page is an evidence view; `download` is an export, for the roles that may
    export evidence, and the audit log says which of the two it was.
    """
    if download and not user.may(Permission.EVIDENCE_EXPORT):
        raise HTTPException(403, f"the {user.role} role may watch recordings but not download them")
    start, end = _window(from_, to, MAX_CLIP_S)
    name = f"{camera_id}-{datetime.fromtimestamp(start, UTC):%Y%m%dT%H%M%SZ}-{end - start:.0f}s.mp4"
    folder = Path(tempfile.mkdtemp(prefix="bondwatch-clip-"))
    try:
        cut = cut_clip(recording, camera_id, start, end, folder / name, pre_s=0.0, post_s=0.0)
    except ClipError as e:
        shutil.rmtree(folder, ignore_errors=True)
        raise HTTPException(404, str(e)) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    audit.record(
        user.name,
        "evidence_export" if download else "evidence_view",
        f"camera:{camera_id}",
        {
            "role": user.role,
            "from": iso(cut.start_ts),
            "to": iso(cut.end_ts),
            "sha256": cut.sha256,
            "segments": list(cut.segments),
        },
    )
    logger.info("camera %s: clip of %s to %s sent to %s", camera_id, iso(start), iso(end), user.name)
    return FileResponse(
        cut.path,
        media_type="video/mp4",
        filename=name,
        content_disposition_type="attachment" if download else "inline",
        headers={
            "X-Clip-Start": iso(cut.start_ts),
            "X-Clip-End": iso(cut.end_ts),
            "X-Clip-Sha256": cut.sha256,
            "Cache-Control": "no-store",
        },
        background=BackgroundTask(_discard, recording, cut, folder),
    )


def _window(from_: datetime, to: datetime, longest_s: float) -> tuple[float, float]:
    start, end = (w if w.tzinfo is not None else w.replace(tzinfo=UTC) for w in (from_, to))
    if end <= start:
        raise HTTPException(422, "the end of the window must come after its start")
    if (end - start).total_seconds() > longest_s:
        raise HTTPException(422, f"the window may be at most {longest_s / 3600:g} h long")
    return start.timestamp(), end.timestamp()


def _spans(segments: list[Segment], tolerance_s: float) -> list[SpanOut]:
    """Adjacent segments as one span: a break shorter than `tolerance_s` is not a gap."""
    merged: list[list[float]] = []  # [start, end, count]
    for seg in segments:
        if merged and seg.start_ts - merged[-1][1] <= tolerance_s:
            merged[-1][1] = max(merged[-1][1], seg.end_ts)
            merged[-1][2] += 1
        else:
            merged.append([seg.start_ts, seg.end_ts, 1])
    return [SpanOut(start=iso(a), end=iso(b), segments=int(n)) for a, b, n in merged]


def _alert_out(alert: Alert, state: str | None, group_id: str | None) -> AlertOut:
    return AlertOut.model_validate(alert.to_dict(live=True) | {"state": state, "group_id": group_id})


def _discard(recording: RecordingStore, cut: Clip, folder: Path) -> None:
    """After sending: the copy is the browser's now; the recording need no longer be held for it."""
    recording.release(cut.hold_id)
    shutil.rmtree(folder, ignore_errors=True)
