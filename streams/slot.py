"""A one-frame slot: the newest frame of a camera, for readers that must never fall behind."""

from __future__ import annotations

import threading
import time

from streams.frame import Frame


class FrameSlot:
    """Holds only the newest Frame; a new frame replaces the old one, which is dropped.

    Detection and live view always want the latest picture, so a slow reader skips frames
    instead of building a backlog. A frame replaced before anyone read it counts as dropped.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._read = True
        self._closed = False
        self.frames = 0
        self.dropped = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if not self._read:
                self.dropped += 1
            self._frame = frame
            self._read = False
            self.frames += 1
            self._cond.notify_all()

    def get(self, after_index: int = -1, timeout: float | None = None) -> Frame | None:
        """The newest frame with an index above `after_index`, waiting up to `timeout` seconds.

        None when no newer frame came in time or the slot was closed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed and (self._frame is None or self._frame.index <= after_index):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._closed:
                return None
            self._read = True
            return self._frame

    def peek(self) -> Frame | None:
        """The newest frame without marking it read or waiting (for snapshots and health)."""
        with self._cond:
            return self._frame

    def close(self) -> None:
        """Wake every waiting reader: the camera stopped and no frame will come."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
