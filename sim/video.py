"""The simulator's border with PyAV: writes H.264 MP4 and reads frames back for datasets.

Frame i gets pts i in a 1/fps time base, so its container time is exactly i/fps; no B-frames,
so decoders and RTSP restreamers see frames in presentation order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

logger = logging.getLogger(__name__)


class VideoWriter:
    """One camera's MP4: BGR frames in, libx264 yuv420p out, deterministic for a given input."""

    def __init__(self, path: Path, width: int, height: int, fps: float, crf: int = 27):
        rate = Fraction(fps).limit_denominator(1001)
        self.container = av.open(str(path), mode="w")
        self.stream = self.container.add_stream(
            "libx264",
            rate=rate,
            options={
                "preset": "veryfast",
                "crf": str(crf),
                "bf": "0",
                "g": str(max(1, int(round(2 * fps)))),
                "threads": "1",
            },
        )
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.time_base = 1 / rate
        self.index = 0

    def write(self, bgr: np.ndarray) -> None:
        yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = self.index
        frame.time_base = self.time_base
        self.index += 1
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()


def read_frames(path: Path) -> Iterator[tuple[int, float, np.ndarray]]:
    """Decoded frames as (0-based index, container time in seconds, BGR image)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            t = float(frame.pts * frame.time_base) if frame.pts is not None else float("nan")
            yield i, t, frame.to_ndarray(format="bgr24")
