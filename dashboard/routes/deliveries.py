"""Where each alert was notified: one row per channel, so the alert desk sees a channel that
failed, and why, without reading logs."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from alerts.notify import deliveries
from alerts.types import iso
from dashboard.auth import Permission
from dashboard.deps import ALERT_IN_SCOPE, StoreDep, require

router = APIRouter(tags=["alerts"], dependencies=[require(Permission.ALERTS)])


class DeliveryOut(BaseModel):
    channel: str = Field(description="the channel id of the site file's `notifications`")
    state: Literal["pending", "sending", "sent", "failed", "digested"] = Field(
        description="pending: waiting (for its snapshot, the rate limit or a retry); sending: in"
        " flight; sent: alone; digested: in a digest message; failed: given up"
    )
    attempts: int
    last_error: str | None = None
    sent_at: str | None = Field(None, description="ISO 8601, when the channel accepted it")


@router.get(
    "/api/alerts/{alert_id}/deliveries", dependencies=[ALERT_IN_SCOPE], responses={403: {}, 404: {}}
)
def list_deliveries(alert_id: str, store: StoreDep) -> list[DeliveryOut]:
    """The notifications of one alert, by channel; [] when no channel routes it."""
    return [
        DeliveryOut(
            channel=d.channel, state=d.state, attempts=d.attempts, last_error=d.last_error,
            sent_at=iso(d.sent_at) if d.sent_at is not None else None,
        )  # fmt: skip
        for d in deliveries(store.engine, alert_id)
    ]
