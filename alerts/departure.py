"""The unscanned-departure rule: a unit that leaves a station must have been scanned there.

Pure like every rule: tracked detections and scan events in, alerts out; no I/O, no clock.
Scanners are often late, so a departure without a scan is held pending and decided only once
capture time (of a later batch or scan) has passed the grace window.

A unit is often carried off hidden in a hand or behind the body that carries it, never seen
outside the station. So a unit track lost at the station while a person covered it is followed
through that person (its *carrier*): its position is taken to move as the carrier's foot point
does, and when that estimate leaves the station the unit has left with the carrier. Such a
departure is tentative: if the unit shows up again at the station, where it was or anywhere the
carrier took it inside (put down again), it is withdrawn before it is decided.

Time bases: a departure carries both times of the frame it was seen in, the video time `t` and
the wall-clock `ts`. A scan with `t` (replay) is compared with `t`; a scan with only `ts` (live)
is compared with `ts`, less the zone's `clock_skew_s`. Batches advance time by their `t` only,
because in replay their `ts` is the decoding machine's clock, not the video's.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from alerts.types import Alert, Stamped
from bondwatch.scans import ScanEvent
from bondwatch.site import Zone
from detectors.types import Box, Detection, DetectionBatch
from detectors.zones import inside

UNIT = "unit"
PERSON = "person"
# Two unit boxes of one frame overlapping this much (intersection over union) are one unit seen
# twice (the model's non-maximum suppression lets some such pairs through, and the tracker then
# follows both): the younger track is taken as an alias of the older, or one unit would depart
# twice, or the duplicate, lost, would be taken for another unit.
DUPLICATE_IOU = 0.5
# A unit track unseen for this long is forgotten (the tracker has dropped its id by then).
FORGET_S = 10.0
# A new track appearing near a unit track just lost inside the station is that unit under a
# new id (a hand or tray occluded it): it inherits the state, so a unit carried out is not
# missed because the tracker switched ids on the way.
REID_WINDOW_S = 3.0
REID_DISTANCE_PX = 120.0
# A person within reach of a unit lost at the station, within this long after it was last seen, is
# taken to be carrying it (an occluding person who walks away uncovers it, and it is seen again).
CARRY_PICKUP_S = 1.0
# Within reach: the person's box, widened on each side by this fraction of its height (an arm
# reaching out is often outside the box), covers the centre of the unit's last box.
CARRY_REACH = 0.25
# A carrier lost (in `exit_detections` frames in a row) with its box this close to the picture's
# edge (a fraction of the picture's size) has walked out of the picture, and taken the unit along.
EDGE_MARGIN = 0.02
# A departure inferred from a carrier is withdrawn if the unit shows up at the station again within
# this long (it had been put down, or only hidden by the person): later, it is another unit put
# there, or the same one brought back. It is decided no sooner, however short the grace window.
CARRY_CONFIRM_S = 3.0
# The carrier's path inside the station is kept as this many points (where it may put units down).
CARRY_PATH_POINTS = 200
# Scans older than the window by this much can no longer match a departure still to come.
SCAN_KEEP_S = FORGET_S + 60.0
# A unit (or person) that the previous owner of a camera saw at a station (or in a zone) is
# handed over as a "ghost": the first new track that appears where it was within this many
# seconds of the new owner's first frame inherits its state (see RuleEngine.restore_state).
HANDOVER_ADOPT_S = 5.0
_EVENT_NS = uuid.UUID("6f1c0e2a-6d1b-4c1e-9a43-3b1f0b8c2d57")


def event_id(kind: str, camera: str, zone: str, track: int, ts: float) -> str:
    """The alert id of one rule event: the same event gives the same id on whichever worker
    decides it (its camera's state moves with the camera), so the store keeps it once."""
    return uuid.uuid5(_EVENT_NS, f"{kind}|{camera}|{zone}|{track}|{ts:.3f}").hex


def _at_edge(box: Box, batch: DetectionBatch) -> bool:
    mx, my = EDGE_MARGIN * batch.width, EDGE_MARGIN * batch.height
    x1, y1, x2, y2 = box
    return x1 <= mx or y1 <= my or x2 >= batch.width - mx or y2 >= batch.height - my


def iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


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
    last_box: Box = (0.0, 0.0, 0.0, 0.0)
    conf: float = 0.0
    ghost: bool = False  # handed over by the camera's previous owner, not yet matched to a track
    origin: int | None = None  # the track id the current stay began under, on any owner
    carry: _Carry | None = None  # lost at the station under a person (see the module's docstring)


@dataclass
class _Carry:
    """A unit lost at the station under a person, followed through that person's track."""

    person: int  # the carrier's track id
    start: tuple[float, float]  # the carrier's foot point when it took the unit
    foot: tuple[float, float]  # the carrier's foot point when last seen
    seen_t: float  # capture times the carrier was last seen
    seen_ts: float
    box: Box  # and its box then
    path: list[tuple[float, float]]  # the unit's estimated positions inside the station
    missing: int = 0  # frames it has been missing since, in a row
    newest: int = 0  # the highest person track id seen by then: a new id for it is above
    outside: int = 0  # carrier detections in a row with the estimate outside the station
    out_t: float = 0.0  # capture times of the first of them
    out_ts: float = 0.0
    departure: _Departure | None = None  # the tentative departure, until decided or withdrawn


# What of a _Unit travels to a camera's next owner; the times are video times.
_UNIT_FIELDS = ("inside", "departed", "inside_run", "run_t", "in_t", "last_in_t", "outside", "out_t",
                "out_ts", "last_t", "conf", "origin")  # fmt: skip
_UNIT_TIMES = ("run_t", "in_t", "last_in_t", "out_t", "last_t")


@dataclass
class _Departure:
    camera: str
    track: int
    t: float  # video time in this rule's time base (see `shift`)
    ts: float
    conf: float
    # Seconds added to `t` when the departure was handed over from a stream with another time
    # base: the alert reports `t - shift`, the video time in which the unit was seen leaving.
    shift: float = 0.0
    origin: int | None = None  # the track id its stay began under (another owner's, after a handover)
    carrier: int | None = None  # the person track it left with, when it was not seen leaving itself
    lost_t: float = 0.0  # when a carried unit was last seen (in this rule's time base)
    lost_foot: tuple[float, float] = (0.0, 0.0)  # and where

    @property
    def seen_t(self) -> float:
        return self.t - self.shift

    def wait(self, grace: float) -> float:
        """Seconds after it that the departure is decided."""
        return grace if self.carrier is None else max(grace, CARRY_CONFIRM_S)

    def to_json(self) -> dict[str, Any]:
        return {"track": self.track, "t": self.t, "ts": self.ts, "conf": self.conf, "shift": self.shift,
                "origin": self.origin, "carrier": self.carrier, "lost_t": self.lost_t,
                "lost_foot": list(self.lost_foot)}  # fmt: skip

    @classmethod
    def from_json(cls, camera: str, d: dict[str, Any], shift: float) -> _Departure:
        return cls(camera, int(d["track"]), d["t"] + shift, d["ts"], d["conf"], d["shift"] + shift,
                   d["origin"], d.get("carrier"), d.get("lost_t", d["t"]) + shift,
                   tuple(d.get("lost_foot", (0.0, 0.0))))  # fmt: skip


@dataclass
class _Scan(Stamped):
    serial: str = ""
    used_by: _Departure | None = None

    def offset(self, dep: _Departure) -> float:
        """Seconds from the departure to this scan."""
        return self.seconds_after(dep.t, dep.ts)

    def key(self) -> tuple[str, float | None, float | None]:
        """Identifies the scan on every worker (all of them read every scan)."""
        return (self.serial, self.t, self.ts)


@dataclass
class DepartureRule:
    """A `unit` track leaving `zone` (a station) raises one alert unless a scan there covers it.

    The unit has left when its foot point, after a stay of at least `zone.dwell_s` inside, is
    outside the polygon in `zone.exit_detections` detections in a row (a unit lost inside, or
    jittering on the edge, has not), or when a unit lost under a person is estimated outside as
    many times in a row while that person walks away (see the module's docstring). A scan covers
    the departure when it falls from `zone.scan_before_s` before to `zone.scan_grace_s` after
    it; each scan covers one unit: departures, in time order, take the earliest unused scan.
    """

    zone: Zone
    units: dict[int, _Unit] = field(default_factory=dict)
    scans: list[_Scan] = field(default_factory=list)
    pending: list[_Departure] = field(default_factory=list)
    aliases: dict[int, int] = field(default_factory=dict)  # duplicate track -> the unit's track
    newest_person: int = 0  # the highest person track id seen (trackers number tracks upwards)

    def update(self, batch: DetectionBatch) -> list[Alert]:
        """Follow the units of one frame; return the alerts whose grace ran out by its time."""
        dets = self._distinct(batch.tracked(UNIT))
        seen = {d.track for d in dets}
        for det in dets:
            assert det.track is not None
            is_in = inside(det.foot, self.zone.polygon)
            u = self.units.get(det.track)
            if u is None:
                u = self._adopt(det.foot, batch.t, seen)
                self.units[det.track] = u
            if u.carry is not None:
                self._found(u, is_in, batch.t)
            u.last_t, u.last_foot, u.last_box, u.conf = batch.t, det.foot, det.box, det.conf
            u.inside_run = u.inside_run + 1 if is_in else 0
            if is_in:
                if u.inside_run == 1:
                    u.run_t = batch.t
                # after a departure, a return counts only as surely as a departure does
                if not u.inside and (not u.departed or u.inside_run >= self.zone.exit_detections):
                    u.inside, u.in_t, u.origin = True, u.run_t, det.track
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
                        dep = _Departure(batch.camera, det.track, u.out_t, u.out_ts, u.conf,
                                         origin=u.origin)  # fmt: skip
                        self.pending.append(dep)
        people = {d.track: d for d in batch.tracked(PERSON)}
        for tid, u in self.units.items():
            if tid not in seen and not u.ghost:
                self._follow(tid, u, batch, people)
        self.newest_person = max([self.newest_person, *(t for t in people if t is not None)])
        for tid, u in list(self.units.items()):
            if batch.t - u.last_t > FORGET_S and not self._carried(u.carry, batch.t):
                del self.units[tid]
        self.aliases = {a: tid for a, tid in self.aliases.items() if tid in self.units}
        horizon = self.zone.scan_before_s + SCAN_KEEP_S
        self.scans = [
            s
            for s in self.scans
            if (s.t is None or s.t >= batch.t - horizon) and (s.ts is None or s.ts >= batch.ts - horizon)
        ]
        return self._decide(lambda d: batch.t > d.t + d.wait(self.zone.scan_grace_s))

    def _distinct(self, dets: list[Detection]) -> list[Detection]:
        """One detection per unit, under the unit's track id: of two boxes overlapping by
        DUPLICATE_IOU or more the younger track (higher id) is dropped, and remembered as an alias
        of the older, whose detection it then stands for when the older is missing."""
        kept: dict[int, Detection] = {}
        for det in sorted(dets, key=lambda d: d.track or 0):
            assert det.track is not None
            dup = next((k for k in kept.values() if iou(det.box, k.box) >= DUPLICATE_IOU), None)
            if dup is not None:
                assert dup.track is not None
                if det.track != dup.track:
                    self.aliases[det.track] = dup.track
                continue
            tid = self.aliases.get(det.track, det.track)
            if tid in kept:  # its unit is seen elsewhere in this frame: not a duplicate after all
                self.aliases.pop(det.track, None)
                tid = det.track
            kept[tid] = det if tid == det.track else replace(det, track=tid)
        return list(kept.values())

    def _follow(self, tid: int, u: _Unit, batch: DetectionBatch, people: dict[int | None, Detection]) -> None:
        """A unit not seen in `batch`: find who took it, or follow it through its carrier."""
        c = u.carry
        if c is None:
            if u.inside and batch.t - u.last_t <= CARRY_PICKUP_S and (p := self._carrier(u, people)):
                assert p.track is not None
                u.carry = _Carry(p.track, p.foot, p.foot, batch.t, batch.ts, p.box, [u.last_foot])
                u.carry.newest = max(self.newest_person, p.track)
            return
        if c.departure is not None:
            return  # gone with its carrier; kept only so that it can still show up again
        p = people.get(c.person) or self._carrier_again(c, batch.t, people)
        if p is None:
            c.missing += 1
            if c.missing >= self.zone.exit_detections and _at_edge(c.box, batch):  # out of the picture
                c.out_t, c.out_ts = c.seen_t, c.seen_ts
                self._depart(tid, u, c, batch.camera)
            elif batch.t - c.seen_t > REID_WINDOW_S:
                u.carry = None  # carrier lost too: where the unit went is unknown
            return
        c.person = p.track  # type: ignore[assignment]  # the tracker may have switched its id
        c.foot, c.seen_t, c.seen_ts, c.box, c.missing = p.foot, batch.t, batch.ts, p.box, 0
        c.newest = max(self.newest_person, c.person)
        est = (u.last_foot[0] + p.foot[0] - c.start[0], u.last_foot[1] + p.foot[1] - c.start[1])
        if inside(est, self.zone.polygon):
            c.outside = 0
            if len(c.path) < CARRY_PATH_POINTS:
                c.path.append(est)
            return
        if c.outside == 0:
            c.out_t, c.out_ts = batch.t, batch.ts
        c.outside += 1
        if c.outside >= self.zone.exit_detections:
            self._depart(tid, u, c, batch.camera)

    def _depart(self, tid: int, u: _Unit, c: _Carry, camera: str) -> None:
        """The unit has left with its carrier, at `c.out_t`: a tentative departure."""
        if u.outside:  # it had been seen outside already, before it was hidden again
            c.out_t, c.out_ts = u.out_t, u.out_ts
        u.inside, u.outside, u.departed = False, 0, True
        if u.last_in_t - u.in_t >= self.zone.dwell_s - 1e-9 and not self._taken(u, c.person):
            c.departure = _Departure(camera, tid, c.out_t, c.out_ts, u.conf, origin=u.origin,
                                     carrier=c.person, lost_t=u.last_t, lost_foot=u.last_foot)  # fmt: skip
            self.pending.append(c.departure)
        else:
            u.carry = None

    def _taken(self, u: _Unit, carrier: int) -> bool:
        """The same person already took a unit from where this one was lost: while it is lifted, the
        tracker may follow one unit under two ids (the box jumps), and it left only once."""
        x1, y1, x2, y2 = u.last_box
        near = max(x2 - x1, y2 - y1, 20.0)
        return any(d.carrier == carrier and math.dist(d.lost_foot, u.last_foot) <= near for d in self.pending)

    def _carrier(self, u: _Unit, people: dict[int | None, Detection]) -> Detection | None:
        """The person within reach of the unit's last box centre (the nearest, if several)."""
        x1, y1, x2, y2 = u.last_box
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        covering = []
        for p in people.values():
            px1, py1, px2, py2 = p.box
            m = CARRY_REACH * (py2 - py1)
            if px1 - m <= cx <= px2 + m and py1 - m <= cy <= py2 + m:
                covering.append((math.dist((cx, cy), ((px1 + px2) / 2, (py1 + py2) / 2)), p))
        return min(covering, key=lambda x: x[0])[1] if covering else None

    def _carrier_again(self, c: _Carry, t: float, people: dict[int | None, Detection]) -> Detection | None:
        """The carrier under a new track id: a new person track nearest where it was last seen,
        shortly after, that is not carrying another unit of this station."""
        if t - c.seen_t > REID_WINDOW_S:
            return None
        busy = {u.carry.person for u in self.units.values() if u.carry is not None}
        near = [(math.dist(p.foot, c.foot), p) for tid, p in people.items()
                if tid is not None and tid > c.newest and tid not in busy]  # fmt: skip
        near = [x for x in near if x[0] <= REID_DISTANCE_PX]
        return min(near, key=lambda x: x[0])[1] if near else None

    def _found(self, u: _Unit, is_in: bool, t: float) -> None:
        """A unit thought carried is seen again: inside the station soon enough, it had been put
        down (or was only hidden) and a tentative departure is withdrawn; outside, or later, it is
        followed as itself (a return counts as after any departure)."""
        c = u.carry
        assert c is not None
        u.carry = None
        if is_in and c.departure is not None and self._carried(c, t):
            self.pending = [d for d in self.pending if d is not c.departure]
            u.inside, u.departed, u.inside_run = True, False, 0

    def _carried(self, c: _Carry | None, t: float) -> bool:
        """Followed through a carrier, or gone with one so recently that it may still show up."""
        if c is None or c.departure is None:
            return c is not None
        dep = c.departure
        return t - dep.t <= CARRY_CONFIRM_S and any(d is dep for d in self.pending)

    def add_scan(self, scan: ScanEvent) -> list[Alert]:
        """Record a scan of this station; its time may end the grace window of earlier ones."""
        if scan.station != self.zone.station:
            return []
        ts = None if scan.ts is None else scan.ts.timestamp() - self.zone.clock_skew_s
        s = _Scan(scan.t, ts, serial=scan.serial)
        self.scans.append(s)
        return self._decide(lambda d: s.offset(d) > d.wait(self.zone.scan_grace_s))

    def flush(self, t: float | None = None) -> list[Alert]:
        """Decide departures whose grace window ended before video time `t`; all when None.

        At the end of a replay, once every scan has been added, no scan can come any more.
        """
        if t is None:
            return self._decide(lambda d: True)
        return self._decide(lambda d: t > d.t + d.wait(self.zone.scan_grace_s))

    def export(self) -> dict[str, Any]:
        """What a camera's next owner needs to go on where this one stops: the units at the
        station (not those gone from it), the pending departures and the scans with the
        departures they covered. JSON-able; times in this rule's video time base."""
        units = [
            {"track": tid, "foot": list(u.last_foot), **{f: getattr(u, f) for f in _UNIT_FIELDS}}
            for tid, u in self.units.items()
            if u.inside
        ]
        scans = [
            {"serial": s.serial, "t": s.t, "ts": s.ts,
             "used_by": None if s.used_by is None else s.used_by.to_json()}
            for s in self.scans
        ]  # fmt: skip
        return {"units": units, "pending": [d.to_json() for d in self.pending], "scans": scans}

    def reset(self) -> None:
        """Forget the units and pending departures (the camera went to another owner); scans
        stay, for they are the station's, whoever watches its camera."""
        self.units, self.pending = {}, []

    def restore(self, state: dict[str, Any], shift: float, t0: float) -> None:
        """Take over `export()`'s state from the camera's previous owner.

        `shift` maps its video times into this stream's (the same wall-clock instant); `t0` is
        this stream's first batch. Units come back as ghosts with negative ids that a new track
        adopts (`_adopt`); the scans of this rule, read by this worker too, are merged with the
        snapshot's, which know which departures each covered.
        """
        camera = self.zone.camera
        self.units = {}
        for i, d in enumerate(state.get("units", [])):
            u = _Unit(**{f: d[f] for f in _UNIT_FIELDS}, last_foot=(d["foot"][0], d["foot"][1]), ghost=True)
            for f in _UNIT_TIMES:
                setattr(u, f, getattr(u, f) + shift)
            u.last_t = t0
            self.units[-1 - i] = u
        self.pending = [_Departure.from_json(camera, d, shift) for d in state.get("pending", [])]
        local = {s.key(): s for s in self.scans}
        for d in state.get("scans", []):
            s = _Scan(None if d["t"] is None else d["t"] + shift, d["ts"], serial=d["serial"])
            s = local.get(s.key(), s)
            used = d.get("used_by")
            s.used_by = None if used is None else _Departure.from_json(camera, used, shift)
            if s.key() not in local:
                self.scans.append(s)

    def _decide(self, due: Callable[[_Departure], bool]) -> list[Alert]:
        """Match the due departures, in time order, to scans; alert for those left without."""
        ready = sorted((d for d in self.pending if due(d)), key=lambda d: d.t)
        if not ready:
            return []
        self.pending = [d for d in self.pending if not due(d)]
        alerts = []
        for dep in ready:
            window = [
                s for s in self.scans if -self.zone.scan_before_s <= s.offset(dep) <= self.zone.scan_grace_s
            ]
            free = [s for s in window if s.used_by is None]
            if free:
                min(free, key=lambda s: s.offset(dep)).used_by = dep
            else:
                alerts.append(self._alert(dep, window))
        return alerts

    def _adopt(self, foot: tuple[float, float], t: float, seen: set[int]) -> _Unit:
        """A new track inherits the state of a unit just lost inside the station near it, or of
        a unit the camera's previous owner saw there (a ghost), if it appears in the station or
        near where that one was, early enough after the handover; or, appearing in the station,
        of a unit thought carried whose carrier passed there (put down again)."""
        ghosts = [
            (math.dist(foot, u.last_foot), tid)
            for tid, u in self.units.items()
            if u.ghost
            and 0 <= t - u.last_t <= HANDOVER_ADOPT_S
            and (inside(foot, self.zone.polygon) or math.dist(foot, u.last_foot) <= REID_DISTANCE_PX)
        ]
        if ghosts:
            u = self.units.pop(min(ghosts)[1])
            u.ghost = False
            return u
        best: tuple[float, int] | None = None
        for tid, u in self.units.items():
            if u.inside and not u.ghost and tid not in seen and 0 < t - u.last_t <= REID_WINDOW_S:
                d = math.dist(foot, u.last_foot)
                if d <= REID_DISTANCE_PX and (best is None or d < best[0]):
                    best = (d, tid)
        if best is None and inside(foot, self.zone.polygon):
            for tid, u in self.units.items():
                if tid not in seen and self._carried(u.carry, t):
                    assert u.carry is not None
                    d = min(math.dist(foot, p) for p in u.carry.path)
                    if d <= REID_DISTANCE_PX and (best is None or d < best[0]):
                        best = (d, tid)
        return _Unit() if best is None else self.units.pop(best[1])

    def _alert(self, dep: _Departure, window: list[_Scan]) -> Alert:
        z = self.zone
        lo, hi = max(0.0, dep.seen_t - z.scan_before_s), dep.seen_t + z.scan_grace_s
        if dep.carrier is None:
            how = f"seen outside in {z.exit_detections} detections in a row"
        else:
            how = (
                f"carried: last seen at t={dep.lost_t - dep.shift:.1f} s under person track {dep.carrier},"
                f" not seen at the station again, and that person took it out of the station"
                f" ({z.exit_detections} detections in a row, its position followed from the person's)"
            )
        left = f"unit track {dep.track} left station {z.station} (zone {z.id}) at t={dep.seen_t:.1f} s"
        why = [f"{left}, {how}"]
        for s in window:
            assert s.used_by is not None
            why.append(
                f"scan {s.serial} at {s.when()} was used by track {s.used_by.track}"
                f" (left at t={s.used_by.seen_t:.1f} s)"
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
            t=dep.seen_t,
            ts=dep.ts,
            track=dep.track,
            carrier=dep.carrier,
            confidence=round(dep.conf, 3),
            explanation="; ".join(why),
            id=event_id(
                "unscanned_departure",
                dep.camera,
                z.id,
                dep.track if dep.origin is None else dep.origin,
                dep.ts,
            ),  # fmt: skip
        )
