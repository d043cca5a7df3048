"""The single page and the liveness probe."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from dashboard.deps import DashboardDep
from dashboard.schemas import HealthzOut

STATIC = Path(__file__).resolve().parents[1] / "static"
INDEX = (STATIC / "index.html").read_text(encoding="utf-8")

router = APIRouter(tags=["pages"])


@router.get("/", response_class=HTMLResponse)
def index(dash: DashboardDep) -> str:
    return INDEX.replace("__TITLE__", html.escape(dash.title)).replace(
        "__SITE__", html.escape(dash.live.site.name)
    )


@router.get("/healthz")
def healthz(dash: DashboardDep) -> HealthzOut:
    cameras = {cid: getattr(h, "state", "unknown") for cid, h in dash.live.health().items()}
    return HealthzOut(status="ok", cameras=cameras, viewers=dash.video.peers, alert_sockets=len(dash.sockets))
