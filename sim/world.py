"""The scenario compiled into time: where every worker and unit is at any moment.

A script is a list of verbs; this turns it into timed segments (walk, stand, sit, reach) per
worker and resting/carried intervals per unit, checks that the script is physically possible
(a unit is picked up only within reach, scanned only at a station), and collects the scan and
badge events the site's scanners would send.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

from bondwatch.yamlcheck import format_loc
from sim.geometry import Point, centroid, distance, inside, rect
from sim.paths import FloorPlan
from sim.scenario import (
    ActorSpec,
    Enter,
    HandOff,
    Leave,
    PickUp,
    PutDown,
    Scan,
    Scenario,
    ScenarioError,
    Sit,
    StationSpec,
    UnitSpec,
    Until,
    Wait,
    WalkTo,
    gate_of,
)

REACH_M = 1.6  # a worker can take a unit this far from their feet
DOOR_M = 2.0  # close enough to a door to be handed a unit through it
STEP_M = 0.75  # stride length: one full gait cycle every two strides


@dataclass(frozen=True)
class Seg:
    """One stretch of a worker's time: walking from p0 to p1, or a still pose at p0."""

    t0: float
    t1: float
    p0: Point
    p1: Point
    pose: str  # walk, stand, work, sit, reach, scan, hidden
    facing: float  # radians, direction the body faces
    dist0: float = 0.0  # distance walked before this segment: drives the gait phase


@dataclass(frozen=True)
class ActorState:
    pos: Point
    facing: float
    pose: str
    phase: float  # gait phase in radians; 0 when still


@dataclass
class Actor:
    spec: ActorSpec
    track: int
    segs: list[Seg] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)

    def state(self, t: float) -> ActorState | None:
        i = max(0, bisect.bisect_right(self.starts, t) - 1)
        s = self.segs[i]
        if s.pose == "hidden":
            return None
        if s.pose != "walk":
            return ActorState(s.p0, s.facing, s.pose, 0.0)
        f = 0.0 if s.t1 <= s.t0 else min(1.0, max(0.0, (t - s.t0) / (s.t1 - s.t0)))
        p = (s.p0[0] + f * (s.p1[0] - s.p0[0]), s.p0[1] + f * (s.p1[1] - s.p0[1]))
        walked = s.dist0 + f * distance(s.p0, s.p1)
        return ActorState(p, s.facing, "walk", walked / STEP_M * math.pi)


@dataclass(frozen=True)
class UnitSeg:
    t0: float
    state: str  # hidden, rest, carried, gone
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)  # rest: where it lies
    angle: float = 0.0
    actor: str = ""  # carried: by whom
    station: str = ""  # rest: on which station's bench
    slot: int = -1  # rest on a bench: which slot


@dataclass
class Unit:
    spec: UnitSpec
    track: int
    segs: list[UnitSeg] = field(default_factory=list)

    def seg(self, t: float) -> UnitSeg:
        i = max(0, bisect.bisect_right([s.t0 for s in self.segs], t) - 1)
        return self.segs[i]


@dataclass(frozen=True)
class ScanEvent:
    t: float
    station: str
    serial: str
    operator: str


@dataclass(frozen=True)
class BadgeEvent:
    """An authorized entry: badge read at the gate at t; a visit starting in [t0, t1] is allowed."""

    t: float
    t0: float
    t1: float
    zone: str
    badge: str
    actor: str


@dataclass
class World:
    scenario: Scenario
    actors: list[Actor]
    units: list[Unit]
    scans: list[ScanEvent]
    badges: list[BadgeEvent]

    def carried(self, actor: str, t: float) -> list[Unit]:
        return [u for u in self.units if (s := u.seg(t)).state == "carried" and s.actor == actor]


def work_spot(st: StationSpec) -> tuple[Point, float]:
    """Where the worker of a station stands, and the direction facing the bench."""
    b = st.bench
    a = math.radians(b.angle_deg)
    side = 1.0 if st.worker_side == "front" else -1.0
    nx, ny = -math.sin(a) * side, math.cos(a) * side
    off = b.size[1] / 2 + 0.45
    spot = (b.center[0] + nx * off, b.center[1] + ny * off)
    return spot, math.atan2(-ny, -nx)


def station_zone(st: StationSpec) -> list[Point]:
    """The station's floor polygon: given, or the bench plus the worker's spot."""
    if st.zone is not None:
        return list(st.zone)
    b = st.bench
    length, depth = b.size[0] + 0.5, b.size[1] + 2 * 0.25
    extra = 0.75  # reaches past the worker's spot
    a = math.radians(b.angle_deg)
    side = 1.0 if st.worker_side == "front" else -1.0
    nx, ny = -math.sin(a) * side, math.cos(a) * side
    c = (b.center[0] + nx * extra / 2, b.center[1] + ny * extra / 2)
    return rect(c, (length, depth + extra), b.angle_deg)


def bench_slots(st: StationSpec) -> list[tuple[float, float, float]]:
    """Where units are laid on a bench: a row on the worker's half of the top."""
    b = st.bench
    n = max(1, min(6, int((b.size[0] - 0.3) / 0.3)))
    a = math.radians(b.angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    side = 1.0 if st.worker_side == "front" else -1.0
    dy = side * b.size[1] * 0.18
    out = []
    for k in range(n):
        dx = -b.size[0] / 2 + 0.25 + k * (b.size[0] - 0.5) / max(1, n - 1)
        out.append((b.center[0] + ca * dx - sa * dy, b.center[1] + sa * dx + ca * dy, b.height))
    return out


class _Compiler:
    def __init__(self, s: Scenario, name: str):
        self.s = s
        self.name = name
        self.stations = {st.id: st for st in s.stations}
        self.zones = {z.id: z for z in s.restricted}
        self.doors = {d.id: d for d in s.doors}
        self.plan = FloorPlan(
            s.layout.width_m,
            s.layout.depth_m,
            [(st.bench.center, st.bench.size, st.bench.angle_deg) for st in s.stations],
            [(z.polygon, gate_of(z)[0]) for z in s.restricted if z.fence],
        )
        self.ops: list[tuple[float, int, int, str, str, Point, float, tuple[Any, ...]]] = []
        self.scans: list[ScanEvent] = []
        self.badges: list[BadgeEvent] = []

    def fail(self, loc: tuple[Any, ...], msg: str) -> ScenarioError:
        return ScenarioError(self.name, [f"{format_loc(loc)}: {msg}"])

    def point(self, p: Any) -> Point:
        if not isinstance(p, str):
            return (float(p[0]), float(p[1]))
        if p in self.stations:
            return work_spot(self.stations[p])[0]
        if p in self.zones:
            return centroid(self.zones[p].polygon)
        if p in self.doors:
            return self.doors[p].at
        return self.s.places[p]

    def station_at(self, p: Point) -> StationSpec | None:
        for st in self.s.stations:
            if inside(p, station_zone(st)) or distance(p, work_spot(st)[0]) < 0.8:
                return st
        return None

    def actor(self, idx: int, spec: ActorSpec) -> Actor:
        a = Actor(spec, track=idx + 1)
        pos = self.point(spec.start)
        facing = math.atan2(self.s.layout.depth_m / 2 - pos[1], self.s.layout.width_m / 2 - pos[0])
        t = 0.0
        walked = 0.0

        def add(t1: float, pose: str, p1: Point | None = None, face: float | None = None) -> None:
            nonlocal t
            a.segs.append(Seg(t, t1, pos, p1 or pos, pose, facing if face is None else face, walked))
            t = t1

        def still_facing() -> float:
            st = self.station_at(pos)
            return work_spot(st)[1] if st is not None else facing

        def still_pose() -> str:
            """Standing at a bench means working at it, hands on the top."""
            return "work" if self.station_at(pos) is not None else "stand"

        def walk(points: list[Point], speed: float) -> None:
            nonlocal pos, facing, walked
            for target in points:
                for p in self.plan.route(pos, target)[1:]:
                    d = distance(pos, p)
                    if d < 1e-3:
                        continue
                    facing = math.atan2(p[1] - pos[1], p[0] - pos[0])
                    add(t + d / speed, "walk", p)
                    walked += d
                    pos = p

        if spec.appear_at > 0:
            add(spec.appear_at, "hidden")
        gone = False
        for j, act in enumerate(spec.script):
            loc = ("actors", idx, "script", j)
            if gone:
                raise self.fail(loc, f"{spec.id} has already left through a door")
            if isinstance(act, WalkTo):
                walk([self.point(v) for v in act.via] + [self.point(act.walk_to)], act.speed)
            elif isinstance(act, Wait):
                add(t + act.wait, still_pose(), face=still_facing())
            elif isinstance(act, Until):
                if act.until > t:
                    add(act.until, still_pose(), face=still_facing())
            elif isinstance(act, Sit):
                add(t + act.sit, "sit", face=still_facing())
            elif isinstance(act, PickUp | PutDown | HandOff):
                verb, uid = (
                    ("pick_up", act.pick_up)
                    if isinstance(act, PickUp)
                    else ("put_down", act.put_down)
                    if isinstance(act, PutDown)
                    else ("hand_off", act.hand_off)
                )
                face = still_facing()
                slot = act.slot if isinstance(act, PutDown) else None
                self.ops.append((t + 0.5, idx, j, verb, uid, pos, face, (slot,)))
                add(t + 1.0, "reach", face=face)
            elif isinstance(act, Scan):
                st = self.station_at(pos)
                if st is None:
                    raise self.fail(loc, f"{spec.id} scans {act.scan} away from any station")
                self.ops.append((t + 1.0, idx, j, "scan", act.scan, pos, facing, (st.id,)))
                if not act.skip_scan:
                    serial = next(u.serial for u in self.s.units if u.id == act.scan)
                    self.scans.append(ScanEvent(t + 1.0 + act.scan_delay_s, st.id, serial, spec.id))
                add(t + 2.0, "scan", face=work_spot(st)[1])
            elif isinstance(act, Enter):
                z = self.zones[act.enter]
                back, t_start = pos, t
                gate, normal = gate_of(z)
                outside = (gate[0] + normal[0] * 0.6, gate[1] + normal[1] * 0.6)
                target = self.point(act.to) if act.to is not None else centroid(z.polygon)
                walk([outside], 1.2)
                t_badge = t
                walk([gate, target], 1.2)
                add(t + act.stay_s, "stand")
                walk([gate, outside, back], 1.2)
                if act.authorized:
                    badge = spec.badge or f"B-{spec.id.upper()}"
                    self.badges.append(BadgeEvent(t_badge, t_start, t, z.id, badge, spec.id))
            elif isinstance(act, Leave):
                walk([self.doors[act.leave].at], 1.3)
                self.ops.append((t, idx, j, "leave", "", pos, facing, ()))
                add(t + 1e-3, "hidden")
                gone = True
        end = max(t, self.s.layout.duration_s) + 1.0
        a.segs.append(Seg(t, end, pos, pos, "hidden" if gone else still_pose(), still_facing()))
        a.starts = [s.t0 for s in a.segs]
        return a

    def units(self, actors: list[Actor]) -> list[Unit]:
        units = {u.id: Unit(u, track=1000 + i + 1) for i, u in enumerate(self.s.units)}
        holder: dict[str, str] = {}
        rest: dict[str, UnitSeg] = {}
        taken: dict[str, set[int]] = {st: set() for st in self.stations}
        for uid, u in units.items():
            if u.spec.at is None:
                u.segs.append(UnitSeg(0.0, "hidden"))
                continue
            if isinstance(u.spec.at, str) and u.spec.at in self.stations:
                seg = self._lay(u.spec.at, None, taken, 0.0)
            else:
                p = self.point(u.spec.at)
                seg = UnitSeg(0.0, "rest", (p[0], p[1], 0.0))
            rest[uid] = seg
            u.segs.append(seg)
        for t, idx, j, verb, uid, pos, facing, extra in sorted(self.ops, key=lambda o: o[:3]):
            loc = ("actors", idx, "script", j, verb)
            who = actors[idx].spec.id
            if verb == "leave":
                for held, by in list(holder.items()):
                    if by == who:
                        units[held].segs.append(UnitSeg(t, "gone"))
                        del holder[held]
                continue
            u = units[uid]
            state = u.segs[-1].state
            if verb == "pick_up":
                if state == "rest":
                    where = rest[uid].pos
                    if distance(pos, where[:2]) > REACH_M:
                        raise self.fail(
                            loc,
                            f"{who} cannot reach {uid} at t={t:.1f}s: it lies"
                            f" {distance(pos, where[:2]):.1f} m away",
                        )
                    if rest[uid].station:
                        taken[rest[uid].station].discard(rest[uid].slot)
                elif state == "hidden" and len(u.segs) == 1:
                    if not any(distance(pos, d.at) <= DOOR_M for d in self.s.doors):
                        raise self.fail(loc, f"{uid} is handed in at a door; {who} is at none")
                else:
                    raise self.fail(loc, f"{uid} is not there to pick up at t={t:.1f}s ({state})")
                holder[uid] = who
                u.segs.append(UnitSeg(t, "carried", actor=who))
            elif verb in ("put_down", "hand_off"):
                if holder.get(uid) != who:
                    raise self.fail(loc, f"{who} does not carry {uid} at t={t:.1f}s")
                del holder[uid]
                if verb == "hand_off":
                    if not any(distance(pos, d.at) <= DOOR_M for d in self.s.doors):
                        raise self.fail(loc, f"{who} hands {uid} out but is at no door")
                    u.segs.append(UnitSeg(t, "gone"))
                    continue
                st = self.station_at(pos)
                if st is not None:
                    seg = self._lay(st.id, extra[0], taken, t)
                else:
                    p = (pos[0] + 0.45 * math.cos(facing), pos[1] + 0.45 * math.sin(facing))
                    seg = UnitSeg(t, "rest", (p[0], p[1], 0.0), facing)
                rest[uid] = seg
                u.segs.append(seg)
            elif verb == "scan":
                near = state == "rest" and rest[uid].station == extra[0]
                if holder.get(uid) != who and not near:
                    raise self.fail(loc, f"{uid} is neither held by {who} nor on {extra[0]}'s bench")
        return list(units.values())

    def _lay(self, station: str, slot: int | None, taken: dict[str, set[int]], t: float) -> UnitSeg:
        slots = bench_slots(self.stations[station])
        if slot is None:
            free = [k for k in range(len(slots)) if k not in taken[station]]
            slot = free[0] if free else len(taken[station]) % len(slots)
        slot = min(slot, len(slots) - 1)
        taken[station].add(slot)
        angle = math.radians(self.stations[station].bench.angle_deg) + 0.05 * (slot - 1)
        return UnitSeg(t, "rest", slots[slot], angle, station=station, slot=slot)


def compile_world(s: Scenario, name: str = "<scenario>") -> World:
    c = _Compiler(s, name)
    actors = [c.actor(i, a) for i, a in enumerate(s.actors)]
    units = c.units(actors)
    scans = sorted(c.scans, key=lambda e: (e.t, e.station, e.serial))
    return World(s, actors, units, scans, sorted(c.badges, key=lambda b: b.t))
