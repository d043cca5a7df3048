"""Draws what the system sees onto a frame: zones, tracked boxes, camera id and capture time.

Officers trust an alert when they can see the zone and the box that caused it, so the live
view and the snapshots show exactly the polygons and detections the rules used.
"""

from __future__ import annotations

import logging
from datetime import datetime

import cv2
import numpy as np

from bondwatch.site import Zone
from detectors.types import DetectionBatch
from streams.frame import Frame

logger = logging.getLogger(__name__)

# BGR colours; restricted zones red, stations amber, people cyan, everything else violet.
ZONE_COLOURS = {"restricted": (64, 64, 235), "station": (0, 176, 255)}
PERSON_COLOUR = (230, 200, 40)
OTHER_COLOUR = (220, 110, 190)
TEXT_BG = (24, 20, 18)
FONT = cv2.FONT_HERSHEY_SIMPLEX
PLACEHOLDER_SIZE = (640, 480)  # width, height shown before the first frame arrives
STALE_S = 2.0  # detections older than this relative to the frame are not drawn


def render(camera: str, zones: list[Zone], frame: Frame | None, batch: DetectionBatch | None) -> np.ndarray:
    """A new BGR image: the frame with overlays, or a placeholder while there is no frame."""
    if frame is None:
        return placeholder(camera)
    image = frame.image.copy()
    draw_zones(image, zones)
    if batch is not None and abs(frame.ts - batch.ts) <= STALE_S:
        draw_detections(image, batch)
    # Server-local time with its offset, so it is unambiguous next to the officer's clock.
    stamp = datetime.fromtimestamp(frame.ts).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
    _label(image, f"{camera}  {stamp}", (8, 8), (255, 255, 255), scale=0.6)
    return image


def placeholder(camera: str) -> np.ndarray:
    w, h = PLACEHOLDER_SIZE
    image = np.full((h, w, 3), 28, np.uint8)
    _label(image, f"{camera}  waiting for video", (16, h // 2 - 12), (200, 200, 200), scale=0.7)
    return image


def draw_zones(image: np.ndarray, zones: list[Zone]) -> None:
    if not zones:
        return
    tint = image.copy()
    for zone in zones:
        pts = np.array(zone.polygon, np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(tint, [pts], ZONE_COLOURS[zone.kind])
    cv2.addWeighted(tint, 0.22, image, 0.78, 0, dst=image)
    for zone in zones:
        colour = ZONE_COLOURS[zone.kind]
        pts = np.array(zone.polygon, np.int32).reshape(-1, 1, 2)
        cv2.polylines(image, [pts], True, colour, 2, cv2.LINE_AA)
        x = int(min(p[0] for p in zone.polygon))
        y = int(min(p[1] for p in zone.polygon))
        _label(image, zone.id, (x + 4, y + 4), colour, scale=0.5)


def draw_detections(image: np.ndarray, batch: DetectionBatch) -> None:
    sx = image.shape[1] / batch.width if batch.width else 1.0
    sy = image.shape[0] / batch.height if batch.height else 1.0
    for det in batch.detections:
        x1, y1, x2, y2 = det.box
        p1 = (int(x1 * sx), int(y1 * sy))
        p2 = (int(x2 * sx), int(y2 * sy))
        colour = PERSON_COLOUR if det.cls == "person" else OTHER_COLOUR
        cv2.rectangle(image, p1, p2, colour, 2, cv2.LINE_AA)
        track = f"#{det.track} " if det.track is not None else ""
        _label(image, f"{track}{det.cls} {det.conf:.2f}", (p1[0], p1[1] - 18), colour, scale=0.45)


def _label(
    image: np.ndarray,
    text: str,
    origin: tuple[int, int],
    colour: tuple[int, int, int],
    scale: float,
) -> None:
    """Text on a dark box so it stays readable on any background; kept inside the image."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    x = max(0, min(origin[0], image.shape[1] - tw - 6))
    y = max(0, min(origin[1], image.shape[0] - th - base - 6))
    cv2.rectangle(image, (x, y), (x + tw + 6, y + th + base + 6), TEXT_BG, -1)
    cv2.putText(image, text, (x + 3, y + th + 3), FONT, scale, colour, 1, cv2.LINE_AA)


def snapshot_jpeg(
    camera: str, zones: list[Zone], frame: Frame, batch: DetectionBatch | None, quality: int = 85
) -> bytes:
    ok, buf = cv2.imencode(".jpg", render(camera, zones, frame, batch), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"camera {camera}: JPEG encoding failed")
    return buf.tobytes()
