"""Scans: the factory's systems post batches of scan events onto the scan stream."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError

from bondwatch.scanbus import describe
from dashboard.auth import Permission, Principal
from dashboard.deps import ScanBusDep, require
from dashboard.schemas import ScansIn, ScansOut

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["scans"])


@router.post("/scans", responses={422: {"description": "one line per bad event and field"}})
async def post_scans(
    request: Request,
    scans: ScanBusDep,
    user: Annotated[Principal, require(Permission.SCANS)],
) -> ScansOut:
    """Body `{"scans": [...]}`. All or nothing: one bad event refuses the batch (422), so a
    client fixes and resends it whole; resending is safe, since ids already taken are skipped.
    """
    # Validated here rather than by FastAPI, so the 422 names each event and field plainly.
    try:
        body = ScansIn.model_validate_json(await request.body())
    except ValidationError as e:
        raise HTTPException(422, [describe(err) for err in e.errors()]) from None
    published = await asyncio.to_thread(scans.publish, body.scans)
    duplicates = [p.id for p in published if p.duplicate and p.id is not None]
    logger.info(
        "%s posted %d scans: %d accepted, %d duplicates",
        user.name, len(published), len(published) - len(duplicates), len(duplicates),
    )  # fmt: skip
    return ScansOut(accepted=len(published) - len(duplicates), duplicates=duplicates)
