"""Pixels of the simulated workshop: a static background per camera, then people and units.

The room (floor, walls, doors) is ray-cast once per camera; benches, cages and racks are
projected boxes and lines drawn far to near. Each static object is kept as a sprite with its
mask and depth so a person behind a bench or inside a cage is covered by it again every frame.
People and units are drawn every frame from 3D body parts in depth order, into the picture and
into an id buffer, which gives each label box its visibility.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sim.geometry import PinholeCamera, Point, distance, inside, rect
from sim.scenario import RestrictedSpec, Scenario, StationSpec, UnitSpec, gate_of
from sim.world import ActorState, work_spot

Colour = tuple[int, int, int]
SHIFT = 4  # sub-pixel bits for cv2 drawing
ONE = 1 << SHIFT

OUTFITS: dict[str, Colour] = {
    "blue": (175, 115, 45),
    "navy": (85, 50, 30),
    "grey": (128, 128, 122),
    "white": (222, 224, 222),
    "orange": (40, 125, 235),
    "green": (70, 130, 65),
    "black": (42, 40, 40),
    "red": (50, 45, 185),
}
TROUSERS: list[Colour] = [(45, 38, 35), (70, 55, 40), (60, 60, 60), (80, 105, 120), (95, 70, 45)]
SKIN: list[Colour] = [(150, 180, 220), (120, 155, 205), (95, 125, 175), (70, 95, 140)]
VESTS: list[Colour] = [(40, 230, 220), (30, 140, 250)]
CAPS: list[Colour] = [(160, 90, 30), (230, 230, 230), (40, 40, 160), (60, 60, 60)]
HAIR: list[Colour] = [(28, 28, 32), (35, 45, 65), (20, 20, 22), (120, 125, 130), (40, 70, 110)]
FLOORS: dict[str, Colour] = {"epoxy": (118, 132, 120), "concrete": (138, 140, 140), "tiles": (182, 184, 180)}
ZONE_PAINT: dict[str, Colour] = {"bonded": (0, 200, 240), "old_parts": (40, 90, 230), "other": (0, 200, 240)}
TRAY: list[Colour] = [(45, 40, 38), (150, 95, 40), (60, 60, 60)]
BIN: list[Colour] = [(170, 110, 40), (30, 160, 220), (40, 50, 180), (90, 90, 90)]
PHONE: list[Colour] = [(35, 35, 38), (190, 192, 195), (60, 70, 90), (150, 170, 200)]


@dataclass(frozen=True)
class Look:
    """How one worker looks: clothes, skin, hair, size."""

    shirt: Colour
    trousers: Colour
    skin: Colour
    hair: Colour  # or the colour of a cap
    scale: float  # height / 1.72 m
    build: float  # width factor: slim 0.9 .. broad 1.15
    cap: bool
    vest: Colour | None  # hi-vis vest over the shirt
    coat: bool  # a long work coat down to the knees


@dataclass(frozen=True)
class LabelBox:
    track: int
    cls: int  # 0 person, 1 unit
    box: tuple[float, float, float, float]  # x1, y1, x2, y2, clipped to the frame
    visibility: float


@dataclass
class Sprite:
    """A static object's pixels and mask, pasted over dynamic things behind it."""

    depth: float
    x0: int
    y0: int
    pixels: np.ndarray
    mask: np.ndarray


class Canvas:
    """Draws into a picture and, with the same shapes, into an id buffer; tracks extents."""

    def __init__(self, img: np.ndarray, ids: np.ndarray | None):
        self.img = img
        self.ids = ids
        self.id = 0
        self.box = [math.inf, math.inf, -math.inf, -math.inf]

    def begin(self, ident: int) -> None:
        self.id = ident
        self.box = [math.inf, math.inf, -math.inf, -math.inf]

    def _grow(self, x1: float, y1: float, x2: float, y2: float) -> None:
        b = self.box
        b[0], b[1], b[2], b[3] = min(b[0], x1), min(b[1], y1), max(b[2], x2), max(b[3], y2)

    def poly(self, uv: np.ndarray, colour: Colour) -> None:
        pts = np.round(uv * ONE).astype(np.int32)
        hull = cv2.convexHull(pts)
        cv2.fillConvexPoly(self.img, hull, colour, cv2.LINE_AA, SHIFT)
        if self.ids is not None:
            cv2.fillConvexPoly(self.ids, hull, self.id, cv2.LINE_8, SHIFT)
        self._grow(uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max())

    def line(self, a: np.ndarray, b: np.ndarray, width: float, colour: Colour) -> None:
        w = max(1, int(round(width)))
        pa = (int(round(a[0] * ONE)), int(round(a[1] * ONE)))
        pb = (int(round(b[0] * ONE)), int(round(b[1] * ONE)))
        cv2.line(self.img, pa, pb, colour, w, cv2.LINE_AA, SHIFT)
        if self.ids is not None:
            cv2.line(self.ids, pa, pb, self.id, w, cv2.LINE_8, SHIFT)
        h = w / 2.0
        self._grow(min(a[0], b[0]) - h, min(a[1], b[1]) - h, max(a[0], b[0]) + h, max(a[1], b[1]) + h)

    def circle(self, c: np.ndarray, r: float, colour: Colour) -> None:
        r = max(0.6, r)
        pc = (int(round(c[0] * ONE)), int(round(c[1] * ONE)))
        cv2.circle(self.img, pc, int(round(r * ONE)), colour, -1, cv2.LINE_AA, SHIFT)
        if self.ids is not None:
            cv2.circle(self.ids, pc, int(round(r * ONE)), self.id, -1, cv2.LINE_8, SHIFT)
        self._grow(c[0] - r, c[1] - r, c[0] + r, c[1] + r)


def shade(c: Colour, k: float) -> Colour:
    return (min(255, int(c[0] * k)), min(255, int(c[1] * k)), min(255, int(c[2] * k)))


# --- boxes -----------------------------------------------------------------------------------

_FACES = [(0, 1, 2, 3), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7)]
_LIGHT = np.array([0.35, -0.45, 0.82])


def box_corners(center: Point, size: tuple[float, float], angle: float, z0: float, z1: float) -> np.ndarray:
    """8 corners: the bottom 4 (ccw), then the top 4. `angle` in radians."""
    ring = rect(center, size, math.degrees(angle))
    return np.array([[x, y, z0] for x, y in ring] + [[x, y, z1] for x, y in ring])


def draw_box(
    cv: Canvas,
    cam: PinholeCamera,
    corners: np.ndarray,
    colour: Colour,
    top: Colour | None = None,
    sides: bool = True,
) -> None:
    uv, depth = cam.project(corners)
    if (depth <= 0.05).any():
        return
    faces = _FACES if sides else _FACES[1:2]
    centre = corners.mean(axis=0)
    for face in faces:
        q = corners[list(face)]
        n = np.cross(q[1] - q[0], q[3] - q[0])
        norm = np.linalg.norm(n)
        if norm < 1e-12:
            continue
        n /= norm
        mid = q.mean(axis=0)
        if np.dot(n, mid - centre) < 0:
            n = -n
        if np.dot(n, cam.centre - mid) <= 0:
            continue
        lit = 0.62 + 0.38 * max(0.0, float(np.dot(n, _LIGHT)))
        base = top if (top is not None and n[2] > 0.9) else colour
        cv.poly(uv[list(face)], shade(base, lit))


def draw_quad(cv: Canvas, cam: PinholeCamera, pts: np.ndarray, colour: Colour) -> None:
    uv, depth = cam.project(pts)
    if (depth > 0.05).all():
        cv.poly(uv, colour)


def draw_rod(cv: Canvas, cam: PinholeCamera, a: np.ndarray, b: np.ndarray, r: float, colour: Colour) -> None:
    uv, depth = cam.project(np.stack([a, b]))
    if (depth <= 0.05).any():
        return
    width = 2 * r * cam.focal / float(depth.mean())
    cv.line(uv[0], uv[1], width, colour)
    if width >= 5:
        # A lit edge along the upper-left side: limbs read as round, not as flat strokes.
        d = uv[1] - uv[0]
        n = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-9)
        if n[0] + n[1] > 0:
            n = -n
        off = n * width * 0.22
        a, b = uv[0] + off, uv[1] + off
        pa = (int(round(a[0] * ONE)), int(round(a[1] * ONE)))
        pb = (int(round(b[0] * ONE)), int(round(b[1] * ONE)))
        cv2.line(cv.img, pa, pb, shade(colour, 1.18), max(1, int(width * 0.3)), cv2.LINE_AA, SHIFT)


# --- the room --------------------------------------------------------------------------------


def _noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    small = rng.standard_normal((max(2, h // cell), max(2, w // cell))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def floor_texture(s: Scenario, rng: np.random.Generator, ppm: int) -> np.ndarray:
    """The floor seen from above at `ppm` pixels per metre, with its markings and light."""
    lay = s.layout
    h, w = int(lay.depth_m * ppm), int(lay.width_m * ppm)
    base = np.array(FLOORS[lay.floor], dtype=np.float32)
    var = (
        4.0 * _noise(rng, h, w, 2 * ppm)
        + 2.5 * _noise(rng, h, w, ppm // 8)
        + 2.5 * rng.standard_normal((h, w)).astype(np.float32)
    )
    tex = np.clip(base[None, None, :] + var[..., None], 0, 255).astype(np.uint8)

    def px(p: Point) -> tuple[int, int]:
        return (int(p[0] * ppm), int(p[1] * ppm))

    if lay.floor == "tiles":
        step = int(0.6 * ppm)
        tex[::step, :] = shade(FLOORS["tiles"], 0.8)
        tex[:, ::step] = shade(FLOORS["tiles"], 0.8)
    for _ in range(int(lay.width_m * lay.depth_m / 6)):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        ax = (int(rng.uniform(0.1, 0.5) * ppm), int(rng.uniform(0.05, 0.3) * ppm))
        stain = tex.copy()
        cv2.ellipse(stain, c, ax, float(rng.uniform(0, 180)), 0, 360, shade(FLOORS[lay.floor], 0.85), -1)
        cv2.addWeighted(stain, 0.5, tex, 0.5, 0, tex)
    lw = max(2, int(0.06 * ppm))
    for z in s.restricted:
        pts = np.array([px(p) for p in z.polygon], dtype=np.int32)
        paint = ZONE_PAINT[z.kind]
        cv2.polylines(tex, [pts], True, paint, 2 * lw, cv2.LINE_AA)
        hatch = tex.copy()
        cv2.polylines(hatch, [pts], True, (25, 25, 25), 2 * lw)
        mask = np.zeros(tex.shape[:2], np.uint8)
        cv2.polylines(mask, [pts], True, 255, 2 * lw)
        yy, xx = np.mgrid[0:h, 0:w]
        stripes = ((xx + yy) // max(2, lw)) % 2 == 0
        sel = (mask > 0) & stripes
        tex[sel] = hatch[sel]
    for st in s.stations:
        spot, _ = work_spot(st)
        mat = rect(spot, (0.9, 0.5), st.bench.angle_deg)
        cv2.fillConvexPoly(tex, np.array([px(p) for p in mat], np.int32), (60, 60, 55), cv2.LINE_AA)
    for d in s.doors:
        cv2.circle(tex, px(d.at), int(0.6 * ppm), shade(FLOORS[lay.floor], 0.9), -1, cv2.LINE_AA)
    # Pools of light under the ceiling lamps.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / ppm
    light = np.full((h, w), 0.78, np.float32)
    for lx in np.arange(1.5, lay.width_m, 3.0):
        for ly in np.arange(1.5, lay.depth_m, 3.0):
            light += 0.28 * np.exp(-((xx - lx) ** 2 + (yy - ly) ** 2) / 3.0)
    return np.clip(tex.astype(np.float32) * light[..., None], 0, 255).astype(np.uint8)


def wall_texture(s: Scenario, rng: np.random.Generator, ppm: int) -> tuple[np.ndarray, float]:
    """All four walls unrolled side by side (perimeter metres x height), doors painted in."""
    lay = s.layout
    perim = 2 * (lay.width_m + lay.depth_m)
    h, w = int(lay.wall_height_m * ppm), int(perim * ppm)
    upper = np.array((205, 210, 208), np.float32)
    lower = np.array((150, 160, 150), np.float32)
    zz = (h - np.arange(h)) / ppm  # height of each row
    col = np.where((zz < 1.1)[:, None], lower[None, :], upper[None, :])
    tex = np.repeat(col[:, None, :], w, axis=1) + 5.0 * _noise(rng, h, w, ppm)[..., None]
    tex = np.clip(tex, 0, 255).astype(np.uint8)
    band = int(h - 1.1 * ppm)
    tex[band : band + max(1, ppm // 20)] = (90, 100, 95)
    for d in s.doors:
        u = perimeter_coord(d.at, lay.width_m, lay.depth_m)
        x0, x1 = int((u - d.width_m / 2) * ppm), int((u + d.width_m / 2) * ppm)
        y0 = int(h - 2.1 * ppm)
        cv2.rectangle(tex, (x0 - ppm // 12, y0 - ppm // 12), (x1 + ppm // 12, h), (70, 75, 80), -1)
        cv2.rectangle(tex, (x0, y0), (x1, h), (120, 95, 70), -1)
        cv2.rectangle(
            tex, (x0 + ppm // 5, y0 + ppm // 5), (x1 - ppm // 5, y0 + ppm // 2), (160, 140, 110), -1
        )
        cv2.rectangle(
            tex, (x0 + (x1 - x0) // 3, y0 - ppm // 3), (x1 - (x1 - x0) // 3, y0 - ppm // 8), (60, 170, 40), -1
        )
    for _ in range(int(perim / 6)):
        x = int(rng.uniform(0, w - ppm))
        y = int(h - rng.uniform(1.4, 2.0) * ppm)
        cv2.rectangle(tex, (x, y), (x + int(0.45 * ppm), y + int(0.6 * ppm)), (235, 235, 235), -1)
        cv2.rectangle(tex, (x, y), (x + int(0.45 * ppm), y + int(0.12 * ppm)), (40, 40, 200), -1)
    return tex, perim


def perimeter_coord(p: Point, width: float, depth: float) -> float:
    """Distance along the walls (y=0, x=W, y=D, x=0 in turn) of the wall point nearest p."""
    x, y = p
    cands = [
        (abs(y), x),
        (abs(x - width), width + y),
        (abs(y - depth), width + depth + (width - x)),
        (abs(x), 2 * width + depth + (depth - y)),
    ]
    return min(cands)[1]


def room(cam: PinholeCamera, s: Scenario, rng: np.random.Generator) -> np.ndarray:
    """Ray-cast the empty room (floor, walls, ceiling) as this camera sees it."""
    lay = s.layout
    ppm = 100
    floor = floor_texture(s, rng, ppm)
    walls, perim = wall_texture(s, rng, 60)
    d = cam.rays()
    c = cam.centre
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.where(d[..., 0] > 0, (lay.width_m - c[0]) / d[..., 0], -c[0] / d[..., 0])
        ty = np.where(d[..., 1] > 0, (lay.depth_m - c[1]) / d[..., 1], -c[1] / d[..., 1])
        tz = np.where(d[..., 2] < 0, -c[2] / d[..., 2], (lay.wall_height_m - c[2]) / d[..., 2])
    tx = np.where(np.isfinite(tx) & (tx > 0), tx, np.inf)
    ty = np.where(np.isfinite(ty) & (ty > 0), ty, np.inf)
    tz = np.where(np.isfinite(tz) & (tz > 0), tz, np.inf)
    t = np.minimum(np.minimum(tx, ty), tz)
    hit = c + d * t[..., None]
    out = np.full((cam.height, cam.width, 3), (70, 72, 75), np.uint8)
    on_floor = (tz <= np.minimum(tx, ty)) & (d[..., 2] < 0)
    mx = (hit[..., 0] * ppm).astype(np.float32)
    my = (hit[..., 1] * ppm).astype(np.float32)
    f_img = cv2.remap(floor, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out[on_floor] = f_img[on_floor]
    on_wall = ~on_floor & (np.minimum(tx, ty) < tz)
    u = np.where(
        tx < ty,
        np.where(
            d[..., 0] > 0,
            lay.width_m + hit[..., 1],
            2 * lay.width_m + lay.depth_m + (lay.depth_m - hit[..., 1]),
        ),
        np.where(d[..., 1] > 0, lay.width_m + lay.depth_m + (lay.width_m - hit[..., 0]), hit[..., 0]),
    )
    wx = (np.mod(u, perim) * 60).astype(np.float32)
    wy = ((lay.wall_height_m - hit[..., 2]) * 60).astype(np.float32)
    w_img = cv2.remap(walls, wx, wy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out[on_wall] = w_img[on_wall]
    return out


# --- static furniture ------------------------------------------------------------------------


def _bench(cv: Canvas, cam: PinholeCamera, st: StationSpec, rng: np.random.Generator) -> None:
    b = st.bench
    a = math.radians(b.angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    side = 1.0 if st.worker_side == "front" else -1.0

    def at(dx: float, dy: float) -> Point:
        return (b.center[0] + ca * dx - sa * dy, b.center[1] + sa * dx + ca * dy)

    L, D, H = b.size[0], b.size[1], b.height
    metal = (150, 150, 145)
    for dx in (-L / 2 + 0.06, L / 2 - 0.06):
        for dy in (-D / 2 + 0.06, D / 2 - 0.06):
            draw_box(cv, cam, box_corners(at(dx, dy), (0.05, 0.05), a, 0.0, H - 0.04), metal)
    draw_box(cv, cam, box_corners(at(L / 2 - 0.3, 0), (0.45, D - 0.12), a, 0.08, H - 0.05), (95, 95, 100))
    draw_box(cv, cam, box_corners(b.center, (L, D), a, H - 0.04, H), (185, 190, 190), top=(150, 120, 80))
    draw_box(
        cv,
        cam,
        box_corners(at(-0.1, 0), (L - 0.4, D - 0.2), a, H, H + 0.004),
        (120, 110, 70),
        top=(140, 115, 75),
    )
    # Upper shelf on the far edge, and a monitor under it.
    back = -side * (D / 2 - 0.12)
    for dx in (-L / 2 + 0.05, L / 2 - 0.05):
        draw_box(cv, cam, box_corners(at(dx, back), (0.04, 0.04), a, H, H + 0.55), metal)
    draw_box(cv, cam, box_corners(at(0, back), (L, 0.25), a, H + 0.52, H + 0.55), (170, 172, 170))
    draw_box(
        cv,
        cam,
        box_corners(at(-L / 4, back + side * 0.06), (0.48, 0.04), a, H + 0.12, H + 0.42),
        (30, 30, 32),
    )
    for k in range(int(rng.integers(1, 4))):
        draw_box(
            cv,
            cam,
            box_corners(
                at(L / 2 - 0.25 - 0.3 * k, back), (0.22, 0.16), a, H + 0.55, H + 0.55 + rng.uniform(0.08, 0.2)
            ),
            (90, 140, 190),
        )
    # The scanner: a small dark handset on a stand at the worker's right.
    sx, sy = L / 2 - 0.18, side * (D / 2 - 0.18)
    draw_box(cv, cam, box_corners(at(sx, sy), (0.09, 0.07), a, H, H + 0.03), (40, 40, 40))
    draw_box(
        cv, cam, box_corners(at(sx, sy), (0.05, 0.05), a, H + 0.03, H + 0.16), (25, 25, 28), top=(30, 30, 200)
    )


def _cage(cv: Canvas, cam: PinholeCamera, z: RestrictedSpec, first: int) -> None:
    """Fence panels of a cage, panel k (in `_panels` order) drawn with id first + k."""
    gate, _ = gate_of(z)
    poly = z.polygon
    post, wire = (105, 110, 110), (165, 170, 170)
    panel = first
    for i in range(len(poly)):
        a, b = np.array(poly[i - 1]), np.array(poly[i])
        length = float(np.linalg.norm(b - a))
        n = max(1, int(math.ceil(length / 1.25)))
        for k in range(n):
            p0 = a + (b - a) * k / n
            p1 = a + (b - a) * (k + 1) / n
            mid = (p0 + p1) / 2
            cv.begin(panel)
            panel += 1
            gate_here = distance((float(mid[0]), float(mid[1])), gate) < 0.5 + length / n / 2
            for p in (p0, p1):
                draw_box(cv, cam, box_corners((float(p[0]), float(p[1])), (0.05, 0.05), 0, 0.0, 2.1), post)
            seg = np.linalg.norm(p1 - p0)
            if gate_here:
                g = np.array(gate)
                for q in (
                    g + (p0 - g) / max(1e-6, np.linalg.norm(p0 - g)) * 0.45,
                    g + (p1 - g) / max(1e-6, np.linalg.norm(p1 - g)) * 0.45,
                ):
                    draw_box(
                        cv, cam, box_corners((float(q[0]), float(q[1])), (0.05, 0.05), 0, 0.0, 2.1), post
                    )
            for zr in (0.08, 2.07):
                draw_rod(cv, cam, np.r_[p0, zr], np.r_[p1, zr], 0.02, post)
            if gate_here:
                continue
            # Diamond mesh: wires running diagonally in the panel's plane.
            step = 0.1
            m = int((seg + 2.0) / step)
            for j in range(m):
                for sgn in (1, -1):
                    s0 = j * step - 2.0
                    pts = []
                    for zz in (0.1, 2.05):
                        s_ = s0 + sgn * (zz - 0.1)
                        pts.append((s_, zz))
                    (sa, za), (sb, zb) = _clip_seg(pts[0], pts[1], seg)
                    if sa is None:
                        continue
                    u = (p1 - p0) / seg
                    draw_rod(cv, cam, np.r_[p0 + u * sa, za], np.r_[p0 + u * sb, zb], 0.003, wire)


def _clip_seg(p: tuple[float, float], q: tuple[float, float], length: float) -> tuple:
    (s0, z0), (s1, z1) = p, q
    lo, hi = 0.0, 1.0
    ds = s1 - s0
    for lim, sign in ((0.0, 1), (length, -1)):
        if abs(ds) < 1e-9:
            if (s0 - lim) * sign < 0:
                return (None, None), (None, None)
            continue
        t = (lim - s0) / ds
        if ds * sign > 0:
            lo = max(lo, t)
        else:
            hi = min(hi, t)
    if lo >= hi:
        return (None, None), (None, None)
    return (s0 + ds * lo, z0 + (z1 - z0) * lo), (s0 + ds * hi, z0 + (z1 - z0) * hi)


def _rack(cv: Canvas, cam: PinholeCamera, z: RestrictedSpec, rng: np.random.Generator) -> None:
    """Shelving (bonded store) or scrap bins (old parts) along the cage's far side."""
    gate, _ = gate_of(z)
    poly = z.polygon
    edges = [(np.array(poly[i - 1]), np.array(poly[i])) for i in range(len(poly))]
    a, b = max(edges, key=lambda e: distance(((e[0] + e[1]) / 2).tolist(), gate))
    length = float(np.linalg.norm(b - a))
    u = (b - a) / length
    cen = np.array(poly).mean(axis=0)
    n = np.array([-u[1], u[0]])
    if np.dot(cen - a, n) < 0:
        n = -n
    ang = math.atan2(u[1], u[0])
    use = min(length - 0.6, 2.4)
    mid = (a + b) / 2 + n * 0.45
    if z.kind == "old_parts":
        for k in range(int(use / 0.55)):
            c = mid + u * (-use / 2 + 0.3 + 0.55 * k)
            draw_box(
                cv,
                cam,
                box_corners(tuple(c), (0.45, 0.4), ang, 0.0, 0.45),
                BIN[k % len(BIN)],
                top=(50, 50, 55),
            )
        return
    for dx in (-use / 2, use / 2):
        for dy in (-0.2, 0.2):
            p = mid + u * dx + n * dy
            draw_box(cv, cam, box_corners(tuple(p), (0.04, 0.04), ang, 0.0, 1.9), (60, 90, 170))
    for zz in (0.1, 0.75, 1.4):
        draw_box(cv, cam, box_corners(tuple(mid), (use, 0.45), ang, zz, zz + 0.03), (130, 130, 135))
        x = -use / 2 + 0.05
        while x < use / 2 - 0.3:
            wdt = float(rng.uniform(0.25, 0.5))
            hgt = float(rng.uniform(0.2, 0.5))
            c = mid + u * (x + wdt / 2)
            draw_box(
                cv,
                cam,
                box_corners(tuple(c), (wdt - 0.03, 0.38), ang, zz + 0.03, zz + 0.03 + hgt),
                (95, 140, 180) if rng.random() < 0.8 else (210, 210, 210),
            )
            x += wdt


@dataclass(frozen=True)
class Prop:
    """Clutter along the walls: boxes, cabinets, carts. Things a detector must not call a unit."""

    kind: str  # boxes, cabinet, cart, bin
    center: Point
    angle: float  # radians
    seed: int


def props(s: Scenario, rng: np.random.Generator) -> list[Prop]:
    """Clutter placed along the walls, clear of doors, zones and benches."""
    lay = s.layout
    out: list[Prop] = []
    keep_clear = [d.at for d in s.doors]
    for _ in range(int((lay.width_m + lay.depth_m) / 1.5)):
        wall = int(rng.integers(4))
        along = float(rng.uniform(0.6, (lay.width_m if wall % 2 == 0 else lay.depth_m) - 0.6))
        p, angle = [
            ((along, 0.3), 0.0),
            ((lay.width_m - 0.3, along), math.pi / 2),
            ((along, lay.depth_m - 0.3), 0.0),
            ((0.3, along), math.pi / 2),
        ][wall]
        if any(distance(p, c) < 1.4 for c in keep_clear):
            continue
        if any(inside(p, z.polygon) or _near_poly(p, z.polygon, 0.6) for z in s.restricted):
            continue
        if any(distance(p, st.bench.center) < max(st.bench.size) / 2 + 0.9 for st in s.stations):
            continue
        kind = ("boxes", "boxes", "cabinet", "cart", "bin")[int(rng.integers(5))]
        out.append(Prop(kind, p, angle, int(rng.integers(1 << 30))))
        keep_clear.append(p)
    return out


def _near_poly(p: Point, poly: list[Point], d: float) -> bool:
    return any(distance(p, q) < d + 0.8 for q in poly) or inside(p, poly)


def _prop(cv: Canvas, cam: PinholeCamera, pr: Prop) -> None:
    rng = np.random.default_rng(pr.seed)
    c, a = pr.center, pr.angle
    if pr.kind == "boxes":
        z = 0.0
        for _ in range(int(rng.integers(1, 4))):
            w, d, h = rng.uniform(0.3, 0.6), rng.uniform(0.25, 0.4), rng.uniform(0.2, 0.45)
            off = rng.uniform(-0.05, 0.05, 2)
            tone = int(rng.integers(-20, 20))
            col = (int(95 + tone), int(140 + tone), int(185 + tone))
            draw_box(
                cv,
                cam,
                box_corners((c[0] + off[0], c[1] + off[1]), (w, d), a + rng.uniform(-0.1, 0.1), z, z + h),
                col,
            )
            z += h
    elif pr.kind == "cabinet":
        col = ((150, 150, 145), (120, 95, 60), (90, 90, 95))[int(rng.integers(3))]
        draw_box(cv, cam, box_corners(c, (0.9, 0.45), a, 0.0, 1.9), col)
    elif pr.kind == "cart":
        for dz in (0.15, 0.55, 0.9):
            draw_box(cv, cam, box_corners(c, (0.8, 0.45), a, dz, dz + 0.03), (60, 60, 170))
        for dx in (-0.37, 0.37):
            for dy in (-0.2, 0.2):
                p = (c[0] + dx * math.cos(a) - dy * math.sin(a), c[1] + dx * math.sin(a) + dy * math.cos(a))
                draw_box(cv, cam, box_corners(p, (0.03, 0.03), a, 0.0, 0.93), (70, 70, 70))
        draw_box(cv, cam, box_corners(c, (0.35, 0.3), a, 0.58, 0.78), (95, 140, 185))
    else:
        draw_box(cv, cam, box_corners(c, (0.4, 0.4), a, 0.0, 0.65), (40, 110, 40), top=(25, 25, 25))


def background(
    cam: PinholeCamera, s: Scenario, rng: np.random.Generator, clutter: list[Prop]
) -> tuple[np.ndarray, list[Sprite]]:
    """The empty workshop for one camera, and the furniture as occluding sprites."""
    img = room(cam, s, rng)
    ids = np.zeros(img.shape[:2], np.uint16)
    cv = Canvas(img, ids)
    objects: list[tuple[float, str, object]] = []
    for st in s.stations:
        objects.append((cam.depth(*st.bench.center, st.bench.height), "bench", st))
    for z in s.restricted:
        c = np.array(z.polygon).mean(axis=0)
        objects.append((cam.depth(float(c[0]), float(c[1]), 1.0) + 0.5, "rack", z))
    for pr in clutter:
        objects.append((cam.depth(*pr.center, 0.5), "prop", pr))
    objects.sort(key=lambda o: -o[0])
    depths: dict[int, float] = {}
    next_id = 1
    for depth, kind, obj in objects:
        cv.begin(next_id)
        if kind == "bench":
            _bench(cv, cam, obj, rng)  # type: ignore[arg-type]
        elif kind == "prop":
            _prop(cv, cam, obj)  # type: ignore[arg-type]
        else:
            _rack(cv, cam, obj, rng)  # type: ignore[arg-type]
        depths[next_id] = depth
        next_id += 1
    # Fence panels go last in their own depth order: wires are thin and rarely hide furniture.
    for z in s.restricted:
        if not z.fence:
            continue
        first = next_id
        panels = _panels(z)
        order = sorted(range(len(panels)), key=lambda k: -cam.depth(*panels[k], 1.0))
        tmp = Canvas(img, ids)
        drawn = _cage_ordered(tmp, cam, z, first, order)
        for k in range(drawn):
            depths[first + k] = cam.depth(*panels[k], 1.0)
        next_id += drawn
    sprites = []
    for ident, depth in depths.items():
        ys, xs = np.nonzero(ids == ident)
        if len(xs) == 0:
            continue
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        mask = ids[y0:y1, x0:x1] == ident
        sprites.append(Sprite(depth, int(x0), int(y0), img[y0:y1, x0:x1].copy(), mask))
    return img, sprites


def _panels(z: RestrictedSpec) -> list[Point]:
    out = []
    poly = z.polygon
    for i in range(len(poly)):
        a, b = np.array(poly[i - 1]), np.array(poly[i])
        n = max(1, int(math.ceil(float(np.linalg.norm(b - a)) / 1.25)))
        for k in range(n):
            m = a + (b - a) * (k + 0.5) / n
            out.append((float(m[0]), float(m[1])))
    return out


def _cage_ordered(cv: Canvas, cam: PinholeCamera, z: RestrictedSpec, first: int, order: list[int]) -> int:
    """Draw the panels far to near (so nearer wires win), each with id first + panel index."""
    count = len(_panels(z))
    layer = np.zeros_like(cv.img)
    lid = np.zeros_like(cv.ids)
    tmp = Canvas(layer, lid)
    _cage(tmp, cam, z, first)
    for k in order:
        ident = first + k
        m = lid == ident
        cv.img[m] = layer[m]
        cv.ids[m] = ident
    return count


# --- people and units ------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    """3D body parts of one person at one moment, plus where its hands are."""

    parts: list[tuple[str, np.ndarray, float, Colour]]  # kind (rod, ball, box), points, r, colour
    hands: np.ndarray  # (2, 3): left, right
    hip: np.ndarray


def body(st: ActorState, look: Look, carry: str | None) -> Body:
    """A jointed figure: legs swing with the gait phase, arms carry or reach by pose."""
    x, y = st.pos
    fx, fy = math.cos(st.facing), math.sin(st.facing)
    rx, ry = fy, -fx
    s = look.scale
    b = look.build

    def P(fw: float, rt: float, z: float) -> np.ndarray:
        return np.array([x + fx * fw + rx * rt, y + fy * fw + ry * rt, z])

    swing = math.sin(st.phase) if st.pose == "walk" else 0.0
    lift = math.cos(st.phase) if st.pose == "walk" else 0.0
    sit = st.pose == "sit"
    hip_z = 0.5 if sit else 0.92 * s
    sh_z = hip_z + (0.55 * s if sit else 0.5 * s)
    lean = 0.08 if st.pose in ("reach", "scan", "work") or sit else 0.0
    parts: list[tuple[str, np.ndarray, float, Colour]] = []
    legs = []
    for side, sg in ((-1, 1.0), (1, -1.0)):
        hipj = P(-0.05 if sit else 0.0, side * 0.1 * s, hip_z)
        if sit:
            knee = P(0.4 * s, side * 0.12 * s, 0.52)
            foot = P(0.45 * s, side * 0.13 * s, 0.05)
        else:
            ff = 0.32 * s * sg * swing
            up = 0.07 * max(0.0, sg * lift)
            knee = P(ff * 0.5 + 0.04, side * 0.1 * s, 0.48 * s + up)
            foot = P(ff, side * 0.11 * s, 0.05 + up)
        legs.append((hipj, knee, foot))
    for hipj, knee, foot in legs:
        parts.append(("rod", np.stack([hipj, knee]), 0.075 * s * b, look.trousers))
        parts.append(("rod", np.stack([knee, foot]), 0.06 * s * b, look.trousers))
        parts.append(("ball", (foot + np.array([fx * 0.06, fy * 0.06, 0]))[None], 0.055 * s, (35, 35, 38)))
    if sit:
        parts.append(
            (
                "box",
                box_corners((x - fx * 0.05, y - fy * 0.05), (0.36, 0.36), st.facing, 0.0, 0.46),
                0,
                (60, 60, 65),
            )
        )
    # Shoulders wider than the waist: the top ring of the torso box is a wider rectangle.
    centre = (x + fx * lean, y + fy * lean)
    tor = box_corners(centre, (0.22 * s * b, 0.34 * s * b), st.facing, hip_z - 0.08, sh_z)
    tor[4:] = box_corners(centre, (0.24 * s * b, 0.43 * s * b), st.facing, hip_z, sh_z)[4:]
    tor[4:, :2] += np.array([fx, fy]) * lean * 0.5
    parts.append(("box", tor, 0, look.vest or look.shirt))
    if look.coat and not sit:
        skirt = box_corners((x, y), (0.26 * s * b, 0.42 * s * b), st.facing, 0.5 * s, hip_z)
        parts.append(("box", skirt, 0, look.shirt))
    hands = []
    for side, sg in ((-1, -1.0), (1, 1.0)):
        sh = P(lean, side * 0.2 * s * b, sh_z - 0.04)
        if carry in ("tray", "bin") or st.pose in ("reach", "scan", "work") or sit:
            hand = P(0.4 * s + lean, side * 0.13 * s, (0.95 if sit else 1.0 * s))
            elbow = P(0.18 * s, side * 0.24 * s, sh_z - 0.3 * s)
            if st.pose == "scan" and side == 1:
                hand = P(0.45 * s, 0.2 * s, 1.15 * s)
        elif carry == "bare" and side == 1:
            hand = P(0.12 + 0.08 * swing, 0.24 * s, sh_z - 0.55 * s)
            elbow = P(0.06, 0.24 * s, sh_z - 0.28 * s)
        else:
            hand = P(0.25 * s * sg * swing, side * 0.23 * s, sh_z - 0.62 * s)
            elbow = P(0.1 * s * sg * swing - 0.03, side * 0.23 * s, sh_z - 0.3 * s)
        parts.append(("rod", np.stack([sh, elbow]), 0.055 * s, look.shirt))
        parts.append(("rod", np.stack([elbow, hand]), 0.045 * s, shade(look.shirt, 0.92)))
        parts.append(("ball", hand[None], 0.045 * s, look.skin))
        hands.append(hand)
    head = P(lean + 0.02, 0.0, sh_z + 0.17 * s)
    parts.append(("rod", np.stack([P(lean, 0, sh_z - 0.02), head]), 0.045 * s, look.skin))
    parts.append(("ball", head[None], 0.105 * s, look.skin))
    if look.cap:
        parts.append(("ball", (head + np.array([0.0, 0.0, 0.05 * s]))[None], 0.098 * s, look.hair))
        parts.append(
            ("ball", (head + np.array([fx * 0.08, fy * 0.08, 0.045 * s]))[None], 0.06 * s, look.hair)
        )
    else:
        parts.append(
            ("ball", (head + np.array([-fx * 0.03, -fy * 0.03, 0.035 * s]))[None], 0.1 * s, look.hair)
        )
    return Body(parts, np.stack(hands), P(0, 0, hip_z))


def draw_body(cv: Canvas, cam: PinholeCamera, b: Body) -> None:
    order = []
    for part in b.parts:
        kind, pts, r, colour = part
        order.append((float(cam.to_camera(pts.mean(axis=0)[None])[0, 2]), part))
    order.sort(key=lambda o: -o[0])
    for depth, (kind, pts, r, colour) in order:
        if depth <= 0.1:
            continue
        if kind == "box":
            draw_box(cv, cam, pts, colour)
        elif kind == "rod":
            draw_rod(cv, cam, pts[0], pts[1], r, colour)
        else:
            uv, _ = cam.project(pts)
            cv.circle(uv[0], r * cam.focal / depth, colour)


UNIT_SIZE = {"phone": (0.155, 0.075, 0.009), "watch": (0.045, 0.04, 0.013), "band": (0.045, 0.02, 0.01)}
CONTAINER_SIZE = {"tray": (0.3, 0.22, 0.035), "bin": (0.34, 0.25, 0.13)}


def draw_unit(
    cv: Canvas, cam: PinholeCamera, spec: UnitSpec, pos: np.ndarray, yaw: float, variant: int
) -> None:
    """A device (phone, watch, band), bare or in its tray or bin, resting at pos (bottom)."""
    x, y, z = (float(v) for v in pos)
    dz = z
    if spec.container != "bare":
        cl, cw, ch = CONTAINER_SIZE[spec.container]
        colour = (TRAY if spec.container == "tray" else BIN)[variant % 3]
        corners = box_corners((x, y), (cl, cw), yaw, z, z + ch)
        if spec.container == "tray":
            draw_box(cv, cam, corners, colour, top=shade(colour, 0.8))
            dz = z + 0.012
        else:
            draw_box(cv, cam, corners, colour, top=shade(colour, 0.45), sides=False)
            dz = z + 0.03
    length, width, thick = UNIT_SIZE[spec.kind]
    body_c = PHONE[variant % len(PHONE)]
    if spec.kind in ("watch", "band"):
        strap = (50, 50, 55) if variant % 2 else (150, 120, 60)
        draw_box(cv, cam, box_corners((x, y), (0.22, 0.022), yaw + math.pi / 2, dz, dz + 0.004), strap)
        draw_box(cv, cam, box_corners((x, y), (length, width), yaw, dz, dz + thick), body_c, top=(25, 25, 30))
    else:
        draw_box(cv, cam, box_corners((x, y), (length, width), yaw, dz, dz + thick), body_c, top=(22, 22, 26))
        draw_quad(
            cv,
            cam,
            box_corners((x, y), (length * 0.85, width * 0.82), yaw, 0, dz + thick + 0.001)[4:],
            (70, 55, 40) if variant % 3 else (120, 90, 60),
        )
    if spec.container == "bin":
        cl, cw, ch = CONTAINER_SIZE["bin"]
        corners = box_corners((x, y), (cl, cw), yaw, z, z + ch)
        colour = BIN[variant % 3]
        uv, depth = cam.project(corners)
        if (depth > 0.05).all():
            for face in _FACES[2:]:
                q = corners[list(face)]
                mid = q.mean(axis=0)
                out = mid[:2] - np.array([x, y])
                n = np.r_[out / (np.linalg.norm(out) + 1e-9), 0]
                if np.dot(n, cam.centre - mid) > 0:
                    cv.poly(uv[list(face)], shade(colour, 0.75 + 0.2 * float(n[1])))


def person_look(rng: np.random.Generator, outfit: str | None, height: float) -> Look:
    shirt = OUTFITS[outfit] if outfit else list(OUTFITS.values())[int(rng.integers(len(OUTFITS)))]
    jitter = rng.integers(-12, 13, 3)
    r, g, b = (int(np.clip(c + int(j), 0, 255)) for c, j in zip(shirt, jitter, strict=True))
    return Look(
        shirt=(r, g, b),
        trousers=TROUSERS[int(rng.integers(len(TROUSERS)))],
        skin=SKIN[int(rng.integers(len(SKIN)))],
        hair=CAPS[int(rng.integers(len(CAPS)))]
        if (cap := rng.random() < 0.25)
        else HAIR[int(rng.integers(len(HAIR)))],
        scale=height / 1.72,
        build=float(rng.uniform(0.9, 1.15)),
        cap=bool(cap),
        vest=VESTS[int(rng.integers(len(VESTS)))] if rng.random() < 0.2 else None,
        coat=outfit == "white" or rng.random() < 0.1,
    )


def shadow(img: np.ndarray, cam: PinholeCamera, pos: Point, r: float) -> None:
    """A soft contact shadow under a person: darkens the floor around the feet."""
    ring = np.array(
        [
            [pos[0] + r * math.cos(a), pos[1] + r * 0.8 * math.sin(a), 0.0]
            for a in np.linspace(0, 2 * math.pi, 12, endpoint=False)
        ]
    )
    uv, depth = cam.project(ring)
    if (depth <= 0.1).any():
        return
    sigma = max(1.0, float(np.ptp(uv[:, 0])) / 8)
    pad = int(3 * sigma) + 2
    x0, y0 = np.floor(uv.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(uv.max(axis=0)).astype(int) + pad
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(mask, np.round((uv - [x0, y0]) * ONE).astype(np.int32), 90, cv2.LINE_AA, SHIFT)
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    cx0, cy0 = max(0, x0), max(0, y0)
    cx1, cy1 = min(img.shape[1], x1), min(img.shape[0], y1)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    roi = img[cy0:cy1, cx0:cx1]
    mask = mask[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    dark = (255 - mask.astype(np.uint16))[..., None]
    roi[:] = (roi.astype(np.uint16) * dark // 255).astype(np.uint8)
