"""Rules: pure state machines from tracked detections to alerts. No I/O, no clock.

Every rule compares capture times carried by the batches, never "now", so a backlog of
frames can never turn into a false alert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from alerts.departure import DepartureRule
from alerts.types import Alert
from bondwatch.scans import ScanEvent
from bondwatch.site import Site, Zone
from detectors.types import DetectionBatch
from detectors.zones import inside

# A track that vanished inside a zone and a new track that appears near it shortly after are
# taken to be the same person (a tracker id switch), so the entry is not reported twice.
REID_WINDOW_S = 3.0
REID_DISTANCE_PX = 120.0
# A track unseen for this long is forgotten.
FORGET_S = 10.0


@dataclass
class _Presence:
    """What the rule knows about one track with respect to one zone."""

    inside: bool = False
    entered_t: float | None = None  # video time of the current entry, while inside
    entered_ts: float | None = None
    outside_since: float | None = None  # start of the current spell outside after an entry
    alerted: bool = False  # this entry has been reported
    last_t: float = 0.0
    last_foot: tuple[float, float] = (0.0, 0.0)
    conf: float = 0.0


@dataclass
class RestrictedZoneRule:
    """A person whose foot point enters `zone` and stays `dwell_s` gives one alert.

    The alert carries the entry's time, not the time the dwell was reached. A person must
    be outside for `exit_s` before a new entry counts, so a box jittering on the edge gives
    neither false nor repeated alerts.
    """

    zone: Zone
    cls: str = "person"
    tracks: dict[int, _Presence] = field(default_factory=dict)

    def update(self, batch: DetectionBatch) -> list[Alert]:
        alerts: list[Alert] = []
        seen: set[int] = set()
        for det in batch.tracked(self.cls):
            assert det.track is not None
            seen.add(det.track)
            p = self.tracks.get(det.track)
            is_in = inside(det.foot, self.zone.polygon)
            if p is None:
                p = self._adopt(det.foot, batch.t) if is_in else _Presence()
                self.tracks[det.track] = p
            p.last_t, p.last_foot, p.conf = batch.t, det.foot, det.conf
            if is_in:
                p.outside_since = None
                if not p.inside:
                    p.inside, p.entered_t, p.entered_ts = True, batch.t, batch.ts
                    p.alerted = False
                assert p.entered_t is not None
                if not p.alerted and batch.t - p.entered_t >= self.zone.dwell_s:
                    p.alerted = True
                    alerts.append(self._alert(batch, det.track, p))
            elif p.inside:
                if p.outside_since is None:
                    p.outside_since = batch.t
                if batch.t - p.outside_since >= self.zone.exit_s:
                    p.inside, p.entered_t, p.outside_since = False, None, None
        for tid in [t for t, p in self.tracks.items() if batch.t - p.last_t > FORGET_S]:
            del self.tracks[tid]
        return alerts

    def _adopt(self, foot: tuple[float, float], t: float) -> _Presence:
        """A track born inside the zone inherits the state of one recently lost there."""
        best: tuple[float, int] | None = None
        for tid, p in self.tracks.items():
            if p.inside and 0 < t - p.last_t <= REID_WINDOW_S:
                d = math.dist(foot, p.last_foot)
                if d <= REID_DISTANCE_PX and (best is None or d < best[0]):
                    best = (d, tid)
        if best is None:
            return _Presence()
        return self.tracks.pop(best[1])

    def _alert(self, batch: DetectionBatch, track: int, p: _Presence) -> Alert:
        assert p.entered_t is not None
        dwell = batch.t - p.entered_t
        return Alert(
            type="unauthorized_entry",
            camera=batch.camera,
            zone=self.zone.id,
            t=p.entered_t,
            ts=p.entered_ts,
            track=track,
            confidence=round(p.conf, 3),
            explanation=(
                f"person track {track} entered restricted zone {self.zone.id} at t={p.entered_t:.1f}s"
                f" and stayed {dwell:.1f}s (dwell threshold {self.zone.dwell_s:.1f}s)"
            ),
        )


class RuleEngine:
    """All rules of a site, by camera. `process` takes one camera's batch at a time.

    Scans go to the departure rule of every zone of their station (`add_scan`); in replay,
    add each scan before the first batch whose `t` passes it, and `flush()` at the end.
    """

    def __init__(self, site: Site):
        self.rules: dict[str, list[RestrictedZoneRule | DepartureRule]] = {
            c.id: [] for c in site.cameras
        }
        self.departures: list[DepartureRule] = []
        for zone in site.zones:
            if zone.kind == "restricted":
                self.rules[zone.camera].append(RestrictedZoneRule(zone))
            else:
                rule = DepartureRule(zone)
                self.rules[zone.camera].append(rule)
                self.departures.append(rule)

    def process(self, batch: DetectionBatch) -> list[Alert]:
        return [a for rule in self.rules.get(batch.camera, []) for a in rule.update(batch)]

    def add_scan(self, scan: ScanEvent) -> list[Alert]:
        """Route a scan to its station's zones; it may end the grace window of others."""
        rules = [r for r in self.departures if r.zone.station == scan.station]
        return [a for r in rules for a in r.add_scan(scan)]

    def flush(self, t: float | None = None, camera: str | None = None) -> list[Alert]:
        """Decide pending departures (of `camera`, or all) whose grace ended before video time
        `t`; all of them when `t` is None, at the end of a replay when no scan can come."""
        rules = [r for r in self.departures if camera is None or r.zone.camera == camera]
        return [a for r in rules for a in r.flush(t)]
