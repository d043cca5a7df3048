"""Fans alerts from the bus out to every open dashboard: one Redis follower, many browsers.

The follower resumes from the last stream id it saw, so a Redis restart neither loses nor
repeats alerts; an alert id already delivered (the outbox republishes after a crash) is
dropped, so each alert reaches a browser once; a browser that cannot keep up loses its
oldest undelivered alerts (counted) instead of making the others wait. Each subscriber says
which alerts it wants (a factory operator only its factory's), and gets no others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator

from alerts.bus import AlertBus
from alerts.types import Alert

logger = logging.getLogger(__name__)

QUEUE_SIZE = 256
RETRY_MAX_S = 10.0
SEEN_IDS = 10_000  # alert ids remembered for deduplication; far more than one outage repeats


class AlertFeed:
    def __init__(self, bus: AlertBus):
        self._bus = bus
        self._subscribers: dict[asyncio.Queue[Alert], Callable[[Alert], bool]] = {}
        self._task: asyncio.Task[None] | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.dropped = 0
        self.duplicates = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="alert-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.contextmanager
    def subscribe(self, wants: Callable[[Alert], bool] = lambda _: True) -> Iterator[asyncio.Queue[Alert]]:
        """A queue that receives every alert published while the context is open for which
        `wants` is true; others never enter it, so they cannot push out the ones it wants."""
        queue: asyncio.Queue[Alert] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers[queue] = wants
        try:
            yield queue
        finally:
            self._subscribers.pop(queue, None)

    async def _follow(self) -> None:
        # Start from "now" as a concrete stream id rather than "$": if the first follow fails
        # before any alert arrived, the retry still gets the alerts published in between.
        last_id = f"{int(time.time() * 1000)}-0"
        delay = 0.5
        while True:
            try:
                async for entry_id, alert in self._bus.follow(last_id):
                    last_id, delay = entry_id, 0.5
                    self._deliver(alert)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a Redis outage must not end the live list for good
                logger.warning("alert feed lost the bus (%s); retrying in %.1f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def _deliver(self, alert: Alert) -> None:
        if alert.id in self._seen:
            self.duplicates += 1
            return
        self._seen[alert.id] = None
        if len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        for queue, wants in self._subscribers.items():
            if not wants(alert):
                continue
            if queue.full():
                queue.get_nowait()
                self.dropped += 1
            queue.put_nowait(alert)
