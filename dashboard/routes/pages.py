"""The pages (dashboard and sign-in), the open liveness probe and the signed-in status view."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.requests import HTTPConnection

from dashboard.auth import Permission
from dashboard.deps import Dashboard, DashboardDep, require, session_user
from dashboard.schemas import HealthzOut, StatusOut

STATIC = Path(__file__).resolve().parents[1] / "static"
INDEX = (STATIC / "index.html").read_text(encoding="utf-8")
LOGIN = (STATIC / "login.html").read_text(encoding="utf-8")
# The pages hold the session's actions; no other site may frame them (clickjacking).
PAGE_HEADERS = {"X-Frame-Options": "DENY", "Cache-Control": "no-store"}

router = APIRouter(tags=["pages"])


@router.get("/", response_class=HTMLResponse)
async def index(conn: HTTPConnection, dash: DashboardDep) -> Response:
    if session_user(conn) is None:
        return RedirectResponse("/login", status_code=303)
    return HTMLResponse(_fill(INDEX, dash), headers=PAGE_HEADERS)


@router.get("/login", response_class=HTMLResponse)
async def login_page(conn: HTTPConnection, dash: DashboardDep) -> Response:
    if session_user(conn) is not None:
        return RedirectResponse("/", status_code=303)
    return HTMLResponse(_fill(LOGIN, dash), headers=PAGE_HEADERS)


@router.get("/healthz")
def healthz() -> HealthzOut:
    return HealthzOut(status="ok")


@router.get("/api/status", dependencies=[require(Permission.STATUS)])
async def status(dash: DashboardDep) -> StatusOut:
    return StatusOut(
        cameras={cid: getattr(h, "state", "unknown") for cid, h in dash.live.health().items()},
        viewers=dash.video.peers,
        alert_sockets=len(dash.sockets),
        sessions=len(dash.auth.sessions),
    )


def _fill(page: str, dash: Dashboard) -> str:
    return page.replace("__TITLE__", html.escape(dash.title)).replace(
        "__SITE__", html.escape(dash.live.site.name)
    )
