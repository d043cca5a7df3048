"""Request and response bodies of the dashboard API, kept apart from the domain types."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alerts.explain import explain
from bondwatch.scanbus import LiveScan


class ZoneOut(BaseModel):
    id: str
    kind: Literal["restricted", "station"]
    name: str
    station: str | None
    polygon: list[tuple[float, float]]


class HealthOut(BaseModel):
    """Read from whatever health record ingest keeps; fields it lacks stay empty."""

    model_config = ConfigDict(from_attributes=True)

    state: str = Field(description="connecting, live, stalled or offline")
    fps: float | None = None
    frames: int | None = None
    dropped: int | None = None
    decode_errors: int | None = None
    reconnects: int | None = None
    last_frame_ts: float | None = Field(None, description="UNIX time of the newest frame")
    error: str | None = None
    tamper: str = Field("", description="tamper conditions now (covered, moved, blurred, frozen), or empty")


class CameraOut(BaseModel):
    id: str
    name: str
    health: HealthOut | None
    zones: list[ZoneOut]


class AlertOut(BaseModel):
    """One alert in the CONTRACTS.md schema, with its `id` and ISO 8601 `ts`."""

    id: str
    type: str
    camera: str
    t: float
    ts: str | None = None
    zone: str | None = None
    station: str | None = None
    track: int | None = None
    carrier: int | None = Field(None, description="the person track a unit was carried off by, out of sight")
    confidence: float | None = None
    explanation: str | None = None
    explanation_zh: str | None = Field(None, description="the explanation in zh-CN (alerts.explain)")
    state: str | None = Field(None, description="new, acknowledged or resolved: its case's state")
    group_id: str | None = Field(None, description="id of its case (the group head); = id for a head")

    @model_validator(mode="after")
    def _in_chinese(self) -> AlertOut:
        if self.explanation and self.explanation_zh is None:
            self.explanation_zh = explain(self.explanation, "zh-CN")
        return self


class AcknowledgeIn(BaseModel):
    note: str = Field("", max_length=4000)


class ResolveIn(BaseModel):
    resolution: Literal["confirmed_violation", "false_alarm", "explained"]
    note: str = Field(min_length=1, max_length=4000)


class ReopenIn(BaseModel):
    reason: str = Field(min_length=1, max_length=4000)


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class StepOut(BaseModel):
    action: str = Field(description="raised, grouped, acknowledge, resolve, reopen or note")
    actor: str
    at: str = Field(description="ISO 8601")
    state: str = Field(description="the case's state after this step")
    note: str
    resolution: str | None = None


class CaseOut(BaseModel):
    """An alert's case: the group head, its state, history and the alerts grouped into it."""

    id: str = Field(description="the case id: the group head's alert id")
    state: Literal["new", "acknowledged", "resolved"]
    resolution: str | None = None
    alert: AlertOut
    members: list[AlertOut]
    history: list[StepOut]


class OfferIn(BaseModel):
    camera: str
    sdp: str
    type: Literal["offer"]


class AnswerOut(BaseModel):
    sdp: str
    type: str


class HealthzOut(BaseModel):
    """Open to load balancers, so it says only that the web service answers."""

    status: Literal["ok"]


class StatusOut(BaseModel):
    cameras: dict[str, str] = Field(description="camera id -> state")
    viewers: int = Field(description="open WebRTC peer connections")
    alert_sockets: int = Field(description="open alert WebSockets")
    sessions: int = Field(description="signed-in sessions")


class LoginIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class MeOut(BaseModel):
    name: str
    role: Literal["admin", "officer", "operator"]
    factory: str | None = Field(None, description="an operator's factory; absent for customs staff")


MAX_SCANS_PER_POST = 1000


class ScansIn(BaseModel):
    scans: list[LiveScan] = Field(min_length=1, max_length=MAX_SCANS_PER_POST)


class ScansOut(BaseModel):
    accepted: int = Field(description="scans added to the scan stream")
    duplicates: list[str] = Field(description="ids already published before: not added again")
