"""Walking routes on the workshop floor that go round benches and through cage gates.

Scripts name only destinations; a coarse grid A* keeps people from walking through furniture
or fences, so the only zone entries in a scenario are the ones its script asks for.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from sim.geometry import Point, distance, inside, rect

CELL = 0.2  # metres per grid cell


class FloorPlan:
    """An occupancy grid of the floor: True where a person cannot walk."""

    def __init__(
        self,
        width_m: float,
        depth_m: float,
        benches: list[tuple[Point, tuple[float, float], float]],
        fences: list[tuple[list[Point], Point]],
    ):
        self.nx = max(2, int(math.ceil(width_m / CELL)))
        self.ny = max(2, int(math.ceil(depth_m / CELL)))
        self.width_m, self.depth_m = width_m, depth_m
        xs = (np.arange(self.nx) + 0.5) * CELL
        ys = (np.arange(self.ny) + 0.5) * CELL
        gx, gy = np.meshgrid(xs, ys)  # (ny, nx)
        blocked = (gx < 0.25) | (gx > width_m - 0.25) | (gy < 0.25) | (gy > depth_m - 0.25)
        for center, size, angle in benches:
            poly = rect(center, (size[0] + 0.5, size[1] + 0.5), angle)
            blocked |= _poly_mask(poly, gx, gy)
        for poly, gate in fences:
            near_edge = np.zeros_like(blocked)
            for i, a in enumerate(poly):
                near_edge |= _seg_dist_grid(gx, gy, a, poly[i - 1]) < 0.3
            gate_open = np.hypot(gx - gate[0], gy - gate[1]) < 0.5
            blocked |= near_edge & ~gate_open
        self.blocked = blocked

    def _cell(self, p: Point) -> tuple[int, int]:
        i = min(self.ny - 1, max(0, int(p[1] / CELL)))
        j = min(self.nx - 1, max(0, int(p[0] / CELL)))
        return i, j

    def _centre(self, c: tuple[int, int]) -> Point:
        return ((c[1] + 0.5) * CELL, (c[0] + 0.5) * CELL)

    def _free_near(self, c: tuple[int, int]) -> tuple[int, int]:
        if not self.blocked[c]:
            return c
        free = np.argwhere(~self.blocked)
        d = (free[:, 0] - c[0]) ** 2 + (free[:, 1] - c[1]) ** 2
        i, j = free[int(np.argmin(d))]
        return int(i), int(j)

    def route(self, start: Point, goal: Point) -> list[Point]:
        """Polyline from start to goal (both kept exactly), avoiding blocked cells."""
        if self._clear(start, goal):
            return [start, goal]
        s = self._free_near(self._cell(start))
        g = self._free_near(self._cell(goal))
        cells = self._astar(s, g)
        pts = [start] + [self._centre(c) for c in cells] + [goal]
        return self._smooth(pts)

    def _astar(self, s: tuple[int, int], g: tuple[int, int]) -> list[tuple[int, int]]:
        steps = [(di, dj, math.hypot(di, dj)) for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj]
        best = {s: 0.0}
        came: dict[tuple[int, int], tuple[int, int]] = {}
        heap = [(0.0, s)]
        while heap:
            _, c = heapq.heappop(heap)
            if c == g:
                break
            for di, dj, w in steps:
                n = (c[0] + di, c[1] + dj)
                if not (0 <= n[0] < self.ny and 0 <= n[1] < self.nx) or self.blocked[n]:
                    continue
                if di and dj and (self.blocked[c[0] + di, c[1]] or self.blocked[c[0], c[1] + dj]):
                    continue
                cost = best[c] + w
                if cost < best.get(n, math.inf):
                    best[n] = cost
                    came[n] = c
                    heapq.heappush(heap, (cost + math.hypot(n[0] - g[0], n[1] - g[1]), n))
        if g not in best:
            return []
        path = [g]
        while path[-1] != s:
            path.append(came[path[-1]])
        return path[::-1]

    def _clear(self, a: Point, b: Point) -> bool:
        n = max(2, int(distance(a, b) / (CELL / 2)))
        for k in range(1, n):
            t = k / n
            c = self._cell((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])))
            if self.blocked[c]:
                return False
        return True

    def _smooth(self, pts: list[Point]) -> list[Point]:
        out = [pts[0]]
        i = 0
        while i < len(pts) - 1:
            j = len(pts) - 1
            while j > i + 1 and not self._clear(pts[i], pts[j]):
                j -= 1
            out.append(pts[j])
            i = j
        return out


def _poly_mask(poly: list[Point], gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    out = np.zeros(gx.shape, dtype=bool)
    for idx in np.ndindex(gx.shape):
        out[idx] = inside((float(gx[idx]), float(gy[idx])), poly)
    return out


def _seg_dist_grid(gx: np.ndarray, gy: np.ndarray, a: Point, b: Point) -> np.ndarray:
    dx, dy = b[0] - a[0], b[1] - a[1]
    n = dx * dx + dy * dy or 1e-9
    t = np.clip(((gx - a[0]) * dx + (gy - a[1]) * dy) / n, 0.0, 1.0)
    return np.hypot(gx - (a[0] + t * dx), gy - (a[1] + t * dy))
