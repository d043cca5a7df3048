"""The alert bus: a Redis stream that carries alerts (never frames) to whoever follows."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import redis
import redis.asyncio as aredis

from alerts.types import Alert

logger = logging.getLogger(__name__)

ALERT_STREAM = "bondwatch:alerts"
STREAM_MAXLEN = 100_000


class AlertBus:
    def __init__(self, redis_url: str):
        self.redis_url = redis_url
        self._sync = redis.Redis.from_url(redis_url, socket_timeout=5)

    def publish(self, alert: Alert) -> str:
        """Append `alert` to the stream; returns the stream entry id."""
        return self.publish_entry(alert.id, alert.to_json(live=True))

    def publish_entry(self, alert_id: str, alert_json: str) -> str:
        """Append an alert already serialized (live JSON), keyed by its id for deduplication."""
        entry = self._sync.xadd(
            ALERT_STREAM,
            {"id": alert_id, "alert": alert_json},
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    async def follow(self, last_id: str = "$") -> AsyncIterator[tuple[str, Alert]]:
        """Yield alerts published after `last_id`, blocking until they come."""
        # No socket timeout: XREAD blocks for up to 5 s by design.
        client = aredis.Redis.from_url(self.redis_url, socket_timeout=None)
        try:
            while True:
                res = await client.xread({ALERT_STREAM: last_id}, block=5000, count=100)
                for _stream, entries in res or []:
                    for entry_id, fields in entries:
                        last_id = entry_id.decode()
                        yield last_id, Alert.from_dict(json.loads(fields[b"alert"]))
        finally:
            await client.aclose()

    def close(self) -> None:
        self._sync.close()
