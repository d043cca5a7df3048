"""The overlay as data (what the browser draws) says the same as the overlay burned in."""

from __future__ import annotations

import numpy as np
import pytest

from bondwatch.site import parse_site
from dashboard.overlay import STALE_S, clock_text, overlay_message, render, zone_states
from detectors.types import Detection, DetectionBatch
from streams.frame import Frame

SITE = parse_site("""
cameras: [{id: c, url: "rtsp://127.0.0.1:8554/c"}]
zones:
  - {id: cage, camera: c, kind: restricted, polygon: [[100, 100], [300, 100], [300, 300], [100, 300]]}
  - {id: s01, camera: c, kind: station, station: s01,
     polygon: [[400, 100], [600, 100], [600, 300], [400, 300]]}
""")
ZONES = SITE.zones_of("c")


def make_frame(ts: float = 100.0, w: int = 640, h: int = 360) -> Frame:
    return Frame("c", 5, 0.5, ts, np.full((h, w, 3), 60, np.uint8))


def make_batch(*boxes: tuple[float, float, float, float], ts: float = 100.0, w: int = 640, h: int = 360):
    dets = tuple(Detection("person", 0.9, b, track=i) for i, b in enumerate(boxes))
    return DetectionBatch("c", 5, 0.5, ts, w, h, dets)


@pytest.mark.parametrize(
    ("boxes", "expected"),
    [
        ((), {"cage": "clear", "s01": "clear"}),
        (((150, 150, 200, 250),), {"cage": "occupied", "s01": "clear"}),  # foot (175, 250) in cage
        (((150, 250, 200, 320),), {"cage": "clear", "s01": "clear"}),  # box overlaps, foot below
        (((150, 150, 200, 250), (450, 100, 500, 200)), {"cage": "occupied", "s01": "occupied"}),
    ],
)
def test_zone_state_follows_foot_points(boxes, expected):
    assert zone_states(ZONES, make_batch(*boxes)) == expected


@pytest.mark.parametrize(
    ("batch", "frame", "boxes"),
    [
        (make_batch((10, 20, 30, 40)), make_frame(), [[10, 20, 30, 40, "person", 0, 0.9]]),
        # detections on a half-size picture are scaled to the frame's pixels
        (make_batch((10, 20, 30, 40), w=320, h=180), make_frame(), [[20, 40, 60, 80, "person", 0, 0.9]]),
        (make_batch((10, 20, 30, 40), ts=100.0 - STALE_S - 0.1), make_frame(), []),  # too old: not shown
        (None, make_frame(), []),
    ],
)
def test_overlay_message_boxes(batch, frame, boxes):
    msg = overlay_message("c", ZONES, frame, batch)
    assert msg["boxes"] == boxes
    assert (msg["w"], msg["h"], msg["ts"]) == (640, 360, 100.0)
    assert [z["id"] for z in msg["zones"]] == ["cage", "s01"]


def test_burned_in_and_data_agree_on_an_occupied_zone():
    frame, batch = make_frame(), make_batch((150, 150, 200, 250))
    msg = overlay_message("c", ZONES, frame, batch)
    assert {z["id"]: z["state"] for z in msg["zones"]} == {"cage": "occupied", "s01": "clear"}
    # burned in, the occupied zone is tinted more strongly than when it is clear
    occupied = render("c", ZONES, frame, batch)[280, 120].astype(int) - 60
    clear = render("c", ZONES, frame, make_batch())[280, 120].astype(int) - 60
    assert np.abs(occupied).sum() > 1.5 * np.abs(clear).sum() > 0
    assert overlay_message("c", ZONES, None, None)["ts"] is None  # no frame yet: nothing to draw


@pytest.mark.parametrize(
    ("tz", "text"),
    [("Asia/Shanghai", "2026-05-29 04:26:40 +0800"), ("UTC", "2026-05-28 20:26:40 +0000"),
     ("Europe/Berlin", "2026-05-28 22:26:40 +0200")],
)  # fmt: skip
def test_the_burned_in_clock_is_in_the_sites_time_zone(tz: str, text: str):
    assert clock_text(1_780_000_000.0, tz) == text
