"""Signing in and out: a session cookie that the browser cannot read and never sends cross-site.

Every attempt, successful or not, and every sign-out goes to the audit trail.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request, Response

from dashboard.auth import LoginRefused, TooManyAttempts
from dashboard.deps import SESSION_COOKIE, AuditDep, AuthDep, SignedIn
from dashboard.schemas import LoginIn, MeOut

router = APIRouter(prefix="/api", tags=["session"])


@router.post(
    "/login",
    responses={401: {}, 429: {"description": "too many failed attempts"}},
    response_model_exclude_none=True,
)
async def login(body: LoginIn, request: Request, response: Response, auth: AuthDep, audit: AuditDep) -> MeOut:
    client = request.client.host if request.client else "unknown"
    target = f"user:{body.name}"
    try:
        user, token = await auth.login(body.name, body.password, client)
    except TooManyAttempts as e:
        await asyncio.to_thread(audit.record, body.name, "login_throttled", target, {"client": client})
        raise HTTPException(
            429,
            f"Too many failed sign-ins. Try again in {e.retry_after_s} seconds.",
            headers={"Retry-After": str(e.retry_after_s)},
        ) from None
    except LoginRefused:
        await asyncio.to_thread(audit.record, body.name, "login_failed", target, {"client": client})
        raise HTTPException(401, "Wrong user name or password.") from None
    await asyncio.to_thread(audit.record, user.name, "login", target, {"client": client, "role": user.role})
    auth.sessions.end(request.cookies.get(SESSION_COOKIE))
    response.set_cookie(SESSION_COOKIE, token, **_cookie_flags(request))
    return MeOut(name=user.name, role=user.role, factory=user.factory)


@router.post("/logout", status_code=204)
async def logout(
    request: Request, response: Response, auth: AuthDep, audit: AuditDep, user: SignedIn
) -> None:
    auth.sessions.end(request.cookies.get(SESSION_COOKIE))
    client = request.client.host if request.client else "unknown"
    await asyncio.to_thread(audit.record, user.name, "logout", f"user:{user.name}", {"client": client})
    response.delete_cookie(SESSION_COOKIE, **_cookie_flags(request))


@router.get("/me", response_model_exclude_none=True)
async def me(user: SignedIn) -> MeOut:
    return MeOut(name=user.name, role=user.role, factory=user.factory)


def _cookie_flags(request: Request) -> dict:
    """No Max-Age: the cookie ends with the browser, the session after 12 h idle on the server."""
    secure = request.url.scheme == "https"
    return {"path": "/", "httponly": True, "samesite": "strict", "secure": secure}
