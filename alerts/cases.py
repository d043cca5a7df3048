"""An alert as a customs case: the lifecycle state machine, pure so every rule is a table row.

new -> acknowledged -> resolved (confirmed_violation | false_alarm | explained), and
resolved -> acknowledged again by a reopen with a reason. Notes (the factory's explanation,
an officer's finding) can be added in any state and change nothing. Storage lives in
alerts/store.py; this module decides, it does no I/O.

Related alerts are grouped: an alert of the same type, camera, zone and track within
GROUP_WINDOW_S of the newest alert of an open case joins that case instead of opening a new
one. The first alert is the group head and its id is the case id; acting on any member acts
on the head's case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from alerts.types import Alert

State = Literal["new", "acknowledged", "resolved"]
Resolution = Literal["confirmed_violation", "false_alarm", "explained"]
Action = Literal["acknowledge", "resolve", "reopen", "note"]
Role = Literal["admin", "officer", "operator"]

RESOLUTIONS: tuple[Resolution, ...] = get_args(Resolution)
GROUP_WINDOW_S = 60.0

# Customs staff run the case; the factory's operators may only explain (add notes).
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    "admin": frozenset(get_args(Action)),
    "officer": frozenset(get_args(Action)),
    "operator": frozenset({"note"}),
}


class CaseError(Exception):
    """A lifecycle request that cannot be carried out; the message is one sentence for people."""


class IllegalTransition(CaseError):
    """The case is in a state where this action makes no sense (HTTP 409)."""


class RoleRefused(CaseError):
    """The user's role may not take this action (HTTP 403)."""


class MissingText(CaseError):
    """A note, reason or resolution the action requires is missing (HTTP 422)."""


@dataclass(frozen=True)
class Step:
    """One entry of a case's history: who did what, when, and what they wrote."""

    action: str  # "raised" or an Action
    actor: str
    at: float
    state: State  # the state after the step
    note: str = ""
    resolution: Resolution | None = None


@dataclass(frozen=True)
class Case:
    """A group head's alert with its state, the other alerts of its group and its history."""

    alert: Alert
    state: State
    resolution: Resolution | None
    members: tuple[Alert, ...]
    history: tuple[Step, ...]

    @property
    def id(self) -> str:
        return self.alert.id


def short(alert_id: str) -> str:
    return f"{alert_id[:8]}…" if len(alert_id) > 8 else alert_id


def decide(
    case_id: str,
    state: State,
    action: Action,
    role: Role,
    *,
    text: str = "",
    resolution: str | None = None,
) -> tuple[State, Resolution | None]:
    """The state and resolution after `action`, or a CaseError saying why it is refused.

    `text` is the note of acknowledge/resolve/note and the reason of reopen. The returned
    resolution is only meaningful for a resolved case.
    """
    a = f"alert {short(case_id)}"
    if action not in ROLE_ACTIONS[role]:
        raise RoleRefused(f"the {role} role may add notes to {a} but not {action} it")
    text = text.strip()
    if action == "note":
        if not text:
            raise MissingText(f"a note on {a} needs some text")
        return state, None
    if action == "acknowledge":
        if state == "acknowledged":
            raise IllegalTransition(f"{a} is already acknowledged")
        if state == "resolved":
            raise IllegalTransition(f"{a} is resolved: reopen it before acknowledging it again")
        return "acknowledged", None
    if action == "resolve":
        if state == "new":
            raise IllegalTransition(f"{a} is new: acknowledge it before resolving it")
        if state == "resolved":
            raise IllegalTransition(f"{a} is resolved: reopen it before resolving it again")
        if resolution not in RESOLUTIONS:
            raise MissingText(f"resolving {a} needs a resolution: one of {', '.join(RESOLUTIONS)}")
        if not text:
            raise MissingText(f"resolving {a} needs a note saying what was found")
        return "resolved", resolution  # type: ignore[return-value]
    if action == "reopen":
        if state != "resolved":
            raise IllegalTransition(f"{a} is {state}, not resolved: there is nothing to reopen")
        if not text:
            raise MissingText(f"reopening {a} needs a reason")
        return "acknowledged", None
    raise IllegalTransition(f"unknown action {action!r} on {a}")
