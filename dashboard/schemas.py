"""Request and response bodies of the dashboard API, kept apart from the domain types."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
    confidence: float | None = None
    explanation: str | None = None


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


MAX_SCANS_PER_POST = 1000


class ScansIn(BaseModel):
    scans: list[LiveScan] = Field(min_length=1, max_length=MAX_SCANS_PER_POST)


class ScansOut(BaseModel):
    accepted: int = Field(description="scans added to the scan stream")
    duplicates: list[str] = Field(description="ids already published before: not added again")
