"""The dashboard app factory: pages, JSON API, alert WebSocket and WebRTC live view."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from alerts.bus import AlertBus
from alerts.evidence import Evidence
from alerts.store import AlertStore
from bondwatch.accounts import Accounts
from bondwatch.scanbus import ScanBus
from bondwatch.scanlog import ScanLog
from bondwatch.site import Site
from dashboard import i18n
from dashboard.auth import SESSION_IDLE_S, Auth, LoginLimiter, Sessions
from dashboard.deps import Dashboard
from dashboard.feed import AlertFeed
from dashboard.live import LiveView
from dashboard.routes import (
    alerts,
    cameras,
    overview,
    pages,
    recordings,
    scans,
    session,
    trace,
    webrtc,
    zones,
)
from dashboard.routes import deliveries as delivery_routes
from dashboard.routes import evidence as evidence_routes
from dashboard.routes.zones import ZoneEditor
from dashboard.webrtc import LiveVideo
from streams.recordings import RecordingStore

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"


def create_app(
    live: LiveView,
    store: AlertStore,
    bus: AlertBus,
    accounts: Accounts,
    *,
    title: str,
    video_fps: float = 12.0,
    session_idle_s: float = SESSION_IDLE_S,
    recording: RecordingStore | None = None,
    evidence: Evidence | None = None,
    site_path: Path | None = None,
    on_site: Callable[[Site], None] | None = None,
) -> FastAPI:
    """The dashboard for `live`'s site; it reads history from `store`, follows `bus`, takes
    scans onto the scan stream of the same Redis, and lets in only the users of `accounts`
    (sessions end after `session_idle_s` unused); `recording` serves the evidence timeline.
    The zone editor saves to the site file `site_path` and hands the new site to `on_site`."""
    dash = Dashboard(
        live=live,
        store=store,
        feed=AlertFeed(bus),
        video=LiveVideo(live, video_fps),
        auth=Auth(accounts, Sessions(session_idle_s), LoginLimiter()),
        scans=ScanBus(bus.redis_url),
        audit=store.audit,
        title=title,
        recording=recording,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dash.feed.start()
        try:
            yield
        finally:
            await dash.feed.stop()
            await _close_sockets(dash)
            await dash.video.close()
            dash.scans.close()

    # No open /docs or /openapi.json: they would list the API to anyone on the network.
    app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.dashboard = dash
    i18n.install(app)  # error sentences in the language the request asks for
    app.state.evidence = evidence  # snapshots, clips and packages (dashboard/routes/evidence.py)
    for module in (pages, session, cameras, alerts, scans, webrtc, recordings, evidence_routes):
        app.include_router(module.router)
    app.include_router(delivery_routes.router)  # where each alert was notified
    app.state.scanlog = ScanLog(store.engine)  # serial trace reads the scans stored by the service
    app.state.zone_editor = ZoneEditor(site_path, on_site)
    for module in (trace, zones, overview):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def _close_sockets(dash: Dashboard) -> None:
    """Tell browsers still connected that the server is going away (1001), so they reconnect."""
    sockets = list(dash.sockets)
    results = await asyncio.gather(*(ws.close(code=1001) for ws in sockets), return_exceptions=True)
    failed = sum(isinstance(r, Exception) for r in results)
    if sockets:
        logger.info("closed %d alert sockets (%d already gone)", len(sockets), failed)
