"""Alerts: the stored history, each alert's case (its lifecycle), and a WebSocket that pushes
each new alert as it is published.

The list holds every alert, grouped ones too (the contract's one line per alert), each with its
case's `state` and `group_id`; a client folds members (`group_id != id`) under their head.
`GET /api/alerts/{id}` of any member returns the whole case, and acting on a member acts on it.
A factory operator lists, opens, acts on and receives only its own factory's alerts (see Scope).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, WebSocket
from fastapi.websockets import WebSocketDisconnect

from alerts.cases import Case, CaseError, IllegalTransition, RoleRefused, State, Step
from alerts.store import UnknownAlert
from alerts.types import Alert, AlertType, iso
from dashboard.auth import Permission, Principal
from dashboard.deps import (
    ALERT_IN_SCOPE,
    DashboardDep,
    FeedDep,
    Scope,
    ScopedCase,
    StoreDep,
    UserScope,
    check_camera,
    require,
)
from dashboard.schemas import (
    AcknowledgeIn,
    AlertOut,
    CaseOut,
    NoteIn,
    ReopenIn,
    ResolveIn,
    StepOut,
)

router = APIRouter(tags=["alerts"], dependencies=[require(Permission.ALERTS)])


@router.get("/api/alerts", response_model_exclude_none=True)
def list_alerts(
    store: StoreDep,
    scope: UserScope,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    since: Annotated[datetime | None, Query(description="ISO 8601 or UNIX seconds; naive means UTC")] = None,
    types: Annotated[list[AlertType] | None, Query(alias="type", description="repeat for several")] = None,
    camera: Annotated[str | None, Query(max_length=64)] = None,
    station: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[State | None, Query(description="the case's state")] = None,
    from_: Annotated[datetime | None, Query(alias="from", description="event time, ISO 8601")] = None,
    to: Annotated[datetime | None, Query(description="event time, ISO 8601")] = None,
) -> list[AlertOut]:
    """Newest first, narrowed on the server by type, camera, station, case state and event time."""
    if camera is not None and not scope.allows(camera):
        check_camera(scope, camera)

    def newest(n: int) -> list[Alert]:
        return store.recent(
            limit=n,
            since=_unix(since),
            types=types or (),
            camera=camera,
            station=station,
            state=state,
            from_ts=_unix(from_),
            to_ts=_unix(to),
        )

    alerts = _newest_in_scope(scope, limit, newest)
    states = store.states([a.id for a in alerts])
    return [_alert_out(a, *states.get(a.id, (None, None))) for a in alerts]


def _newest_in_scope(scope: Scope, limit: int, fetch: Callable[[int], list[Alert]]) -> list[Alert]:
    """The newest `limit` alerts that `scope` allows, from `fetch(n)` (the newest n of all).
    The store filters by one camera at most, so for a factory operator fetch four times as many
    each round until `limit` of its own are found or the store has no more."""
    n = limit
    while True:
        alerts = fetch(n)
        allowed = [a for a in alerts if scope.allows(a.camera)]
        if len(allowed) >= limit or len(alerts) < n:
            return allowed[:limit]
        n *= 4


def _unix(when: datetime | None) -> float | None:
    """UNIX seconds of a query time; a time without zone is UTC."""
    if when is None:
        return None
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()


@router.get("/api/alerts/{alert_id}", response_model_exclude_none=True, responses={404: {}})
def get_case(case: ScopedCase) -> CaseOut:
    """The case `alert_id` belongs to: head alert, state, history and grouped alerts."""
    return _case_out(case)


CASE_ERRORS = {404: {}, 403: {}, 409: {"description": "not allowed in the case's state"}, 422: {}}


@router.post("/api/alerts/{alert_id}/acknowledge", responses=CASE_ERRORS, dependencies=[ALERT_IN_SCOPE])
def acknowledge(
    alert_id: str,
    body: AcknowledgeIn,
    store: StoreDep,
    user: Annotated[Principal, require(Permission.CASE_ACKNOWLEDGE)],
) -> CaseOut:
    return _act(lambda: store.act(alert_id, "acknowledge", user.name, user.role, text=body.note), alert_id)


@router.post("/api/alerts/{alert_id}/resolve", responses=CASE_ERRORS, dependencies=[ALERT_IN_SCOPE])
def resolve(
    alert_id: str,
    body: ResolveIn,
    store: StoreDep,
    user: Annotated[Principal, require(Permission.CASE_RESOLVE)],
) -> CaseOut:
    return _act(
        lambda: store.act(
            alert_id, "resolve", user.name, user.role, text=body.note, resolution=body.resolution
        ),
        alert_id,
    )


@router.post("/api/alerts/{alert_id}/reopen", responses=CASE_ERRORS, dependencies=[ALERT_IN_SCOPE])
def reopen(
    alert_id: str,
    body: ReopenIn,
    store: StoreDep,
    user: Annotated[Principal, require(Permission.CASE_REOPEN)],
) -> CaseOut:
    return _act(lambda: store.act(alert_id, "reopen", user.name, user.role, text=body.reason), alert_id)


@router.post("/api/alerts/{alert_id}/notes", responses=CASE_ERRORS, dependencies=[ALERT_IN_SCOPE])
def add_note(
    alert_id: str,
    body: NoteIn,
    store: StoreDep,
    user: Annotated[Principal, require(Permission.CASE_NOTE)],
) -> CaseOut:
    return _act(lambda: store.act(alert_id, "note", user.name, user.role, text=body.text), alert_id)


def _act(action: Callable[[], Case], alert_id: str) -> CaseOut:
    """Run a lifecycle action, turning its refusal into the HTTP status that fits."""
    try:
        return _case_out(action())
    except UnknownAlert:
        raise HTTPException(404, f"unknown alert {alert_id!r}") from None
    except IllegalTransition as e:
        raise HTTPException(409, str(e)) from None
    except RoleRefused as e:
        raise HTTPException(403, str(e)) from None
    except CaseError as e:
        raise HTTPException(422, str(e)) from None


def _alert_out(alert: Alert, state: str | None, group_id: str | None) -> AlertOut:
    return AlertOut.model_validate(alert.to_dict(live=True) | {"state": state, "group_id": group_id})


def _step_out(step: Step) -> StepOut:
    return StepOut(
        action=step.action, actor=step.actor, at=iso(step.at), state=step.state,
        note=step.note, resolution=step.resolution,
    )  # fmt: skip


def _case_out(case: Case) -> CaseOut:
    return CaseOut(
        id=case.id,
        state=case.state,
        resolution=case.resolution,
        alert=_alert_out(case.alert, case.state, case.id),
        members=[_alert_out(m, case.state, case.id) for m in case.members],
        history=[_step_out(h) for h in case.history],
    )


@router.websocket("/ws/alerts")
async def alerts_socket(ws: WebSocket, feed: FeedDep, dash: DashboardDep, scope: UserScope) -> None:
    """Sends each alert the user may see as one JSON text message, in the `/api/alerts` schema."""
    await ws.accept()
    dash.sockets.add(ws)
    closed = asyncio.create_task(_until_closed(ws))
    try:
        with feed.subscribe(lambda alert: scope.allows(alert.camera)) as queue:
            while True:
                next_alert = asyncio.create_task(queue.get())
                await asyncio.wait({next_alert, closed}, return_when=asyncio.FIRST_COMPLETED)
                if closed.done():
                    next_alert.cancel()
                    return
                out = _alert_out(next_alert.result(), None, None)
                await ws.send_text(out.model_dump_json(exclude_none=True))
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
