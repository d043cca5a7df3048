"""Who is signed in, and what each role may do: sessions, login throttling and the policy table.

Sessions are random tokens mapped to a user in this process's memory, not signed cookies: a
logout or expiry takes effect at once and exactly, and there is no installation secret to
generate, store and protect. The price is that a restart signs everyone out, which suits a
single service process on a workshop LAN. Everything here is touched only from the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from bondwatch.accounts import Accounts, Role

logger = logging.getLogger(__name__)

SESSION_IDLE_S = 12 * 3600.0
LOGIN_FAILURES = 5  # failed attempts allowed per user name and per client address ...
LOGIN_WINDOW_S = 300.0  # ... within this many seconds; the next attempt is refused (429)


class Permission(StrEnum):
    CAMERAS = "cameras"  # camera list, zones, health, snapshots
    LIVE_VIDEO = "live_video"  # WebRTC live view
    ALERTS = "alerts"  # alert history and the live alert socket
    STATUS = "status"  # service internals: viewers, sockets, camera states
    SCANS = "scans"  # post the factory's scan events
    CASE_NOTE = "case_note"  # add a note (the factory's explanation, an officer's finding)
    CASE_ACKNOWLEDGE = "case_acknowledge"
    CASE_RESOLVE = "case_resolve"
    CASE_REOPEN = "case_reopen"
    EVIDENCE = "evidence"  # view an alert's snapshot and clip
    EVIDENCE_EXPORT = "evidence_export"  # export a case's signed evidence package (customs only)
    ZONES_EDIT = "zones_edit"  # draw and save zones in the site file (admin only)


# The whole access policy by role. Factory staff (operator) see cameras, video, alerts and their
# evidence, but never export it; which cameras and alerts is their factory's business, decided
# once by dashboard.deps.Scope. The factory's systems post scans with an API token (role
# `scanner`), which can do nothing else.
# Operators may explain an alert (a note) but only customs staff acknowledge or resolve it.
GRANTS: dict[Role | Literal["scanner"], frozenset[Permission]] = {
    "admin": frozenset(Permission),
    "officer": frozenset(Permission) - {Permission.ZONES_EDIT},
    "operator": frozenset(
        {Permission.CAMERAS, Permission.LIVE_VIDEO, Permission.ALERTS, Permission.SCANS, Permission.CASE_NOTE}
        | {Permission.EVIDENCE}
    ),
    "scanner": frozenset({Permission.SCANS}),
}


@dataclass(frozen=True)
class Principal:
    """The signed-in user as the dashboard sees it: a name, a role and, for a factory operator,
    its factory (None for customs staff, who see every factory)."""

    name: str
    role: Role | Literal["scanner"]
    factory: str | None = None

    def may(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]


class LoginRefused(Exception):
    """Wrong name or password; deliberately does not say which."""


class TooManyAttempts(Exception):
    def __init__(self, retry_after_s: int):
        super().__init__(f"too many failed sign-ins; retry in {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


@dataclass
class _Session:
    principal: Principal
    last_seen: float


class Sessions:
    """Random tokens -> signed-in users; a session unused for `idle_s` is gone."""

    def __init__(self, idle_s: float = SESSION_IDLE_S, clock: Callable[[], float] = time.monotonic):
        self._idle_s = idle_s
        self._clock = clock
        self._by_token: dict[str, _Session] = {}

    def __len__(self) -> int:
        return len(self._by_token)

    def create(self, principal: Principal) -> str:
        now = self._clock()
        self._by_token = {t: s for t, s in self._by_token.items() if now - s.last_seen < self._idle_s}
        token = secrets.token_urlsafe(32)
        self._by_token[token] = _Session(principal, now)
        return token

    def get(self, token: str | None) -> Principal | None:
        """The user of `token`, refreshing its idle timer; None when unknown or expired."""
        session = self._by_token.get(token) if token else None
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen >= self._idle_s:
            del self._by_token[token]  # type: ignore[arg-type]
            return None
        session.last_seen = now
        return session.principal

    def end(self, token: str | None) -> None:
        if token:
            self._by_token.pop(token, None)


class LoginLimiter:
    """Counts failed sign-ins per key (a user name, a client address) in a sliding window."""

    def __init__(
        self,
        failures: int = LOGIN_FAILURES,
        window_s: float = LOGIN_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._failures = failures
        self._window_s = window_s
        self._clock = clock
        self._log: dict[str, deque[float]] = {}

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds until every key may try again; 0 when none is blocked."""
        now = self._clock()
        self._prune(now)
        waits = [
            log[-self._failures] + self._window_s - now
            for key in keys
            if len(log := self._log.get(key, ())) >= self._failures
        ]
        return max(waits, default=0.0)

    def fail(self, keys: Iterable[str]) -> None:
        now = self._clock()
        for key in keys:
            self._log.setdefault(key, deque()).append(now)

    def forget(self, key: str) -> None:
        self._log.pop(key, None)

    def _prune(self, now: float) -> None:
        for key in list(self._log):
            log = self._log[key]
            while log and now - log[0] >= self._window_s:
                log.popleft()
            if not log:
                del self._log[key]


class Auth:
    """Signs users in against the accounts, throttling guessing, and keeps their sessions."""

    def __init__(self, accounts: Accounts, sessions: Sessions, limiter: LoginLimiter):
        self.accounts = accounts
        self.sessions = sessions
        self.limiter = limiter
        # One check at a time: parallel guesses cannot slip past the limiter between its
        # check and its count, and scrypt's CPU and memory stay bounded under a flood.
        self._lock = asyncio.Lock()

    async def login(self, name: str, password: str, client: str) -> tuple[Principal, str]:
        """The user and a new session token; raises TooManyAttempts or LoginRefused."""
        keys = (f"name:{name}", f"addr:{client}")
        async with self._lock:
            wait = self.limiter.retry_after(keys)
            if wait > 0:
                logger.warning("sign-in throttled for %r from %s", name, client)
                raise TooManyAttempts(math.ceil(wait))
            user = await asyncio.to_thread(self.accounts.verify, name, password)
            if user is None:
                self.limiter.fail(keys)
                logger.warning("failed sign-in for %r from %s", name, client)
                raise LoginRefused
            self.limiter.forget(keys[0])
        principal = Principal(user.name, user.role, user.factory)  # type: ignore[arg-type]
        logger.info("%s (%s) signed in from %s", principal.name, principal.role, client)
        return principal, self.sessions.create(principal)

    def token_user(self, secret: str) -> Principal | None:
        """The factory system an API token (`Authorization: Bearer ...`) stands for, if any."""
        token = self.accounts.token(secret)
        return Principal(f"token:{token.name}", "scanner", token.factory) if token is not None else None
