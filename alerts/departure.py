"""The unscanned-departure rule: a unit that leaves a station must have been scanned there.

Pure like every rule: tracked detections and scan events in, alerts out; no I/O, no clock.
Scanners are often late, so a departure without a scan is held pending and decided only once
capture time (of a later batch or scan) has passed the grace window.

Time bases: a departure carries both times of the frame it was seen in, the video time `t` and
the wall-clock `ts`. A scan with `t` (replay) is compared with `t`; a scan with only `ts` (live)
is compared with `ts`, less the zone's `clock_skew_s`. Batches advance time by their `t` only,
because in replay their `ts` is the decoding machine's clock, not the video's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from alerts.types import Alert, iso
from bondwatch.scans import ScanEvent
from bondwatch.site import Zone
from detectors.types import DetectionBatch
from detectors.zones import inside

UNIT = "unit"
# A unit track unseen for this long is forgotten (the tracker has dropped its id by then).
FORGET_S = 10.0
# A new track appearing near a unit track just lost inside the station is that unit under a
# new id (a hand or tray occluded it): it inherits the state, so a unit carried out is not
# missed because the tracker switched ids on the way.
REID_WINDOW_S = 3.0
REID_DISTANCE_PX = 120.0
# Scans older than the window by this much can no longer match a departure still to come.
SCAN_KEEP_S = FORGET_S + 60.0


@dataclass
class _Unit:
    """One unit track with respect to the station zone."""

    inside: bool = False  # in the station: seen inside and not departed since
    departed: bool = False  # has left the station at least once
    inside_run: int = 0  # detections inside in a row, to count a return after a departure
    run_t: float = 0.0  # capture time of the first of them
    in_t: float = 0.0  # capture time the current stay began
    last_in_t: float = 0.0  # capture time last seen inside
    outside: int = 0  # detections outside in a row since it was last seen inside
    out_t: float = 0.0  # capture times of the first of them: the departure's time
    out_ts: float = 0.0
    last_t: float = 0.0
    last_foot: tuple[float, float] = (0.0, 0.0)
    conf: float = 0.0


@dataclass
class _Departure:
    camera: str
    track: int
    t: float
    ts: float
    conf: float


@dataclass
class _Scan:
    serial: str
    t: float | None  # video time (replay)
    ts: float | None  # wall clock corrected for the scanner's skew (live)
    used_by: _Departure | None = None

    def offset(self, dep: _Departure) -> float:
        """Seconds from the departure to this scan, in the scan's own time base."""
        if self.t is not None:
            return self.t - dep.t
        assert self.ts is not None
        return self.ts - dep.ts

    def when(self) -> str:
        if self.t is not None:
            return f"t={self.t:.1f} s"
        assert self.ts is not None
        return iso(self.ts)


@dataclass
class DepartureRule:
    """A `unit` track leaving `zone` (a station) raises one alert unless a scan there covers it.

    The unit has left when its foot point, after a stay of at least `zone.dwell_s` inside, is
    outside the polygon in `zone.exit_detections` detections in a row (a unit lost inside, or
    jittering on the edge, has not). A scan covers
    the departure when it falls from `zone.scan_before_s` before to `zone.scan_grace_s` after
    it; each scan covers one unit: departures, in time order, take the earliest unused scan.
    """

    zone: Zone
    units: dict[int, _Unit] = field(default_factory=dict)
    scans: list[_Scan] = field(default_factory=list)
    pending: list[_Departure] = field(default_factory=list)

    def update(self, batch: DetectionBatch) -> list[Alert]:
        """Follow the units of one frame; return the alerts whose grace ran out by its time."""
        dets = batch.tracked(UNIT)
        seen = {d.track for d in dets}
        for det in dets:
            assert det.track is not None
            is_in = inside(det.foot, self.zone.polygon)
            u = self.units.get(det.track)
            if u is None:
                u = self._adopt(det.foot, batch.t, seen)
                self.units[det.track] = u
            u.last_t, u.last_foot, u.conf = batch.t, det.foot, det.conf
            u.inside_run = u.inside_run + 1 if is_in else 0
            if is_in:
                if u.inside_run == 1:
                    u.run_t = batch.t
                # after a departure, a return counts only as surely as a departure does
                if not u.inside and (not u.departed or u.inside_run >= self.zone.exit_detections):
                    u.inside, u.in_t = True, u.run_t
                if u.inside:
                    u.last_in_t = batch.t
                u.outside = 0
            elif u.inside:
                if u.outside == 0:
                    u.out_t, u.out_ts = batch.t, batch.ts
                u.outside += 1
                if u.outside >= self.zone.exit_detections:
                    u.inside, u.outside, u.departed = False, 0, True
                    # a unit carried through the zone without stopping was never at the station
                    if u.last_in_t - u.in_t >= self.zone.dwell_s - 1e-9:
                        dep = _Departure(batch.camera, det.track, u.out_t, u.out_ts, u.conf)
                        self.pending.append(dep)
        for tid in [t for t, u in self.units.items() if batch.t - u.last_t > FORGET_S]:
            del self.units[tid]
        horizon = self.zone.scan_before_s + SCAN_KEEP_S
        self.scans = [
            s
            for s in self.scans
            if (s.t is None or s.t >= batch.t - horizon)
            and (s.ts is None or s.ts >= batch.ts - horizon)
        ]
        return self._decide(lambda d: batch.t > d.t + self.zone.scan_grace_s)

    def add_scan(self, scan: ScanEvent) -> list[Alert]:
        """Record a scan of this station; its time may end the grace window of earlier ones."""
        if scan.station != self.zone.station:
            return []
        ts = None if scan.ts is None else scan.ts.timestamp() - self.zone.clock_skew_s
        s = _Scan(scan.serial, scan.t, ts)
        self.scans.append(s)
        return self._decide(lambda d: s.offset(d) > self.zone.scan_grace_s)

    def flush(self, t: float | None = None) -> list[Alert]:
        """Decide departures whose grace window ended before video time `t`; all when None.

        At the end of a replay, once every scan has been added, no scan can come any more.
        """
        if t is None:
            return self._decide(lambda d: True)
        return self._decide(lambda d: t > d.t + self.zone.scan_grace_s)

    def _decide(self, due: Callable[[_Departure], bool]) -> list[Alert]:
        """Match the due departures, in time order, to scans; alert for those left without."""
        ready = sorted((d for d in self.pending if due(d)), key=lambda d: d.t)
        if not ready:
            return []
        self.pending = [d for d in self.pending if not due(d)]
        alerts = []
        for dep in ready:
            window = [
                s
                for s in self.scans
                if -self.zone.scan_before_s <= s.offset(dep) <= self.zone.scan_grace_s
            ]
            free = [s for s in window if s.used_by is None]
            if free:
                min(free, key=lambda s: s.offset(dep)).used_by = dep
            else:
                alerts.append(self._alert(dep, window))
        return alerts

    def _adopt(self, foot: tuple[float, float], t: float, seen: set[int]) -> _Unit:
        """A new track inherits the state of a unit just lost inside the station near it."""
        best: tuple[float, int] | None = None
        for tid, u in self.units.items():
            if u.inside and tid not in seen and 0 < t - u.last_t <= REID_WINDOW_S:
                d = math.dist(foot, u.last_foot)
                if d <= REID_DISTANCE_PX and (best is None or d < best[0]):
                    best = (d, tid)
        return _Unit() if best is None else self.units.pop(best[1])

    def _alert(self, dep: _Departure, window: list[_Scan]) -> Alert:
        z = self.zone
        lo, hi = max(0.0, dep.t - z.scan_before_s), dep.t + z.scan_grace_s
        why = [
            f"unit track {dep.track} left station {z.station} (zone {z.id}) at t={dep.t:.1f} s,"
            f" seen outside in {z.exit_detections} detections in a row"
        ]
        for s in window:
            assert s.used_by is not None
            why.append(
                f"scan {s.serial} at {s.when()} was used by track {s.used_by.track}"
                f" (left at t={s.used_by.t:.1f} s)"
            )
        if not window:
            why.append(f"no scan at {z.station} between t={lo:.1f} s and t={hi:.1f} s")
        others = [s for s in self.scans if s not in window]
        if others:
            near = min(others, key=lambda s: abs(s.offset(dep)))
            off = near.offset(dep)
            side = "before" if off < 0 else "after"
            why.append(
                f"nearest scan outside that window: {near.serial} at {near.when()},"
                f" {abs(off):.1f} s {side} it left"
                f" (window {z.scan_before_s:g} s before to {z.scan_grace_s:g} s after)"
            )
        return Alert(
            type="unscanned_departure",
            camera=dep.camera,
            zone=z.id,
            station=z.station,
            t=dep.t,
            ts=dep.ts,
            track=dep.track,
            confidence=round(dep.conf, 3),
            explanation="; ".join(why),
        )
