"""Draws what the system sees onto a frame: zones, tracked boxes, camera id and capture time.

Officers trust an alert when they can see the zone and the box that caused it, so the live
view and the snapshots show exactly the polygons and detections the rules used. The live view
can instead send the same picture as data (`overlay_message`) for the browser to draw on a
canvas over the clean video; both ways draw the same zones, states and boxes.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from bondwatch.site import Zone
from detectors.types import DetectionBatch
from detectors.zones import inside
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


def current(frame: Frame, batch: DetectionBatch | None) -> DetectionBatch | None:
    """The detections to show on `frame`: none when they are too old (or too new) for it."""
    return batch if batch is not None and abs(frame.ts - batch.ts) <= STALE_S else None


def zone_states(zones: list[Zone], batch: DetectionBatch | None) -> dict[str, str]:
    """Zone id -> "occupied" when the foot point of a shown detection is inside it, else "clear"."""
    feet = [d.foot for d in batch.detections] if batch is not None else []
    return {z.id: "occupied" if any(inside(f, z.polygon) for f in feet) else "clear" for z in zones}


def render(
    camera: str, zones: list[Zone], frame: Frame | None, batch: DetectionBatch | None, tz: str | None = None
) -> np.ndarray:
    """A new BGR image: the frame with overlays, or a placeholder while there is no frame. The
    time is burned in in time zone `tz` (the site's; default the server's), with its offset."""
    if frame is None:
        return placeholder(camera)
    image = frame.image.copy()
    batch = current(frame, batch)
    draw_zones(image, zones, zone_states(zones, batch))
    if batch is not None:
        draw_detections(image, batch)
    _label(image, f"{camera}  {clock_text(frame.ts, tz)}", (8, 8), (255, 255, 255), scale=0.6)
    return image


def placeholder(camera: str) -> np.ndarray:
    w, h = PLACEHOLDER_SIZE
    image = np.full((h, w, 3), 28, np.uint8)
    _label(image, f"{camera}  waiting for video", (16, h // 2 - 12), (200, 200, 200), scale=0.7)
    return image


def draw_zones(image: np.ndarray, zones: list[Zone], states: dict[str, str] | None = None) -> None:
    """Zones tinted by kind; an occupied zone is tinted twice as strongly, outlined thicker and
    labelled so (the browser's canvas draws the same: dashboard/static/app.js)."""
    if not zones:
        return
    states = states or {}
    for occupied in (False, True):
        chosen = [z for z in zones if (states.get(z.id) == "occupied") == occupied]
        if chosen:
            _tint(image, chosen, 0.40 if occupied else 0.22)
    for zone in zones:
        colour = ZONE_COLOURS[zone.kind]
        occupied = states.get(zone.id) == "occupied"
        pts = np.array(zone.polygon, np.int32).reshape(-1, 1, 2)
        cv2.polylines(image, [pts], True, colour, 4 if occupied else 2, cv2.LINE_AA)
        x = int(min(p[0] for p in zone.polygon))
        y = int(min(p[1] for p in zone.polygon))
        _label(image, f"{zone.id} occupied" if occupied else zone.id, (x + 4, y + 4), colour, scale=0.5)


def _tint(image: np.ndarray, zones: list[Zone], alpha: float) -> None:
    """Blend the zones' colours in, over their bounding box only (a 720p frame is 2.7 MB)."""
    polys = [np.array(z.polygon, np.int32) for z in zones]
    both = np.concatenate(polys)
    h, w = image.shape[:2]
    x0, y0 = max(0, int(both[:, 0].min())), max(0, int(both[:, 1].min()))
    x1, y1 = min(w, int(both[:, 0].max()) + 1), min(h, int(both[:, 1].max()) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    roi = image[y0:y1, x0:x1]
    tint = roi.copy()
    for zone, pts in zip(zones, polys, strict=True):
        cv2.fillPoly(tint, [(pts - (x0, y0)).reshape(-1, 1, 2)], ZONE_COLOURS[zone.kind])
    cv2.addWeighted(tint, alpha, roi, 1 - alpha, 0, dst=roi)


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


def overlay_message(
    camera: str, zones: list[Zone], frame: Frame | None, batch: DetectionBatch | None
) -> dict[str, Any]:
    """What `render` would draw, as data for the browser: the frame's capture time and size,
    the zones with their state, and the boxes (in the frame's pixels) of the shown detections."""
    if frame is None:
        return {"camera": camera, "ts": None, "w": PLACEHOLDER_SIZE[0], "h": PLACEHOLDER_SIZE[1],
                "zones": [], "boxes": []}  # fmt: skip
    batch = current(frame, batch)
    states = zone_states(zones, batch)
    boxes: list[list[Any]] = []
    if batch is not None:
        sx = frame.width / batch.width if batch.width else 1.0
        sy = frame.height / batch.height if batch.height else 1.0
        for d in batch.detections:
            x1, y1, x2, y2 = d.box
            boxes.append([round(x1 * sx, 1), round(y1 * sy, 1), round(x2 * sx, 1), round(y2 * sy, 1),
                          d.cls, d.track, round(d.conf, 2)])  # fmt: skip
    return {
        "camera": camera,
        "ts": frame.ts,  # capture time of the frame (UNIX s)
        "det_ts": batch.ts if batch is not None else None,  # capture time of the detected frame
        "w": frame.width,
        "h": frame.height,
        "zones": [
            {
                "id": z.id,
                "kind": z.kind,
                "state": states[z.id],
                "polygon": [[round(x, 1), round(y, 1)] for x, y in z.polygon],
            }
            for z in zones
        ],
        "boxes": boxes,  # [x1, y1, x2, y2, class, track id or null, confidence]
    }


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


def clock_text(ts: float, tz: str | None = None) -> str:
    """The capture time as burned in: in time zone `tz` (default the server's), with its offset,
    so it is unambiguous next to the officer's clock."""
    zone = ZoneInfo(tz) if tz else None
    return datetime.fromtimestamp(ts, zone).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %z")


def snapshot_jpeg(
    camera: str,
    zones: list[Zone],
    frame: Frame,
    batch: DetectionBatch | None,
    quality: int = 85,
    tz: str | None = None,
) -> bytes:
    image = render(camera, zones, frame, batch, tz)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"camera {camera}: JPEG encoding failed")
    return buf.tobytes()
