"""Alerts: the stored history, and a WebSocket that pushes each new alert as it is published."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket
from fastapi.websockets import WebSocketDisconnect

from dashboard.auth import Permission
from dashboard.deps import DashboardDep, FeedDep, StoreDep, require
from dashboard.schemas import AlertOut

router = APIRouter(tags=["alerts"], dependencies=[require(Permission.ALERTS)])


@router.get("/api/alerts", response_model_exclude_none=True)
def list_alerts(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    since: Annotated[datetime | None, Query(description="ISO 8601 or UNIX seconds; naive means UTC")] = None,
) -> list[AlertOut]:
    """Newest first."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    alerts = store.recent(limit=limit, since=since.timestamp() if since else None)
    return [AlertOut.model_validate(a.to_dict(live=True)) for a in alerts]


@router.websocket("/ws/alerts")
async def alerts_socket(ws: WebSocket, feed: FeedDep, dash: DashboardDep) -> None:
    """Sends each alert as one JSON text message, in the `/api/alerts` schema."""
    await ws.accept()
    dash.sockets.add(ws)
    closed = asyncio.create_task(_until_closed(ws))
    try:
        with feed.subscribe() as queue:
            while True:
                next_alert = asyncio.create_task(queue.get())
                await asyncio.wait({next_alert, closed}, return_when=asyncio.FIRST_COMPLETED)
                if closed.done():
                    next_alert.cancel()
                    return
                await ws.send_text(next_alert.result().to_json(live=True))
    except WebSocketDisconnect:
        return
    finally:
        dash.sockets.discard(ws)
        closed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closed


async def _until_closed(ws: WebSocket) -> None:
    """Drain whatever the browser sends (nothing is expected) until it goes away."""
    with contextlib.suppress(WebSocketDisconnect):
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass
