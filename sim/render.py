"""Render a scenario: videos, site file, scan feed, label boxes and the truth alerts.

`render_scenario` is what `bondwatch sim render` calls. Every random choice comes from the
seed, so the same scenario and seed give byte-identical text files and identical frames.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import yaml

from sim.draw import (
    Body,
    Canvas,
    LabelBox,
    Look,
    Prop,
    Sprite,
    background,
    body,
    draw_body,
    draw_unit,
    person_look,
    props,
    shadow,
)
from sim.geometry import PinholeCamera, Point
from sim.randomize import expand
from sim.scenario import CameraSpec, Scenario, ScenarioError, UnitSpec, load_scenario
from sim.truth import ZoneGeom, truth_alerts
from sim.video import VideoWriter
from sim.world import ActorState, World, compile_world, station_zone

logger = logging.getLogger(__name__)

OSD_EPOCH = datetime(2026, 7, 21, 8, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class RenderResult:
    out_dir: Path
    site: Path
    videos: dict[str, Path]
    labels: dict[str, Path]
    scans: Path
    truth: Path
    frames: int  # per camera
    fps: float
    render_s: float  # wall-clock seconds the render took

    @property
    def rendered_fps(self) -> float:
        """Frames per second produced, all cameras together."""
        return self.frames * len(self.videos) / max(self.render_s, 1e-9)

    @property
    def summary(self) -> dict[str, object]:
        """What the CLI prints: where the files are and how long it took."""
        return {
            "site": str(self.site),
            "videos": {cam: str(p) for cam, p in self.videos.items()},
            "scans": str(self.scans),
            "truth": str(self.truth),
            "frames": self.frames,
            "fps": self.fps,
            "truth_alerts": sum(1 for _ in self.truth.open(encoding="utf-8")),
            "render_s": round(self.render_s, 1),
            "rendered_fps": round(self.rendered_fps, 1),
        }


def camera_model(spec: CameraSpec, canvas: tuple[int, int]) -> PinholeCamera:
    x, y, h = spec.position
    target = (x, y, 0.0) if spec.pose == "overhead" else (*spec.look_at, 0.0)  # type: ignore[misc]
    return PinholeCamera.looking_at(canvas[0], canvas[1], spec.hfov_deg, (x, y, h), target)


def site_zones(s: Scenario, cams: dict[str, PinholeCamera], name: str) -> list[ZoneGeom]:
    """Each zone projected onto the camera that owns it (given, or the first to see it whole).

    Restricted zones are on the floor, where feet are; station zones at the bench top, where
    the units they watch lie and are carried.
    """
    out: list[ZoneGeom] = []
    items: list[tuple[str, str, list[Point], float, float, str | None, str | None]] = []
    for z in s.restricted:
        items.append((z.id, "restricted", list(z.polygon), 0.0, z.dwell_s, z.camera, None))
    for st in s.stations:
        poly = station_zone(st)
        items.append((st.id, "station", poly, st.bench.height, s.truth.station_min_s, st.camera, st.id))
    for zid, kind, poly, height, dwell, cam_id, station in items:
        order = [cam_id] if cam_id else [c for c in cams if cams[c].sees_whole(poly, height)]
        order += [c for c in cams if c not in order] if not cam_id else []
        for c in order:
            px = cams[c].plane_polygon(poly, height)
            if px is not None:
                rounded = [(round(x, 1), round(y, 1)) for x, y in px]
                out.append(ZoneGeom(zid, c, kind, rounded, dwell, station))
                break
        else:
            raise ScenarioError(name, [f"zone {zid!r} is not seen by any camera"])
    return out


class CameraRenderer:
    """One camera: its static background and sprites, and the per-frame drawing."""

    def __init__(self, spec: CameraSpec, s: Scenario, seed: int, index: int, clutter: list[Prop]):
        self.spec = spec
        self.s = s
        self.cam = camera_model(spec, s.layout.canvas)
        rng = np.random.default_rng([seed, 2, index])
        self.bg, self.sprites = background(self.cam, s, rng, clutter)
        self.bg = cv2.GaussianBlur(self.bg, (3, 3), 0.6)
        self.bench_depth = {st.id: self.cam.depth(*st.bench.center, st.bench.height) for st in s.stations}
        h, w = self.bg.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
        vignette = (1.0 - 0.18 * r2)[..., None]
        self.bg = np.clip(self.bg * vignette, 0, 255).astype(np.uint8)
        for sp in self.sprites:
            mh, mw = sp.mask.shape
            sp.pixels[:] = self.bg[sp.y0 : sp.y0 + mh, sp.x0 : sp.x0 + mw]
        self.rng = np.random.default_rng([seed, 3, index])
        sigma = s.render.noise
        self.noise = []
        for _ in range(6):
            n = self.rng.normal(0.0, sigma, (h, w, 1)).astype(np.float32)
            n = np.repeat(n, 3, axis=2) + self.rng.normal(0.0, sigma * 0.4, (h, w, 3))
            self.noise.append((np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8)))
        self.phase = self.rng.uniform(0, 2 * math.pi, 3)

    def render(
        self,
        t: float,
        index: int,
        people: list[tuple[int, ActorState, Body]],
        units: list[UnitPose],
        prev: dict[int, ActorState],
    ) -> tuple[np.ndarray, list[LabelBox]]:
        img = self.bg.copy()
        h, w = img.shape[:2]
        ids = np.zeros((h, w), np.uint16)
        cv = Canvas(img, ids)
        items: list[tuple[float, int, str, object]] = []
        for track, st, b in people:
            d = float(self.cam.to_camera(b.hip[None])[0, 2])
            if d > 0.3:
                items.append((d, track, "person", (st, b)))
        for track, spec, pos, yaw, station, variant in units:
            d = float(self.cam.to_camera(pos[None])[0, 2])
            if station:
                d = min(d, self.bench_depth[station] - 0.01)
            if d > 0.2:
                items.append((d, track, "unit", (spec, pos, yaw, variant)))
        items.sort(key=lambda it: (-it[0], it[1]))
        for _, _, kind, payload in items:
            if kind == "person":
                st, _b = payload  # type: ignore[misc]
                shadow(img, self.cam, st.pos, 0.35)
        sprites = sorted(self.sprites, key=lambda sp: -sp.depth)
        drawn: list[tuple[float, int, list[float], int]] = []
        si = 0
        for depth, track, kind, payload in items:
            while si < len(sprites) and sprites[si].depth > depth:
                self._paste(cv, sprites[si], drawn)
                si += 1
            cv.begin(track)
            if kind == "person":
                st, b = payload  # type: ignore[misc]
                draw_body(cv, self.cam, b)
            else:
                spec, pos, yaw, variant = payload  # type: ignore[misc]
                draw_unit(cv, self.cam, spec, pos, yaw, variant)
            box = list(cv.box)
            if not math.isfinite(box[0]):
                continue
            x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
            x1, y1 = min(w, int(math.ceil(box[2])) + 1), min(h, int(math.ceil(box[3])) + 1)
            if x1 <= x0 or y1 <= y0:
                continue
            own = int(np.count_nonzero(ids[y0:y1, x0:x1] == track))
            drawn.append((depth, track, box, own))
            if kind == "person" and self.s.render.motion_blur and st.pose == "walk":
                self._blur(img, ids, track, (x0, y0, x1, y1), st, prev.get(track))
        while si < len(sprites):
            self._paste(cv, sprites[si], drawn)
            si += 1
        labels = []
        for _, track, box, own in drawn:
            x1, y1 = max(0.0, box[0]), max(0.0, box[1])
            x2, y2 = min(float(w), box[2]), min(float(h), box[3])
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            ix0, iy0, ix1, iy1 = int(x1), int(y1), int(math.ceil(x2)), int(math.ceil(y2))
            seen = int(np.count_nonzero(ids[iy0:iy1, ix0:ix1] == track))
            full = max(1.0, (box[2] - box[0]) * (box[3] - box[1]))
            inside_frame = (x2 - x1) * (y2 - y1) / full
            vis = 0.0 if own == 0 else min(1.0, seen / own) * inside_frame
            labels.append(LabelBox(track, 0 if track < 1000 else 1, (x1, y1, x2, y2), vis))
        self._finish(img, t, index)
        return img, labels

    def _paste(self, cv: Canvas, sp: Sprite, drawn: list[tuple[float, int, list[float], int]]) -> None:
        mh, mw = sp.mask.shape
        for _, _, box, _ in drawn:
            x0 = max(sp.x0, int(box[0]))
            y0 = max(sp.y0, int(box[1]))
            x1 = min(sp.x0 + mw, int(math.ceil(box[2])) + 1)
            y1 = min(sp.y0 + mh, int(math.ceil(box[3])) + 1)
            if x1 <= x0 or y1 <= y0:
                continue
            m = sp.mask[y0 - sp.y0 : y1 - sp.y0, x0 - sp.x0 : x1 - sp.x0]
            region = cv.img[y0:y1, x0:x1]
            np.copyto(region, sp.pixels[y0 - sp.y0 : y1 - sp.y0, x0 - sp.x0 : x1 - sp.x0], where=m[..., None])
            cv.ids[y0:y1, x0:x1][m] = 0

    def _blur(
        self,
        img: np.ndarray,
        ids: np.ndarray,
        track: int,
        roi: tuple[int, int, int, int],
        st: ActorState,
        before: ActorState | None,
    ) -> None:
        """Smear a walking person along its image motion over a ~1/25 s exposure."""
        if before is None:
            return
        a, _ = self.cam.project(np.array([[*before.pos, 1.0], [*st.pos, 1.0]]))
        fps = self.s.layout.fps
        dx, dy = (a[1] - a[0]) * fps / 25.0
        length = math.hypot(dx, dy)
        if length < 1.5:
            return
        k = int(min(15, round(length))) | 1
        kern = np.zeros((k, k), np.float32)
        c = k // 2
        ux, uy = dx / length, dy / length
        cv2.line(
            kern,
            (int(round(c - ux * c)), int(round(c - uy * c))),
            (int(round(c + ux * c)), int(round(c + uy * c))),
            1.0,
            1,
        )
        kern /= kern.sum()
        x0, y0, x1, y1 = roi
        pad = c + 1
        x0, y0 = max(0, x0 - pad), max(0, y0 - pad)
        x1, y1 = min(img.shape[1], x1 + pad), min(img.shape[0], y1 + pad)
        region = img[y0:y1, x0:x1]
        blurred = cv2.filter2D(region, -1, kern)
        mask = (ids[y0:y1, x0:x1] == track).astype(np.uint8)
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=max(1, c // 2))
        np.copyto(region, blurred, where=mask[..., None].astype(bool))

    def _finish(self, img: np.ndarray, t: float, index: int) -> None:
        """Lighting drift, sensor noise and the camera's on-screen clock."""
        amp = self.s.render.lighting
        p = self.phase
        dur = self.s.layout.duration_s

        def wave(period: float, phase: float) -> float:
            """A drift whose period divides the duration, so a looped video has no jump."""
            cycles = max(1, round(dur / period))
            return math.sin(2 * math.pi * t * cycles / dur + phase)

        gain = 1.0 + amp * (0.6 * wave(53.0, p[0]) + 0.4 * wave(17.0, p[1]))
        gain += 0.01 * math.sin(index * 2.3 + p[2])
        warm = 0.25 * amp * wave(71.0, p[2])
        ramp = np.arange(256, dtype=np.float32)
        lut = np.stack([ramp * gain * (1 - warm), ramp * gain, ramp * gain * (1 + warm)], axis=-1)
        cv2.LUT(img, np.clip(lut, 0, 255).astype(np.uint8)[:, None, :], dst=img)
        if self.s.render.noise > 0:
            pos, neg = self.noise[int(self.rng.integers(len(self.noise)))]
            cv2.add(img, pos, dst=img)
            cv2.subtract(img, neg, dst=img)
        if not self.s.render.osd:
            return
        stamp = (OSD_EPOCH + timedelta(seconds=int(t))).strftime("%Y-%m-%d %H:%M:%S")
        text = f"{self.spec.id.upper()}  {stamp}"
        scale = img.shape[1] / 1600
        org = (int(12 * scale * 2), int(36 * scale * 1.2))
        cv2.putText(
            img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), max(1, int(4 * scale)), cv2.LINE_AA
        )
        cv2.putText(
            img,
            text,
            org,
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (235, 235, 235),
            max(1, int(1.6 * scale)),
            cv2.LINE_AA,
        )


UnitPose = tuple[int, UnitSpec, np.ndarray, float, str, int]  # track, spec, bottom, yaw, station, variant


def _people(world: World, looks: list[Look], t: float) -> list[tuple[int, ActorState, Body]]:
    out = []
    for a, look in zip(world.actors, looks, strict=True):
        st = a.state(t)
        if st is None:
            continue
        held = world.carried(a.spec.id, t)
        out.append((a.track, st, body(st, look, held[0].spec.container if held else None)))
    return out


def _units(world: World, bodies: dict[str, tuple[ActorState, Body]], t: float) -> list[UnitPose]:
    out = []
    for k, u in enumerate(world.units):
        seg = u.seg(t)
        variant = k if u.spec.variant is None else u.spec.variant
        if seg.state == "rest":
            out.append((u.track, u.spec, np.array(seg.pos), seg.angle, seg.station, variant))
        elif seg.state == "carried" and seg.actor in bodies:
            st, b = bodies[seg.actor]
            if u.spec.container == "bare":
                pos = b.hands[1] - np.array([0.0, 0.0, 0.03])
            else:
                pos = b.hands.mean(axis=0) - np.array([0.0, 0.0, 0.04])
            out.append((u.track, u.spec, pos, st.facing, "", variant))
    return out


def render_scenario(
    scenario_path: str | Path,
    out_dir: str | Path,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> RenderResult:
    """Render the scenario into out_dir (created); raises ScenarioError for a bad scenario."""
    started = time.perf_counter()
    s = load_scenario(scenario_path)
    return render(s, out_dir, seed, str(scenario_path), progress, started)


def render(
    s: Scenario,
    out_dir: str | Path,
    seed: int = 0,
    name: str = "<scenario>",
    progress: Callable[[int, int], None] | None = None,
    started: float | None = None,
) -> RenderResult:
    """Render an already parsed scenario (tests and benchmarks build them in memory)."""
    started = time.perf_counter() if started is None else started
    out = Path(out_dir)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    s = expand(s, np.random.default_rng([seed, 0]))
    world = compile_world(s, name)
    lay = s.layout
    clutter = props(s, np.random.default_rng([seed, 4]))
    renderers = [CameraRenderer(c, s, seed, i, clutter) for i, c in enumerate(s.cameras)]
    cams = {r.spec.id: r.cam for r in renderers}
    zones = site_zones(s, cams, name)
    look_rng = np.random.default_rng([seed, 1])
    looks = [person_look(look_rng, a.spec.outfit, a.spec.height_m) for a in world.actors]
    n = int(round(lay.duration_s * lay.fps))
    writers = {
        r.spec.id: VideoWriter(out / f"{r.spec.id}.mp4", *lay.canvas, lay.fps, s.render.crf)
        for r in renderers
    }
    label_lines: dict[str, list[str]] = {r.spec.id: [] for r in renderers}
    feet: dict[str, list[dict[int, Point]]] = {r.spec.id: [] for r in renderers}
    prev: dict[int, ActorState] = {}
    try:
        for i in range(n):
            t = i / lay.fps
            people = _people(world, looks, t)
            by_actor = {world.actors[tr - 1].spec.id: (st, b) for tr, st, b in people}
            units = _units(world, by_actor, t)
            for r in renderers:
                img, labels = r.render(t, i, people, units, prev)
                writers[r.spec.id].write(img)
                lines = label_lines[r.spec.id]
                f: dict[int, Point] = {}
                for lb in labels:
                    x1, y1, x2, y2 = lb.box
                    lines.append(
                        f"{i + 1},{lb.track},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},"
                        f"1,{lb.cls},{lb.visibility:.3f},-1"
                    )
                    f[lb.track] = (round((x1 + x2) / 2, 2), round(y2, 2))
                feet[r.spec.id].append(f)
            prev = {tr: st for tr, st, _ in people}
            if progress is not None:
                progress(i + 1, n)
    finally:
        for wr in writers.values():
            wr.close()
    labels_paths = {}
    for cam_id, lines in label_lines.items():
        p = out / "labels" / f"{cam_id}.txt"
        p.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        labels_paths[cam_id] = p
    end = n / lay.fps
    events = [
        {"t": round(e.t, 3), "kind": "scan", "station": e.station, "serial": e.serial, "operator": e.operator}
        for e in world.scans
        if e.t < end
    ]
    authorized = []
    zone_cam = {z.id: z.camera for z in zones}
    track_of = {a.spec.id: a.track for a in world.actors}
    for b in world.badges:
        authorized.append((track_of[b.actor], b.zone, b.t0, b.t1))
        if b.t < end:
            events.append(
                {
                    "t": round(b.t, 3),
                    "kind": "badge",
                    "zone": b.zone,
                    "camera": zone_cam[b.zone],
                    "badge": b.badge,
                    "operator": b.actor,
                }
            )
    events.sort(key=lambda e: (e["t"], e["kind"]))
    scans_path = out / "scans.jsonl"
    scans_path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    alerts = truth_alerts(
        feet,
        persons={a.track for a in world.actors},
        units={u.track for u in world.units},
        zones=zones,
        scans=[(e.t, e.station) for e in world.scans if e.t < end],
        authorized=authorized,
        fps=lay.fps,
        scan_window_s=s.truth.scan_window_s,
        scan_grace_s=s.truth.scan_grace_s,
        exit_s=s.truth.exit_s,
    )
    truth_path = out / "truth.jsonl"
    truth_path.write_text("".join(json.dumps(a) + "\n" for a in alerts), encoding="utf-8")
    site_path = out / "site.yaml"
    site_path.write_text(_site_yaml(s, zones), encoding="utf-8")
    took = time.perf_counter() - started
    logger.info("rendered %s: %d frames x %d cameras in %.1f s", s.name, n, len(renderers), took)
    return RenderResult(
        out_dir=out,
        site=site_path,
        videos={c: out / f"{c}.mp4" for c in writers},
        labels=labels_paths,
        scans=scans_path,
        truth=truth_path,
        frames=n,
        fps=lay.fps,
        render_s=took,
    )


def _site_yaml(s: Scenario, zones: list[ZoneGeom]) -> str:
    site: dict[str, object] = {
        "name": f"{s.name} (simulated)",
        "cameras": [
            {"id": c.id, "url": f"{c.id}.mp4", **({"name": c.name} if c.name else {})}
            | ({"factory": s.factory} if s.factory else {})
            for c in s.cameras
        ],
        "zones": [],
        "stations": [{"id": st.id, **({"name": st.name} if st.name else {})} for st in s.stations],
        **({"timezone": s.timezone} if s.timezone else {}),
    }
    names = {z.id: z.name for z in s.restricted} | {st.id: st.name for st in s.stations}
    for z in zones:
        d: dict[str, object] = {"id": z.id, "camera": z.camera, "kind": z.kind}
        if z.station:
            d["station"] = z.station
        if names.get(z.id):
            d["name"] = names[z.id]
        d["dwell_s"] = z.dwell_s
        if z.kind == "restricted":
            d["exit_s"] = s.truth.exit_s
        else:
            d["scan_before_s"] = s.truth.scan_window_s
            d["scan_grace_s"] = s.truth.scan_grace_s
        d["polygon"] = [[x, y] for x, y in z.polygon]
        site["zones"].append(d)  # type: ignore[attr-defined]
    header = f"# Rendered by the BondWatch simulator from scenario {s.name!r}.\n"
    return header + yaml.safe_dump(site, sort_keys=False, allow_unicode=True, default_flow_style=None)
