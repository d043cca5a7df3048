"""The app's long-lived parts, handed to route handlers as `Annotated` dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, WebSocket, WebSocketException, params
from starlette.requests import HTTPConnection

from alerts.store import AlertStore
from bondwatch.audit import AuditLog
from bondwatch.scanbus import ScanBus
from dashboard.auth import Auth, Permission, Principal
from dashboard.feed import AlertFeed
from dashboard.live import LiveView
from dashboard.webrtc import LiveVideo

SESSION_COOKIE = "bondwatch_session"


@dataclass
class Dashboard:
    live: LiveView
    store: AlertStore
    feed: AlertFeed
    video: LiveVideo
    auth: Auth
    scans: ScanBus
    audit: AuditLog
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


def _auth(conn: HTTPConnection) -> Auth:
    return _dashboard(conn).auth


def _scans(conn: HTTPConnection) -> ScanBus:
    return _dashboard(conn).scans


def _audit(conn: HTTPConnection) -> AuditLog:
    return _dashboard(conn).audit


def _video(conn: HTTPConnection) -> LiveVideo:
    return _dashboard(conn).video


def _camera_id(camera_id: str, live: Annotated[LiveView, Depends(_live)]) -> str:
    if camera_id not in {c.id for c in live.site.cameras}:
        raise HTTPException(404, f"unknown camera {camera_id!r}")
    return camera_id


def session_user(conn: HTTPConnection) -> Principal | None:
    """The user whose session cookie came with this request or WebSocket handshake, if any."""
    return _dashboard(conn).auth.sessions.get(conn.cookies.get(SESSION_COOKIE))


def require(permission: Permission | None = None) -> params.Depends:
    """A dependency that admits a signed-in user whose role grants `permission`.

    Without a session: 401, or WebSocket close code 4401; a role without the permission:
    403, or 4403. The socket is accepted before it is closed, because a browser only sees
    the close code of an accepted WebSocket. With no `permission`, any signed-in user.
    """

    async def check(conn: HTTPConnection) -> Principal:
        user = session_user(conn)
        if user is not None and (permission is None or user.may(permission)):
            return user
        if user is None:
            status, message = 401, "sign in first"
        else:
            status, message = 403, f"the {user.role} role may not use {permission}"
        if isinstance(conn, WebSocket):
            await conn.accept()
            raise WebSocketException(4000 + status, message)
        raise HTTPException(status, message)

    return Depends(check)


DashboardDep = Annotated[Dashboard, Depends(_dashboard)]
LiveDep = Annotated[LiveView, Depends(_live)]
StoreDep = Annotated[AlertStore, Depends(_store)]
FeedDep = Annotated[AlertFeed, Depends(_feed)]
VideoDep = Annotated[LiveVideo, Depends(_video)]
ScanBusDep = Annotated[ScanBus, Depends(_scans)]
CameraId = Annotated[str, Depends(_camera_id)]
AuthDep = Annotated[Auth, Depends(_auth)]
AuditDep = Annotated[AuditLog, Depends(_audit)]
SignedIn = Annotated[Principal, require()]
