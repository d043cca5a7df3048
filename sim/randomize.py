"""Volume from a seed: the `random:` block turned into more workers, units and scripts.

Generated workers follow the same verbs as hand-written ones, so everything they do is checked
and rendered by the same code; only the choices (which unit, skip the scan or not) are drawn.
"""

from __future__ import annotations

import numpy as np

from sim.geometry import Point, centroid, distance
from sim.scenario import ActorSpec, RandomSpec, Scenario, UnitSpec, gate_of
from sim.world import work_spot

KINDS = ("watch", "band", "phone")
CONTAINERS = ("bare", "tray", "bin")


def expand(s: Scenario, rng: np.random.Generator) -> Scenario:
    """The scenario with the workers and units its `random:` block asks for added."""
    r = s.random
    if r is None or (r.workers == 0 and r.units == 0):
        return s
    units: list[UnitSpec] = []
    actors: list[ActorSpec] = []
    free_stations = [st for st in s.stations if not _used(s, st.id)]
    budget = r.units
    for w in range(r.workers):
        station = free_stations[w] if w < len(free_stations) else None
        actor, new_units = _worker(s, r, rng, w, station.id if station else None, budget)
        budget -= len(new_units)
        units += new_units
        actors.append(actor)
    return s.model_copy(update={"units": [*s.units, *units], "actors": [*s.actors, *actors]})


def _used(s: Scenario, station: str) -> bool:
    """A station some hand-written worker goes to is left to that worker."""
    for a in s.actors:
        if a.start == station or any(getattr(x, "walk_to", None) == station for x in a.script):
            return True
    return False


def _worker(
    s: Scenario, r: RandomSpec, rng: np.random.Generator, w: int, station: str | None, budget: int
) -> tuple[ActorSpec, list[UnitSpec]]:
    aid = f"r{w + 1:02d}"
    doors = [d.id for d in s.doors]
    door_at = {d.id: d.at for d in s.doors}
    start = doors[int(rng.integers(len(doors)))] if doors else (s.layout.width_m / 2, s.layout.depth_m / 2)
    appear = float(round(rng.uniform(0.0, 6.0) + 4.0 * w, 1))
    t = appear
    pos: Point = door_at[start] if isinstance(start, str) else start
    script: list[dict[str, object]] = []
    units: list[UnitSpec] = []
    end = s.layout.duration_s - 5.0

    def walk(target: str | Point, goal: Point) -> None:
        nonlocal t, pos
        script.append({"walk_to": target})
        t += 1.3 * distance(pos, goal) / 1.3 + 0.5
        pos = goal

    while t < end:
        t_before = t
        if station is not None and doors and len(units) < budget:
            spot = work_spot(next(st for st in s.stations if st.id == station))[0]
            door = doors[int(rng.integers(len(doors)))]
            repair = float(round(rng.uniform(*r.repair_s), 1))
            trip = 2.6 * distance(door_at[door], spot) / 1.3 + repair + 8.0
            if t + trip > end:
                break
            uid = f"{aid}-u{len(units) + 1}"
            units.append(
                UnitSpec(
                    id=uid,
                    serial=f"SN{int(rng.integers(10**6, 10**7))}",
                    kind=KINDS[int(rng.integers(3))],
                    container=CONTAINERS[int(rng.integers(3))],
                )
            )
            if distance(pos, door_at[door]) > 1.5:
                walk(door, door_at[door])
            script.append({"pick_up": uid})
            walk(station, spot)
            script += [{"put_down": uid}, {"sit": repair}, {"pick_up": uid}]
            scan: dict[str, object] = {"scan": uid}
            if rng.random() < r.skip_scan_p:
                scan["skip_scan"] = True
            elif rng.random() < r.late_scan_p:
                scan["scan_delay_s"] = float(round(rng.uniform(*r.late_scan_s), 1))
            script.append(scan)
            t += repair + 4.0
            walk(door, door_at[door])
            script.append({"hand_off": uid})
            t += 1.0
        elif station is None and not s.restricted:
            break
        if s.restricted and rng.random() < r.cage_p:
            z = s.restricted[int(rng.integers(len(s.restricted)))]
            stay = float(round(rng.uniform(2.0, 8.0), 1))
            if t + stay + 12.0 > end:
                break
            script.append({"enter": z.id, "authorized": bool(rng.random() < r.authorized_p), "stay_s": stay})
            t += stay + 2 * distance(pos, centroid(z.polygon)) / 1.2 + 2.0
        if s.restricted and rng.random() < r.walk_past_p:
            z = s.restricted[int(rng.integers(len(s.restricted)))]
            gate, normal = gate_of(z)
            by = (gate[0] + normal[0] * 1.1, gate[1] + normal[1] * 1.1)
            by = (min(max(by[0], 0.5), s.layout.width_m - 0.5), min(max(by[1], 0.5), s.layout.depth_m - 0.5))
            walk(by, by)
        if station is None:
            script.append({"wait": float(round(rng.uniform(3.0, 12.0), 1))})
            t += 8.0
            if not doors:
                continue
            door = doors[int(rng.integers(len(doors)))]
            walk(door, door_at[door])
        if station is not None and len(units) >= budget and not s.restricted:
            break
        if t == t_before:
            script.append({"wait": 5.0})
            t += 5.0
    return (
        ActorSpec.model_validate({"id": aid, "start": start, "appear_at": appear, "script": script}),
        units,
    )
