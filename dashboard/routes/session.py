"""Signing in and out: a session cookie that the browser cannot read and never sends cross-site."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from dashboard.auth import LoginRefused, TooManyAttempts
from dashboard.deps import SESSION_COOKIE, AuthDep, SignedIn
from dashboard.schemas import LoginIn, MeOut

router = APIRouter(prefix="/api", tags=["session"])


@router.post("/login", responses={401: {}, 429: {"description": "too many failed attempts"}})
async def login(body: LoginIn, request: Request, response: Response, auth: AuthDep) -> MeOut:
    client = request.client.host if request.client else "unknown"
    try:
        user, token = await auth.login(body.name, body.password, client)
    except TooManyAttempts as e:
        raise HTTPException(
            429,
            f"Too many failed sign-ins. Try again in {e.retry_after_s} seconds.",
            headers={"Retry-After": str(e.retry_after_s)},
        ) from None
    except LoginRefused:
        raise HTTPException(401, "Wrong user name or password.") from None
    auth.sessions.end(request.cookies.get(SESSION_COOKIE))
    response.set_cookie(SESSION_COOKIE, token, **_cookie_flags(request))
    return MeOut(name=user.name, role=user.role)


@router.post("/logout", status_code=204)
async def logout(request: Request, response: Response, auth: AuthDep, _: SignedIn) -> None:
    auth.sessions.end(request.cookies.get(SESSION_COOKIE))
    response.delete_cookie(SESSION_COOKIE, **_cookie_flags(request))


@router.get("/me")
async def me(user: SignedIn) -> MeOut:
    return MeOut(name=user.name, role=user.role)


def _cookie_flags(request: Request) -> dict:
    """No Max-Age: the cookie ends with the browser, the session after 12 h idle on the server."""
    secure = request.url.scheme == "https"
    return {"path": "/", "httponly": True, "samesite": "strict", "secure": secure}
