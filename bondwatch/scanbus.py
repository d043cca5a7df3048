"""The scan bus: a Redis stream that carries the factory's live scan events to the rules.

The dashboard's `POST /api/scans` publishes here, and factory systems that speak Redis may XADD
to the stream directly (docs/scans.md gives the format). The detection worker reads it. A bad
entry on the stream is logged, counted and skipped: one broken scanner must not stop the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis
from pydantic import AwareDatetime, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from bondwatch.scans import ScanEvent

logger = logging.getLogger(__name__)

SCAN_STREAM = "bondwatch:scans"
SCAN_ID_PREFIX = "bondwatch:scan-ids:"
SCAN_ID_TTL_S = 7 * 86400  # a client retrying a batch within a week is not double-counted
STREAM_MAXLEN = 100_000
MAX_BLOCK_MS = 10_000

# Check-and-add in one step, so a crash between the two can neither lose a scan nor let a retry
# add it twice. The id key keeps the stream entry id, for whoever investigates a duplicate.
_PUBLISH_ONCE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'scan', ARGV[1])
redis.call('SET', KEYS[2], entry, 'EX', ARGV[2])
return entry
"""

# The fields each kind of event needs, beyond its time.
_REQUIRED = {"scan": ("station", "serial"), "badge": ("zone",)}
_MESSAGES = {
    "missing": "field required",
    "missing_for_kind": "field required",
    "string_too_short": "must not be empty",
    "too_short": "needs at least {min_length}, got {actual_length}",
    "too_long": "takes at most {max_length}, got {actual_length}",
    "timezone_aware": "needs a time zone (e.g. 2026-07-21T08:00:03+08:00 or ...Z);"
    " a time without one is ambiguous and refused",
}


class LiveScan(ScanEvent):
    """An event of the live service: a timezone-aware wall-clock `ts`, never replay's `t`.

    `id`, when the sender gives one, makes publishing idempotent: a retried batch is not
    counted twice. A missing field is reported by name, not as an incomplete event.
    """

    id: str | None = Field(None, min_length=1, max_length=200, description="sender's unique id")
    ts: AwareDatetime = Field(description="wall-clock time of the scan, with its time zone")

    @model_validator(mode="before")
    @classmethod
    def _live_and_complete(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("t") is not None:
            raise ValueError("live scans carry `ts` (wall clock); `t` is replay's video time")
        for name in _REQUIRED.get(data.get("kind", "scan"), ()):
            if data.get(name) is None:
                raise PydanticCustomError("missing_for_kind", "field required", {"field": name})
        return data


def describe(err: ErrorDetails, root: str = "") -> str:
    """One validation error as `scans[2].serial: field required`, under `root`."""
    where = root
    for part in err["loc"]:
        if isinstance(part, int):
            where += f"[{part}]"
        else:
            where += f".{part}" if where else str(part)
    if err["type"] == "missing_for_kind":
        where += f".{err['ctx']['field']}"
    template = _MESSAGES.get(err["type"])
    if template is None:
        msg = err["msg"].removeprefix("Value error, ")
    else:
        msg = template.format(**err.get("ctx", {}))
    return f"{where or 'body'}: {msg}"


@dataclass(frozen=True)
class Published:
    """What became of one scan: its stream entry, or `duplicate` when its id was seen before."""

    id: str | None
    entry: str | None
    duplicate: bool


class ScanBus:
    def __init__(self, redis_url: str):
        self.redis_url = redis_url
        self._client = redis.Redis.from_url(redis_url, socket_timeout=5)
        self._once = self._client.register_script(_PUBLISH_ONCE)

    def publish(self, scans: list[LiveScan]) -> list[Published]:
        """Append `scans` in order; one whose `id` was already published is skipped."""
        pipe = self._client.pipeline(transaction=False)
        for scan in scans:
            body = scan.model_dump_json(exclude_none=True)
            if scan.id is None:
                pipe.xadd(SCAN_STREAM, {"scan": body}, maxlen=STREAM_MAXLEN, approximate=True)
            else:
                keys = [SCAN_STREAM, SCAN_ID_PREFIX + scan.id]
                self._once(keys=keys, args=[body, SCAN_ID_TTL_S, STREAM_MAXLEN], client=pipe)
        results = []
        for scan, entry in zip(scans, pipe.execute(), strict=True):
            entry = entry.decode() if isinstance(entry, bytes) else entry
            results.append(Published(scan.id, entry, duplicate=entry is None))
        return results

    def close(self) -> None:
        self._client.close()


class ScanReader:
    """Reads the scans added from `since_s` seconds ago on (by the Redis server's clock).

    A restarted worker reads back that far, so a scan made while it was down still counts.
    `bad` counts the entries skipped as unreadable.
    """

    def __init__(self, redis_url: str, since_s: float = 0.0):
        self.bad = 0
        # XREAD may block up to MAX_BLOCK_MS; the socket waits longer than that.
        self._client = redis.Redis.from_url(redis_url, socket_timeout=MAX_BLOCK_MS / 1000 + 5)
        secs, micros = self._client.time()
        start_ms = max(0, int(secs * 1000 + micros // 1000 - since_s * 1000))
        # XREAD returns ids after `last_id`: end it just before start_ms, so that a scan added
        # in the very millisecond the reader starts is read too, not skipped.
        self.last_id = f"{start_ms - 1}-{2**64 - 1}" if start_ms else "0-0"

    def read(self, block_ms: int | None = None, count: int = 100) -> list[LiveScan]:
        """The next scans; waits up to `block_ms` for one (None: return at once)."""
        if block_ms is not None:
            block_ms = max(1, min(block_ms, MAX_BLOCK_MS))  # BLOCK 0 would wait forever
        res = self._client.xread({SCAN_STREAM: self.last_id}, count=count, block=block_ms)
        scans = []
        for _stream, entries in res or []:
            for entry_id, fields in entries:
                self.last_id = entry_id.decode()
                scan = self._parse(self.last_id, fields)
                if scan is not None:
                    scans.append(scan)
        return scans

    def _parse(self, entry_id: str, fields: dict[bytes, bytes]) -> LiveScan | None:
        raw = fields.get(b"scan")
        if raw is None:
            why = f"no `scan` field (fields: {sorted(k.decode(errors='replace') for k in fields)})"
        else:
            try:
                return LiveScan.model_validate_json(raw)
            except ValidationError as e:
                why = "; ".join(describe(err, "scan") for err in e.errors())
        self.bad += 1
        logger.warning("skipped scan entry %s on %s: %s", entry_id, SCAN_STREAM, why)
        return None

    def close(self) -> None:
        self._client.close()
