"""The alert: what the rules produce and the dashboard, CLI and notifiers consume."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

AlertType = Literal[
    "unauthorized_entry", "unscanned_departure", "camera_offline", "camera_online", "camera_tamper"
]
# What each type is called in the two languages officers read (notifications, snapshots).
TYPE_LABELS = {
    "zh-CN": {
        "unauthorized_entry": "未授权进入",
        "unscanned_departure": "未扫码离开",
        "camera_offline": "摄像头离线",
        "camera_online": "摄像头恢复",
        "camera_tamper": "摄像头遮挡或移位",
    },
    "en": {
        "unauthorized_entry": "Unauthorized entry",
        "unscanned_departure": "Unscanned departure",
        "camera_offline": "Camera offline",
        "camera_online": "Camera back online",
        "camera_tamper": "Camera blocked or moved",
    },
}


@dataclass(frozen=True)
class Alert:
    """One event. `t` is video time of the event (not of the alert); `ts` its wall-clock time."""

    type: AlertType
    camera: str
    t: float
    ts: float | None = None
    zone: str | None = None
    station: str | None = None
    track: int | None = None
    carrier: int | None = None  # the person track a unit was carried off by, unseen in its hand
    confidence: float | None = None
    explanation: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_dict(self, live: bool = False) -> dict[str, Any]:
        """The CONTRACTS.md schema: replay alerts carry `t`; live alerts carry ISO `ts` too."""
        d = {k: v for k, v in asdict(self).items() if v is not None and v != ""}
        d["t"] = round(self.t, 3)
        if self.ts is not None:
            d["ts"] = iso(self.ts)
        if not live:
            d.pop("ts", None)
        return d

    def to_json(self, live: bool = False) -> str:
        return json.dumps(self.to_dict(live), ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        d = dict(d)
        if isinstance(d.get("ts"), str):
            d["ts"] = datetime.fromisoformat(d["ts"]).timestamp()
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


@dataclass
class Stamped:
    """A scan or a badge as a rule holds it: its video time in replay, or live its wall clock
    corrected for the reader's skew. Exactly one of the two is set."""

    t: float | None
    ts: float | None

    def seconds_after(self, t: float, ts: float) -> float:
        """Seconds from the moment (`t`, `ts`) to this event, in the event's own time base."""
        if self.t is not None:
            return self.t - t
        assert self.ts is not None
        return self.ts - ts

    def when(self) -> str:
        if self.t is not None:
            return f"t={self.t:.1f} s"
        assert self.ts is not None
        return iso(self.ts)
