"""Scan events: the factory's record that a unit's serial was scanned at a station."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ScanEvent(BaseModel):
    """`t` (seconds of the station camera's video) in replay, `ts` (wall clock) live.

    `kind: scan` (the default) is a unit's serial read at a station; `kind: badge` is an
    access-control event at a restricted zone's door: it authorizes that zone's next
    `persons_per_badge` entries (extra fields `badge` and `operator` name it in explanations).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Literal["scan", "badge"] = Field("scan", description="scan or badge event")
    station: str | None = Field(None, min_length=1, description="station (scanner) id")
    serial: str | None = Field(None, min_length=1, description="the unit's serial number")
    zone: str | None = Field(None, min_length=1, description="for a badge: the zone's id")
    t: float | None = Field(None, ge=0, description="video time of the station camera, replay")
    ts: datetime | None = Field(None, description="wall-clock time, live")

    @model_validator(mode="after")
    def _complete(self) -> ScanEvent:
        if self.t is None and self.ts is None:
            raise ValueError("a scan needs `t` (replay) or `ts` (live)")
        if self.kind == "scan" and not (self.station and self.serial):
            raise ValueError("a scan needs `station` and `serial`")
        if self.kind == "badge" and not self.zone:
            raise ValueError("a badge event needs `zone`")
        return self


class ScanFileError(Exception):
    pass


def load_scans(path: str | Path) -> list[ScanEvent]:
    """Read a JSON-lines scan file; the first bad line stops with its line number."""
    scans = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ScanFileError(f"cannot read scan file {path}: {e.strerror}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            scans.append(ScanEvent.model_validate(json.loads(line)))
        except json.JSONDecodeError as e:
            raise ScanFileError(f"{path} line {n}: not JSON ({e.msg})") from None
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err["loc"]) or "event"
            msg = err["msg"].removeprefix("Value error, ")
            raise ScanFileError(f"{path} line {n}: {where}: {msg}") from None
    return scans
