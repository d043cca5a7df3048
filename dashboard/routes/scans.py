"""Scans: the factory's systems post batches of scan events onto the scan stream."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError

from bondwatch.scanbus import LiveScan, describe
from bondwatch.site import Site
from dashboard.auth import Permission, Principal
from dashboard.deps import LiveDep, ScanBusDep, require
from dashboard.schemas import ScansIn, ScansOut

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["scans"])


@router.post("/scans", responses={422: {"description": "one line per bad event and field"}})
async def post_scans(
    request: Request,
    scans: ScanBusDep,
    live: LiveDep,
    user: Annotated[Principal, require(Permission.SCANS)],
) -> ScansOut:
    """Body `{"scans": [...]}`. All or nothing: one bad event refuses the batch (422), so a
    client fixes and resends it whole; resending is safe, since ids already taken are skipped.
    A station or zone the site does not have is a bad event; a factory operator may post only
    for the stations and zones its factory's cameras watch (403).
    """
    # Validated here rather than by FastAPI, so the 422 names each event and field plainly.
    try:
        body = ScansIn.model_validate_json(await request.body())
    except ValidationError as e:
        raise HTTPException(422, [describe(err) for err in e.errors()]) from None
    unknown, foreign = _check_places(body.scans, live.site, user.factory)
    if unknown:
        raise HTTPException(422, unknown)
    if foreign:
        raise HTTPException(403, foreign)
    published = await asyncio.to_thread(scans.publish, body.scans)
    duplicates = [p.id for p in published if p.duplicate and p.id is not None]
    logger.info(
        "%s posted %d scans: %d accepted, %d duplicates",
        user.name, len(published), len(published) - len(duplicates), len(duplicates),
    )  # fmt: skip
    return ScansOut(accepted=len(published) - len(duplicates), duplicates=duplicates)


def _check_places(scans: list[LiveScan], site: Site, factory: str | None) -> tuple[list[str], list[str]]:
    """(events naming a station or zone the site lacks, events of another factory's), one line
    each. A place is a factory's when one of that factory's cameras watches it."""
    factories = {c.id: c.factory for c in site.cameras}
    places: dict[str, dict[str, set[str | None]]] = {"station": {st.id: set() for st in site.stations}}
    places["zone"] = {}
    for z in site.zones:
        places["zone"].setdefault(z.id, set()).add(factories.get(z.camera))
        if z.station is not None:
            places["station"].setdefault(z.station, set()).add(factories.get(z.camera))
    unknown, foreign = [], []
    for i, scan in enumerate(scans):
        field, place = ("zone", scan.zone) if scan.kind == "badge" else ("station", scan.station)
        if place is None:
            continue
        if place not in places[field]:
            known = ", ".join(sorted(places[field])) or "none"
            unknown.append(f"scans[{i}].{field}: no {field} {place!r} in the site (it has: {known})")
        elif factory is not None and factory not in places[field][place]:
            foreign.append(
                f"scans[{i}].{field}: {field} {place!r} is not watched by a camera of factory {factory!r}:"
                " an operator posts scans for its own factory's stations only"
            )
    return unknown, foreign
