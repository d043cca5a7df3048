"""WebRTC signalling: the browser posts an offer for one camera and gets the answer.

Each accepted offer starts someone watching live video, which the audit trail records. A
factory operator may watch only its own factory's cameras. `?overlays=burned|browser` picks
how this viewer gets its overlays (dashboard/webrtc.py); without it, the service's default.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException

from dashboard.auth import Permission
from dashboard.deps import AuditDep, SignedIn, UserScope, VideoDep, check_camera, require
from dashboard.schemas import AnswerOut, OfferIn
from dashboard.webrtc import Overlays, UnknownCamera

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/webrtc", tags=["webrtc"], dependencies=[require(Permission.LIVE_VIDEO)])


@router.post("/offer")
async def offer(
    body: OfferIn,
    video: VideoDep,
    audit: AuditDep,
    user: SignedIn,
    scope: UserScope,
    overlays: Overlays | None = None,
) -> AnswerOut:
    check_camera(scope, body.camera)
    try:
        answer = await video.answer(body.camera, body.sdp, body.type, overlays)
    except UnknownCamera:
        raise HTTPException(404, f"unknown camera {body.camera!r}") from None
    except ValueError as e:
        logger.info("camera %s: rejected WebRTC offer: %s", body.camera, e)
        raise HTTPException(400, f"the WebRTC offer could not be used: {e}") from None
    detail = {"role": user.role, "overlays": overlays or video.overlays}
    await asyncio.to_thread(audit.record, user.name, "live_view", f"camera:{body.camera}", detail)
    return AnswerOut(sdp=answer.sdp, type=answer.type)
