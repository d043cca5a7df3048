"""Evidence of an alert: its snapshot, its clip (seekable: range requests) and the case's
signed export package. Every view and every export goes to the audit trail.

A `<video>` element fetches a clip in many range requests; only the one that starts at the
first byte (or asks for the whole file) counts as a view, so one viewing is one audit entry.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from alerts.evidence import ClipPending, Evidence, NoEvidence
from dashboard.auth import Permission, Principal
from dashboard.deps import AuditDep, ScopedCase, require

router = APIRouter(tags=["evidence"])

VIEW = Annotated[Principal, require(Permission.EVIDENCE)]
EXPORT = Annotated[Principal, require(Permission.EVIDENCE_EXPORT)]


def _evidence(request: Request) -> Evidence:
    evidence: Evidence | None = request.app.state.evidence
    if evidence is None:
        raise HTTPException(503, "this service keeps no evidence (started without an evidence store)")
    return evidence


@router.get(
    "/api/alerts/{alert_id}/snapshot.jpg",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {}},
)
async def snapshot(
    alert_id: str, request: Request, case: ScopedCase, user: VIEW, audit: AuditDep
) -> FileResponse:
    try:
        path = _evidence(request).snapshot(alert_id)
    except NoEvidence as e:
        raise HTTPException(404, str(e)) from None
    detail = {"what": "snapshot", "role": user.role}
    await asyncio.to_thread(audit.record, user.name, "evidence_view", f"alert:{alert_id}", detail)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/api/alerts/{alert_id}/clip.mp4",
    response_class=FileResponse,
    responses={
        200: {"content": {"video/mp4": {}}},
        206: {"description": "a byte range of the clip"},
        404: {"description": "nothing recorded for this alert"},
        409: {"description": "the clip's window is still being recorded"},
    },
)
async def clip(
    alert_id: str,
    request: Request,
    case: ScopedCase,
    user: VIEW,
    audit: AuditDep,
    annotated: Annotated[bool, Query(description="the re-encoded copy with the time burned in")] = False,
) -> FileResponse:
    try:
        path = await asyncio.to_thread(_evidence(request).clip, alert_id, annotated=annotated)
    except NoEvidence as e:
        raise HTTPException(404, str(e)) from None
    except ClipPending as e:
        raise HTTPException(409, str(e), headers={"Retry-After": f"{e.retry_after_s:.0f}"}) from None
    byte_range = request.headers.get("range", "")
    if not byte_range or byte_range.replace(" ", "").startswith("bytes=0-"):
        detail = {"what": "clip", "annotated": annotated, "case": case.id, "role": user.role}
        await asyncio.to_thread(audit.record, user.name, "evidence_view", f"alert:{alert_id}", detail)
    return FileResponse(path, media_type="video/mp4", filename=f"alert-{alert_id}-{path.name}")


@router.post(
    "/api/alerts/{alert_id}/export",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/zip": {}}},
        403: {"description": "the role may not export evidence"},
        409: {"description": "the clip's window is still being recorded"},
    },
)
async def export(alert_id: str, request: Request, case: ScopedCase, user: EXPORT) -> FileResponse:
    """The case's signed package; the export is audited by the evidence store itself."""
    evidence = _evidence(request)
    folder = Path(tempfile.mkdtemp(prefix="bondwatch-export-"))
    out = folder / f"bondwatch-evidence-{case.id}.zip"
    try:
        await asyncio.to_thread(evidence.export, case.id, out, actor=user.name)
    except (ClipPending, NoEvidence) as e:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(e, NoEvidence):
            raise HTTPException(404, str(e)) from None
        raise HTTPException(409, str(e), headers={"Retry-After": f"{e.retry_after_s:.0f}"}) from None
    return FileResponse(
        out,
        media_type="application/zip",
        filename=out.name,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )
