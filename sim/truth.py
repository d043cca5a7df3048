"""The alerts a perfect system raises, decided from the exact label boxes of the render.

The same geometry as the service's rules (bottom-centre of a box inside a zone polygon in that
camera's pixels), applied to boxes that are never missed, so the truth measures the detector
and tracker, not a different definition of an event.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.geometry import Point, inside


@dataclass(frozen=True)
class ZoneGeom:
    id: str
    camera: str
    kind: str  # restricted, station
    polygon: list[Point]
    dwell_s: float
    station: str | None = None


@dataclass(frozen=True)
class Visit:
    track: int
    t_in: float  # first frame inside
    t_last: float  # last frame inside
    t_out: float | None  # first frame of the confirmed exit; None: still inside at the end


def visits(
    frames: list[dict[int, Point]], track: int, poly: list[Point], fps: float, exit_s: float
) -> list[Visit]:
    """Stays of one track inside a polygon; outside gaps shorter than exit_s do not split them.

    frames[i] maps track -> foot point in frame i; a missing track is outside.
    """
    out: list[Visit] = []
    t_in: float | None = None
    last_in = 0.0
    for i, feet in enumerate(frames):
        t = i / fps
        p = feet.get(track)
        now_in = p is not None and inside(p, poly)
        if now_in:
            if t_in is None:
                t_in = t
            last_in = t
        elif t_in is not None and t - last_in >= exit_s - 1e-9:
            out.append(Visit(track, t_in, last_in, last_in + 1.0 / fps))
            t_in = None
    if t_in is not None:
        out.append(Visit(track, t_in, last_in, None))
    return out


def truth_alerts(
    feet: dict[str, list[dict[int, Point]]],
    persons: set[int],
    units: set[int],
    zones: list[ZoneGeom],
    scans: list[tuple[float, str]],
    authorized: list[tuple[int, str, float, float]],
    fps: float,
    scan_window_s: float,
    scan_grace_s: float,
    exit_s: float,
) -> list[dict[str, object]]:
    """CONTRACTS section 4 alerts, sorted by time.

    feet: per camera, per frame, track -> bottom-centre of its box. authorized: (track, zone,
    t0, t1) windows in which an entry of that track into that zone is allowed.
    """
    alerts: list[dict[str, object]] = []
    for z in zones:
        frames = feet.get(z.camera, [])
        tracks = sorted({k for f in frames for k in f})
        if z.kind == "restricted":
            for track in (k for k in tracks if k in persons):
                for v in visits(frames, track, z.polygon, fps, exit_s):
                    if v.t_last - v.t_in < z.dwell_s - 1e-9:
                        continue
                    if any(a == track and az == z.id and t0 <= v.t_in <= t1 for a, az, t0, t1 in authorized):
                        continue
                    alerts.append(_alert("unauthorized_entry", z, v.t_in, track))
        else:
            departures = sorted(
                (v.t_out, track)
                for track in tracks
                if track in units
                for v in visits(frames, track, z.polygon, fps, exit_s)
                if v.t_out is not None and v.t_last - v.t_in >= z.dwell_s - 1e-9
            )
            # Each scan covers one unit: departures, in time order, take the earliest unused one.
            free = sorted(ts for ts, st in scans if st == z.station)
            for t, track in departures:
                cover = next((ts for ts in free if t - scan_window_s <= ts <= t + scan_grace_s), None)
                if cover is None:
                    alerts.append(_alert("unscanned_departure", z, t, track))
                else:
                    free.remove(cover)
    alerts.sort(key=lambda a: (a["t"], a["type"], a["camera"], a["zone"], a["track"]))
    return alerts


def _alert(kind: str, z: ZoneGeom, t: float, track: int) -> dict[str, object]:
    a: dict[str, object] = {"type": kind, "camera": z.camera, "zone": z.id}
    if z.station is not None:
        a["station"] = z.station
    a["t"] = round(t, 3)
    a["track"] = track
    return a
