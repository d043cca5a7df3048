"""The zone editor: station and restricted-zone polygons drawn on a camera's live picture, saved
to the site file and applied to the running rules without a restart.

Zones are checked by the same pydantic models as the site file (bondwatch.site), and the saved
file is read back as `load_site` would read it at the next start, so what the editor accepts is
exactly what a restart would accept. Every save is audited with the zones before and after.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field, ValidationError

from bondwatch.site import Site, SiteError, Zone, save_zones
from dashboard.auth import Permission, Principal
from dashboard.deps import AuditDep, CameraId, LiveDep, Scope, UserScope, require
from dashboard.live import LiveView
from dashboard.overlay import snapshot_jpeg

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/zones", tags=["zones"])


@dataclass
class ZoneEditor:
    """Where edited zones go: the site file at `path` (None: the site has no file, so zones are
    read-only) and `apply`, which hands the new site to the running rules."""

    path: Path | None
    apply: Callable[[Site], None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ZoneCameraOut(BaseModel):
    id: str
    name: str


class ZonesOut(BaseModel):
    editable: bool = Field(description="whether the site has a file the zones are saved to")
    file: str | None = Field(None, description="the site file's name")
    cameras: list[ZoneCameraOut]
    zones: list[dict[str, Any]] = Field(description="every zone, as in the site file")


class ZonesIn(BaseModel):
    zones: list[dict[str, Any]] = Field(
        max_length=200, description="all zones of the camera, as in the site file; `camera` implied"
    )


def _editor(request: Request) -> ZoneEditor:
    return request.app.state.zone_editor


def _zones_out(site: Site, editor: ZoneEditor, scope: Scope) -> ZonesOut:
    """The zones of the cameras the user may see (a factory operator: its own factory's)."""
    return ZonesOut(
        editable=editor.path is not None,
        file=editor.path.name if editor.path is not None else None,
        cameras=[ZoneCameraOut(id=c.id, name=c.name or c.id) for c in site.cameras if scope.allows(c.id)],
        zones=[z.model_dump(mode="json") for z in site.zones if scope.allows(z.camera)],
    )


@router.get("", dependencies=[require(Permission.CAMERAS)])
def list_zones(request: Request, live: LiveDep, scope: UserScope) -> ZonesOut:
    return _zones_out(live.site, _editor(request), scope)


@router.get(
    "/{camera_id}/frame.jpg",
    response_class=Response,
    dependencies=[require(Permission.CAMERAS)],
    responses={200: {"content": {"image/jpeg": {}}}, 503: {"description": "no frame yet"}},
)
async def frame(camera_id: CameraId, live: LiveDep) -> Response:
    """The newest frame without zone or detection overlays: the editor draws its own."""
    image, _ = live.latest(camera_id)
    if image is None:
        raise HTTPException(503, f"camera {camera_id!r} has not delivered a frame yet")
    jpeg = await asyncio.to_thread(snapshot_jpeg, camera_id, [], image, None)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.put("/{camera_id}", responses={409: {}, 422: {"description": "one line per problem"}})
async def save_camera_zones(
    camera_id: CameraId,
    body: ZonesIn,
    request: Request,
    live: LiveDep,
    audit: AuditDep,
    scope: UserScope,
    user: Annotated[Principal, require(Permission.ZONES_EDIT)],
) -> ZonesOut:
    """Replace all zones of one camera, save the site file and apply the zones at once."""
    editor = _editor(request)
    if editor.path is None:
        raise HTTPException(409, "this site was started without a site file; zones cannot be saved")
    async with editor.lock:
        site = live.site
        edited = _validate(camera_id, body.zones, live)
        ordered = _merge(site.zones, camera_id, edited)
        try:
            new_site, backup = await asyncio.to_thread(save_zones, editor.path, ordered)
        except SiteError as e:
            raise HTTPException(422, e.errors) from None
        live.site = new_site
        if editor.apply is not None:
            # The rules swap zones between two batches: wait for that off the event loop.
            await asyncio.to_thread(editor.apply, new_site)
        before = [z.model_dump(mode="json") for z in site.zones_of(camera_id)]
        after = [z.model_dump(mode="json") for z in new_site.zones_of(camera_id)]
        detail = {"file": editor.path.name, "backup": backup.name, "before": before, "after": after}
        await asyncio.to_thread(audit.record, user.name, "zones_edit", f"camera:{camera_id}", detail)
    logger.info(
        "%s saved %d zones of camera %s to %s (backup %s)",
        user.name, len(edited), camera_id, editor.path, backup.name,
    )  # fmt: skip
    return _zones_out(new_site, editor, scope)


def _validate(camera: str, raw: list[dict[str, Any]], live: LiveView) -> list[Zone]:
    """The zones of the request as site-file zones, each inside the camera's frame; 422 with one
    line per problem (`zones[1].polygon: ...`) otherwise."""
    errors: list[str] = []
    zones: list[Zone] = []
    frame, _ = live.latest(camera)
    size = (frame.image.shape[1], frame.image.shape[0]) if frame is not None else None
    for i, item in enumerate(raw):
        try:
            zone = Zone.model_validate({**item, "camera": camera})
        except ValidationError as e:
            for err in e.errors():
                where = ".".join(str(p) for p in err["loc"])
                errors.append(f"zones[{i}]{'.' + where if where else ''}: {_message(err['msg'])}")
            continue
        if size is not None:
            w, h = size
            for k, (x, y) in enumerate(zone.polygon):
                if not (0 <= x <= w and 0 <= y <= h):
                    errors.append(
                        f"zones[{i}].polygon[{k}]: point ({x:g}, {y:g}) is outside the {w}×{h} frame"
                    )
                    break
        zones.append(zone)
    ids = [z.id for z in zones]
    errors += [f"zones: duplicate id {x!r}" for x in sorted({x for x in ids if ids.count(x) > 1})]
    others = {z.id for z in live.site.zones if z.camera != camera}
    errors += [f"zones: id {x!r} is already a zone of another camera" for x in ids if x in others]
    if errors:
        raise HTTPException(422, errors)
    return zones


def _message(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def _merge(zones: list[Zone], camera: str, edited: list[Zone]) -> list[Zone]:
    """The site's zones with those of `camera` replaced by `edited`, where the first of them was
    (at the end when the camera had none), so the file changes no more than the edit."""
    first = next((i for i, z in enumerate(zones) if z.camera == camera), len(zones))
    before = zones[:first]
    after = [z for z in zones[first:] if z.camera != camera]
    return before + edited + after
