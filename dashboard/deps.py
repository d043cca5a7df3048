"""The app's long-lived parts, handed to route handlers as `Annotated` dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, WebSocket
from starlette.requests import HTTPConnection

from alerts.store import AlertStore
from dashboard.feed import AlertFeed
from dashboard.live import LiveView
from dashboard.webrtc import LiveVideo


@dataclass
class Dashboard:
    live: LiveView
    store: AlertStore
    feed: AlertFeed
    video: LiveVideo
    title: str
    sockets: set[WebSocket] = field(default_factory=set)


def _dashboard(conn: HTTPConnection) -> Dashboard:
    return conn.app.state.dashboard


def _live(conn: HTTPConnection) -> LiveView:
    return _dashboard(conn).live


def _store(conn: HTTPConnection) -> AlertStore:
    return _dashboard(conn).store


def _feed(conn: HTTPConnection) -> AlertFeed:
    return _dashboard(conn).feed


def _video(conn: HTTPConnection) -> LiveVideo:
    return _dashboard(conn).video


def _camera_id(camera_id: str, live: Annotated[LiveView, Depends(_live)]) -> str:
    if camera_id not in {c.id for c in live.site.cameras}:
        raise HTTPException(404, f"unknown camera {camera_id!r}")
    return camera_id


DashboardDep = Annotated[Dashboard, Depends(_dashboard)]
LiveDep = Annotated[LiveView, Depends(_live)]
StoreDep = Annotated[AlertStore, Depends(_store)]
FeedDep = Annotated[AlertFeed, Depends(_feed)]
VideoDep = Annotated[LiveVideo, Depends(_video)]
CameraId = Annotated[str, Depends(_camera_id)]
