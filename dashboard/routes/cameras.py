"""Cameras: their zones and health, and a snapshot of the newest frame with overlays; a
factory operator sees only its own factory's cameras."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, HTTPException, Response

from dashboard.auth import Permission
from dashboard.deps import CameraId, LiveDep, UserScope, require
from dashboard.overlay import snapshot_jpeg
from dashboard.schemas import CameraOut, HealthOut, ZoneOut

# How long a snapshot waits for a camera's first frame: in `bondwatch web` the first request for
# an unwatched camera is what makes its worker publish frames (dashboard/remote.py).
FIRST_FRAME_WAIT_S = 2.0

router = APIRouter(prefix="/api/cameras", tags=["cameras"], dependencies=[require(Permission.CAMERAS)])


@router.get("")
def list_cameras(live: LiveDep, scope: UserScope) -> list[CameraOut]:
    health = live.health()
    return [
        CameraOut(
            id=cam.id,
            name=cam.name or cam.id,
            health=HealthOut.model_validate(health[cam.id]) if cam.id in health else None,
            zones=[ZoneOut.model_validate(z.model_dump()) for z in live.site.zones_of(cam.id)],
        )
        for cam in live.site.cameras
        if scope.allows(cam.id)
    ]


@router.get(
    "/{camera_id}/snapshot.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 503: {"description": "no frame yet"}},
)
async def snapshot(camera_id: CameraId, live: LiveDep) -> Response:
    frame, batch = live.latest(camera_id)
    deadline = time.monotonic() + FIRST_FRAME_WAIT_S
    while frame is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        frame, batch = live.latest(camera_id)
    if frame is None:
        raise HTTPException(503, f"camera {camera_id!r} has not delivered a frame yet")
    zones = live.site.zones_of(camera_id)
    jpeg = await asyncio.to_thread(snapshot_jpeg, camera_id, zones, frame, batch, tz=live.site.timezone)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
