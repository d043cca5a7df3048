"""Scan events: the factory's record that a unit's serial was scanned at a station."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ScanEvent(BaseModel):
    """`t` (seconds of the station camera's video) in replay, `ts` (wall clock) live."""

    model_config = ConfigDict(extra="allow", frozen=True)

    station: str = Field(min_length=1, description="station (scanner) id")
    serial: str = Field(min_length=1, description="the unit's serial number")
    t: float | None = Field(None, ge=0, description="video time of the station camera, replay")
    ts: datetime | None = Field(None, description="wall-clock time, live")

    @model_validator(mode="after")
    def _has_time(self) -> ScanEvent:
        if self.t is None and self.ts is None:
            raise ValueError("a scan needs `t` (replay) or `ts` (live)")
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
