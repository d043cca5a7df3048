"""Pinhole cameras over a floor plane in metres, and the little polygon maths the sim needs.

Everything in the workshop lives in world metres (x, y on the floor, z up); each camera is a
pinhole looking at it, so perspective size, occlusion order and the zone polygons of the site
file all come from one projection and can never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Point = tuple[float, float]


@dataclass(frozen=True)
class PinholeCamera:
    """World-to-image projection: R, C the pose, f and the principal point the lens."""

    width: int
    height: int
    focal: float
    rotation: np.ndarray  # 3x3, rows are the camera axes (right, down, forward) in world
    centre: np.ndarray  # 3, camera position in world metres

    @classmethod
    def looking_at(
        cls,
        width: int,
        height: int,
        hfov_deg: float,
        position: tuple[float, float, float],
        target: tuple[float, float, float],
    ) -> PinholeCamera:
        """A camera at `position` whose optical axis passes through `target`."""
        c = np.asarray(position, dtype=np.float64)
        fwd = np.asarray(target, dtype=np.float64) - c
        fwd /= np.linalg.norm(fwd)
        # Straight down has no horizon to keep level: put the far end (+y) at the image top.
        up = np.array([0.0, 1.0, 0.0]) if abs(fwd[2]) > 0.999 else np.array([0.0, 0.0, 1.0])
        right = np.cross(fwd, up)
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        focal = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(width, height, focal, np.stack([right, down, fwd]), c)

    def to_camera(self, pts: np.ndarray) -> np.ndarray:
        """World points (N, 3) to camera coordinates (N, 3); z is the depth."""
        return (np.asarray(pts, dtype=np.float64) - self.centre) @ self.rotation.T

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) to pixels (N, 2) and depths (N,); depth <= 0 is behind."""
        pc = self.to_camera(pts)
        z = pc[:, 2]
        safe = np.where(z > 1e-6, z, 1e-6)
        uv = np.empty((len(pc), 2))
        uv[:, 0] = self.focal * pc[:, 0] / safe + self.width / 2.0
        uv[:, 1] = self.focal * pc[:, 1] / safe + self.height / 2.0
        return uv, z

    def depth(self, x: float, y: float, z: float) -> float:
        return float(self.to_camera(np.array([[x, y, z]]))[0, 2])

    def rays(self) -> np.ndarray:
        """World direction of every pixel centre, (H, W, 3): for ray-casting the room."""
        u = np.arange(self.width, dtype=np.float64) + 0.5 - self.width / 2.0
        v = np.arange(self.height, dtype=np.float64) + 0.5 - self.height / 2.0
        uu, vv = np.meshgrid(u / self.focal, v / self.focal)
        cam = np.stack([uu, vv, np.ones_like(uu)], axis=-1)
        return cam @ self.rotation

    def plane_polygon(self, poly: list[Point], z: float) -> list[Point] | None:
        """A floor polygon lifted to height z, projected and clipped to the frame.

        None when it lies behind the camera or entirely outside the picture.
        """
        pts = np.array([[x, y, z] for x, y in poly])
        uv, depth = self.project(pts)
        if (depth <= 0.05).any():
            return None
        clipped = clip_to_rect([(float(a), float(b)) for a, b in uv], self.width, self.height)
        return clipped if len(clipped) >= 3 and polygon_area(clipped) > 1.0 else None

    def sees_whole(self, poly: list[Point], z: float) -> bool:
        uv, depth = self.project(np.array([[x, y, z] for x, y in poly]))
        inside = (uv[:, 0] >= 0) & (uv[:, 0] <= self.width)
        inside &= (uv[:, 1] >= 0) & (uv[:, 1] <= self.height)
        return bool((depth > 0.05).all() and inside.all())


def clip_to_rect(poly: list[Point], width: float, height: float) -> list[Point]:
    """Sutherland-Hodgman clipping of a polygon to [0, width] x [0, height]."""
    edges = [
        (lambda p: p[0] >= 0, lambda a, b: _cut_x(a, b, 0.0)),
        (lambda p: p[0] <= width, lambda a, b: _cut_x(a, b, width)),
        (lambda p: p[1] >= 0, lambda a, b: _cut_y(a, b, 0.0)),
        (lambda p: p[1] <= height, lambda a, b: _cut_y(a, b, height)),
    ]
    out = list(poly)
    for inside, cut in edges:
        src, out = out, []
        for i, cur in enumerate(src):
            prev = src[i - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(cut(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cut(prev, cur))
        if not out:
            break
    return out


def _cut_x(a: Point, b: Point, x: float) -> Point:
    t = (x - a[0]) / (b[0] - a[0])
    return (x, a[1] + t * (b[1] - a[1]))


def _cut_y(a: Point, b: Point, y: float) -> Point:
    t = (y - a[1]) / (b[1] - a[1])
    return (a[0] + t * (b[0] - a[0]), y)


def polygon_area(poly: list[Point]) -> float:
    s = 0.0
    for i, (x1, y1) in enumerate(poly):
        x2, y2 = poly[(i + 1) % len(poly)]
        s += x1 * y2 - x2 * y1
    return abs(s) / 2.0


def centroid(poly: list[Point]) -> Point:
    xs, ys = zip(*poly, strict=True)
    return (sum(xs) / len(xs), sum(ys) / len(ys))


def inside(point: Point, poly: list[Point]) -> bool:
    """Even-odd point-in-polygon test, the rule the zone logic of the service uses too."""
    x, y = point
    hit = False
    for i, (x1, y1) in enumerate(poly):
        x2, y2 = poly[i - 1]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            hit = not hit
    return hit


def rect(center: Point, size: tuple[float, float], angle_deg: float) -> list[Point]:
    """Corners of a rotated rectangle, counter-clockwise from the back-left."""
    cx, cy = center
    w, d = size[0] / 2.0, size[1] / 2.0
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    return [
        (cx + ca * dx - sa * dy, cy + sa * dx + ca * dy) for dx, dy in ((-w, -d), (w, -d), (w, d), (-w, d))
    ]


def distance(a: Point, b: Point) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])
