"""Detection-rate sampling by video time, so replay and live pick the same frames."""

from __future__ import annotations


class RateSampler:
    """`take(t)` is true for the first frame at or after each 1/fps step of video time."""

    def __init__(self, fps: float):
        self.period = 1.0 / fps
        self.next_t: float | None = None

    def take(self, t: float) -> bool:
        # A small tolerance keeps 10 fps video sampled at 5 fps on every second frame
        # despite rounding in container timestamps.
        if self.next_t is not None and t < self.next_t - 0.25 * self.period:
            return False
        base = t if self.next_t is None or t - self.next_t > self.period else self.next_t
        self.next_t = base + self.period
        return True
