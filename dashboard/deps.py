"""The app's long-lived parts, handed to route handlers as `Annotated` dependencies, and the
one place where a factory operator is kept to its own factory's cameras and alerts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, WebSocket, WebSocketException, params
from starlette.requests import HTTPConnection

from alerts.cases import Case
from alerts.store import AlertStore
from bondwatch.audit import AuditLog
from bondwatch.scanbus import ScanBus
from dashboard.auth import Auth, Permission, Principal
from dashboard.feed import AlertFeed
from dashboard.live import LiveView
from dashboard.webrtc import LiveVideo
from streams.recordings import RecordingStore

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
    recording: RecordingStore | None = None  # None: the site records nothing


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


def _recording(conn: HTTPConnection) -> RecordingStore:
    recording = _dashboard(conn).recording
    if recording is None:
        raise HTTPException(503, "this site records no video: recording is disabled in its site file")
    return recording


def session_user(conn: HTTPConnection) -> Principal | None:
    """The user whose session cookie came with this request or WebSocket handshake, if any;
    else the factory system whose API token came as `Authorization: Bearer ...`."""
    auth = _dashboard(conn).auth
    user = auth.sessions.get(conn.cookies.get(SESSION_COOKIE))
    scheme, _, secret = conn.headers.get("authorization", "").partition(" ")
    if user is None and scheme.lower() == "bearer" and secret.strip():
        user = auth.token_user(secret.strip())
    return user


def _unsigned(conn: HTTPConnection) -> str:
    """Why a request without a user is refused, in one sentence."""
    if conn.headers.get("authorization"):
        return "the API token is unknown or was revoked (Authorization: Bearer bwt_...)"
    return "sign in first"


def _signed_in(conn: HTTPConnection) -> Principal:
    user = session_user(conn)
    if user is None:
        raise HTTPException(401, _unsigned(conn))
    return user


@dataclass(frozen=True)
class Scope:
    """The cameras, and so the alerts, one user may see: every camera for customs staff, the
    cameras whose site-file `factory` is theirs for a factory operator.

    It reads the site through the live view at each question, so a long-lived alert socket
    follows a site reloaded without a restart. An alert of a camera no longer in the site is
    customs staff's only.
    """

    factory: str | None
    live: LiveView

    def allows(self, camera_id: str) -> bool:
        if self.factory is None:
            return True
        return any(c.id == camera_id and c.factory == self.factory for c in self.live.site.cameras)

    def cameras(self) -> list[str] | None:
        """Ids of the cameras in scope; None when that is every camera, known or not."""
        if self.factory is None:
            return None
        return [c.id for c in self.live.site.cameras if c.factory == self.factory]


def _scope(conn: HTTPConnection) -> Scope:
    return Scope(_signed_in(conn).factory, _live(conn))


# Another factory's camera or alert answers 403, not 404. A 404 would hide that the id exists,
# but ids are random UUIDs that an operator can only learn from its own screens, and every
# factory at a bonded site knows the others are there; a plain "this is another factory's"
# tells the operator (and whoever supports them) at once why the link does not open, where a
# 404 would read as a lost alert.
def check_camera(scope: Scope, camera_id: str) -> None:
    """404 for a camera not in the site, 403 for one of another factory."""
    if camera_id not in {c.id for c in scope.live.site.cameras}:
        raise HTTPException(404, f"unknown camera {camera_id!r}")
    if not scope.allows(camera_id):
        raise HTTPException(
            403,
            f"camera {camera_id!r} belongs to another factory:"
            f" an operator of factory {scope.factory!r} sees only that factory's cameras",
        )


def _camera_id(camera_id: str, scope: Annotated[Scope, Depends(_scope)]) -> str:
    check_camera(scope, camera_id)
    return camera_id


def _case_in_scope(
    alert_id: str, store: Annotated[AlertStore, Depends(_store)], scope: Annotated[Scope, Depends(_scope)]
) -> Case:
    """The case of path parameter `alert_id`, if the user may see it: 404 when there is no
    such alert, 403 when it is another factory's. Grouping never joins alerts of two cameras,
    so the head alert's camera decides for the whole case."""
    case = store.case(alert_id)
    if case is None:
        raise HTTPException(404, f"unknown alert {alert_id!r}")
    if not scope.allows(case.alert.camera):
        raise HTTPException(
            403,
            f"alert {alert_id!r} is from another factory's camera:"
            f" an operator of factory {scope.factory!r} sees only that factory's alerts",
        )
    return case


def require(permission: Permission | None = None) -> params.Depends:
    """A dependency that admits a signed-in user whose role grants `permission`.

    Without a session: 401, or WebSocket close code 4401; a role without the permission:
    403, or 4403. The socket is accepted before it is closed, because a browser only sees
    the close code of an accepted WebSocket. With no `permission`, any signed-in user.
    """

    async def check(conn: HTTPConnection) -> Principal:
        user = session_user(conn)
        # Any signed-in person passes a route without a permission; an API token never does.
        if user is not None and (user.may(permission) if permission else user.role != "scanner"):
            return user
        if user is None:
            status, message = 401, _unsigned(conn)
        elif permission is None:
            status, message = 403, "an API token may only post scans"
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
CameraId = Annotated[str, Depends(_camera_id)]  # a camera of the site that the user may see
UserScope = Annotated[Scope, Depends(_scope)]
# The case of the route's `{alert_id}`, checked against the user's factory; a route that needs
# no case object takes `dependencies=[ALERT_IN_SCOPE]` instead.
ScopedCase = Annotated[Case, Depends(_case_in_scope)]
ALERT_IN_SCOPE = Depends(_case_in_scope)
AuthDep = Annotated[Auth, Depends(_auth)]
AuditDep = Annotated[AuditLog, Depends(_audit)]
RecordingDep = Annotated[RecordingStore, Depends(_recording)]
SignedIn = Annotated[Principal, require()]
