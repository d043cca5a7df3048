"""The frame: what ingest produces and every later stage reads."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded picture, stamped once when it was decoded.

    `t` is video time: seconds since the start of that camera's stream, from the container's
    presentation timestamps. `ts` is the wall-clock capture time (UNIX seconds, UTC).
    """

    camera: str
    index: int
    t: float
    ts: float
    image: np.ndarray = field(repr=False)  # H x W x 3, BGR, uint8

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])
