"""Rules: pure state machines from tracked detections to alerts. No I/O, no clock.

Every rule compares capture times carried by the batches, never "now", so a backlog of
frames can never turn into a false alert.

Badges at a restricted zone's door authorize entries the way scans cover departures: an entry
is held pending until its badge window has passed in capture time, because badge readers report
late. Time bases as in alerts.departure: a badge with `t` (replay) is compared with the entry's
video time, one with only `ts` (live) with its wall clock, less the zone's `clock_skew_s`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from alerts.departure import HANDOVER_ADOPT_S, DepartureRule, event_id
from alerts.types import Alert, Stamped
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
# A person seen inside this many times and then lost there (behind a cage's mesh, a rack) was
# not seen leaving: once the dwell has passed, that is an entry. A glimpse is not enough.
LOST_INSIDE_MIN_SEEN = 3
# Badges older than the window and the dwell by this much can no longer cover an entry.
BADGE_KEEP_S = 60.0
STATE_VERSION = 1  # of RuleEngine.export_state's snapshot


@dataclass
class _Presence:
    """What the rule knows about one track with respect to one zone."""

    inside: bool = False
    entered_t: float | None = None  # video time of the current entry, while inside
    entered_ts: float | None = None
    outside_since: float | None = None  # start of the current spell outside after an entry
    counted: bool = False  # this entry has reached the dwell and been reported or held
    seen_inside: int = 0  # detections inside during this entry
    last_t: float = 0.0
    last_foot: tuple[float, float] = (0.0, 0.0)
    conf: float = 0.0
    ghost: bool = False  # handed over by the camera's previous owner, not yet matched to a track
    origin: int | None = None  # the track id this entry was first seen under, on any owner
    shift: float = 0.0  # as _Entry.shift, for the entry under way at a handover


@dataclass
class _Entry:
    """An entry that reached the dwell, waiting for its badge window to pass."""

    camera: str
    track: int
    t: float  # video time in this rule's time base (see `shift`)
    ts: float
    stayed: float  # seconds inside when it counted
    conf: float
    # Seconds added to `t` when the entry was handed over from a stream with another time base:
    # the alert reports `t - shift`, the video time in which the person was seen entering.
    shift: float = 0.0
    origin: int | None = None  # the track id it entered under (another owner's, after a handover)
    lost_at: float | None = None  # when it was last seen inside, if lost there (not seen leaving)

    @property
    def seen_t(self) -> float:
        return self.t - self.shift

    def to_json(self) -> dict[str, Any]:
        return {"track": self.track, "t": self.t, "ts": self.ts, "stayed": self.stayed,
                "conf": self.conf, "shift": self.shift, "origin": self.origin,
                "lost_at": self.lost_at}  # fmt: skip

    @classmethod
    def from_json(cls, camera: str, d: dict[str, Any], shift: float) -> _Entry:
        lost_at = d.get("lost_at")
        return cls(camera, int(d["track"]), d["t"] + shift, d["ts"], d["stayed"], d["conf"],
                   d["shift"] + shift, d["origin"], None if lost_at is None else lost_at + shift)  # fmt: skip


@dataclass
class _Badge(Stamped):
    name: str = ""  # the badge id, or who badged when the reader sends no id
    used_by: list[_Entry] = field(default_factory=list)

    def offset(self, e: _Entry) -> float:
        """Seconds from the badge to the entry."""
        return -self.seconds_after(e.t, e.ts)

    def key(self) -> tuple[str, float | None, float | None]:
        """Identifies the badge event on every worker (all of them read every badge)."""
        return (self.name, self.t, self.ts)


@dataclass(frozen=True)
class Schedule:
    """How an entry's local time of day is read for a zone's `open_hours`.

    Live, from the frame's wall clock `ts`; in replay, from `start` (the wall clock at video
    time 0) plus the video time, because a replayed frame's `ts` is only when it was decoded.
    """

    tz: ZoneInfo
    start: float | None = None

    def local(self, e: _Entry) -> datetime:
        epoch = e.ts if self.start is None else self.start + e.seen_t
        return datetime.fromtimestamp(epoch, self.tz)


@dataclass
class RestrictedZoneRule:
    """A person whose foot point enters `zone` and stays `dwell_s` is an entry; each
    entry not covered by a badge event gives one alert.

    The alert carries the entry's time, not the time the dwell was reached. A person must
    be outside for `exit_s` before a new entry counts, so a box jittering on the edge gives
    neither false nor repeated alerts. A badge covers up to `zone.persons_per_badge` entries
    within `zone.badge_window_s` before or after it; outside `zone.open_hours` (read by
    `schedule`, None: ignored) no badge covers an entry and it is reported at once.
    """

    zone: Zone
    schedule: Schedule | None = None
    cls: str = "person"
    tracks: dict[int, _Presence] = field(default_factory=dict)
    badges: list[_Badge] = field(default_factory=list)
    pending: list[_Entry] = field(default_factory=list)

    def update(self, batch: DetectionBatch) -> list[Alert]:
        """Follow the people of one frame; return the entries decided by its time."""
        alerts: list[Alert] = []
        for det in batch.tracked(self.cls):
            assert det.track is not None
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
                    p.counted, p.origin, p.shift, p.seen_inside = False, det.track, 0.0, 0
                p.seen_inside += 1
                assert p.entered_t is not None and p.entered_ts is not None
                if not p.counted and batch.t - p.entered_t >= self.zone.dwell_s:
                    alerts += self._count(p, det.track, batch, lost=False)
            elif p.inside:
                if p.outside_since is None:
                    p.outside_since = batch.t
                if batch.t - p.outside_since >= self.zone.exit_s:
                    p.inside, p.entered_t, p.outside_since = False, None, None
        seen = {det.track for det in batch.tracked(self.cls)}
        for tid, p in self.tracks.items():
            if (tid not in seen and p.inside and not p.counted and not p.ghost and p.entered_t is not None
                    and p.seen_inside >= LOST_INSIDE_MIN_SEEN and batch.t - p.entered_t >= self.zone.dwell_s):
                alerts += self._count(p, tid, batch, lost=True)  # fmt: skip
        for tid in [t for t, p in self.tracks.items() if batch.t - p.last_t > FORGET_S]:
            del self.tracks[tid]
        horizon = self.zone.badge_window_s + self.zone.dwell_s + BADGE_KEEP_S
        self.badges = [
            b
            for b in self.badges
            if (b.t is None or b.t >= batch.t - horizon)
            and (b.ts is None or b.ts >= batch.ts - horizon)
        ]
        return alerts + self._decide(lambda e: batch.t > e.t + self.zone.badge_window_s)

    def _count(self, p: _Presence, track: int, batch: DetectionBatch, *, lost: bool) -> list[Alert]:
        """The entry of `p` has lasted the dwell: reported now at closed hours, else held for
        its badge window. `lost`: the person was last seen inside, not seen leaving."""
        assert p.entered_t is not None and p.entered_ts is not None
        p.counted = True
        stayed = (p.last_t if lost else batch.t) - p.entered_t
        e = _Entry(batch.camera, track, p.entered_t, p.entered_ts, stayed, p.conf, p.shift, p.origin,
                   lost_at=p.last_t if lost else None)  # fmt: skip
        closed = self._closed(e)
        if not closed:
            self.pending.append(e)
            return []
        window = self._window(e)
        return [self._alert(e, [closed] + [f"badge {b.name} at {b.when()} admits no one at closed hours"
                                           for b in window])]  # fmt: skip

    def add_badge(self, scan: ScanEvent) -> list[Alert]:
        """Record a badge event at this zone; its time may end the window of earlier entries."""
        if scan.kind != "badge" or scan.zone != self.zone.id:
            return []
        extra = scan.model_extra or {}
        name = str(extra.get("badge") or extra.get("operator") or "(no id)")
        ts = None if scan.ts is None else scan.ts.timestamp() - self.zone.clock_skew_s
        b = _Badge(scan.t, ts, name=name)
        self.badges.append(b)
        return self._decide(lambda e: -b.offset(e) > self.zone.badge_window_s)

    def flush(self, t: float | None = None) -> list[Alert]:
        """Decide entries whose badge window ended before video time `t`; all when None."""
        if t is None:
            return self._decide(lambda e: True)
        return self._decide(lambda e: t > e.t + self.zone.badge_window_s)

    def export(self) -> dict[str, Any]:
        """What a camera's next owner needs to go on where this one stops: the people inside
        (so they are not reported again), the entries waiting for their badge window and the
        badges with the entries they admitted. JSON-able; times in this rule's video time base."""
        people = [
            {"track": tid, "entered_t": p.entered_t, "entered_ts": p.entered_ts,
             "outside_since": p.outside_since, "counted": p.counted, "last_t": p.last_t,
             "foot": list(p.last_foot), "conf": p.conf, "origin": p.origin, "shift": p.shift}
            for tid, p in self.tracks.items()
            if p.inside
        ]  # fmt: skip
        badges = [
            {"name": b.name, "t": b.t, "ts": b.ts, "used_by": [e.to_json() for e in b.used_by]}
            for b in self.badges
        ]
        return {"people": people, "pending": [e.to_json() for e in self.pending], "badges": badges}

    def reset(self) -> None:
        """Forget the people and pending entries (the camera went to another owner); badges
        stay, for they are the zone's door, whoever watches its camera."""
        self.tracks, self.pending = {}, []

    def restore(self, state: dict[str, Any], shift: float, t0: float) -> None:
        """Take over `export()`'s state from the camera's previous owner.

        `shift` maps its video times into this stream's (the same wall-clock instant); `t0` is
        this stream's first batch. The people inside come back as ghosts with negative ids: the
        first new track seen inside the zone within HANDOVER_ADOPT_S of `t0` inherits the
        nearest one's entry (`_adopt`), so it is not reported again. Badges, read by this worker
        too, are merged with the snapshot's, which know whom each admitted.
        """
        camera = self.zone.camera
        self.tracks = {}
        for i, d in enumerate(state.get("people", [])):
            since = d["outside_since"]
            self.tracks[-1 - i] = _Presence(
                inside=True, entered_t=d["entered_t"] + shift, entered_ts=d["entered_ts"],
                outside_since=None if since is None else since + shift, counted=d["counted"],
                last_t=t0, last_foot=(d["foot"][0], d["foot"][1]), conf=d["conf"], ghost=True,
                origin=d["origin"], shift=d["shift"] + shift,
            )  # fmt: skip
        self.pending = [_Entry.from_json(camera, d, shift) for d in state.get("pending", [])]
        local = {b.key(): b for b in self.badges}
        for d in state.get("badges", []):
            b = _Badge(None if d["t"] is None else d["t"] + shift, d["ts"], name=d["name"])
            b = local.get(b.key(), b)
            b.used_by = [_Entry.from_json(camera, e, shift) for e in d.get("used_by", [])]
            if b.key() not in local:
                self.badges.append(b)

    def _closed(self, e: _Entry) -> str | None:
        """Why the entry falls in closed hours, or None when the zone is open then."""
        if self.schedule is None or self.zone.open_at(local := self.schedule.local(e).time()):
            return None
        return (
            f"closed hours: entered at {local:%H:%M} {self.schedule.tz.key},"
            f" zone {self.zone.id} is open {', '.join(self.zone.open_hours)}"
        )

    def _decide(self, due: Callable[[_Entry], bool]) -> list[Alert]:
        """Decide the due entries: those a badge covers pass silently, the others alert."""
        ready = sorted((e for e in self.pending if due(e)), key=lambda e: e.t)
        if not ready:
            return []
        cover = self._assign()
        self.pending = [e for e in self.pending if not due(e)]
        held = {id(b): [e for e in self.pending if cover.get(id(e)) is b] for b in self.badges}
        alerts = []
        for e in ready:
            badge = cover.get(id(e))
            if badge is not None:
                badge.used_by.append(e)
            else:
                alerts.append(self._alert(e, self._badge_notes(e, held)))
        return alerts

    def _assign(self) -> dict[int, _Badge]:
        """Match pending entries to badges with room left, as people badge then walk in.

        First each badge, in time order, takes the first entries at or after it; then an entry
        still uncovered takes the earliest badge that followed it (a late reader).
        """
        w, n = self.zone.badge_window_s, self.zone.persons_per_badge
        entries = sorted(self.pending, key=lambda e: e.t)
        room = {id(b): n - len(b.used_by) for b in self.badges}
        cover: dict[int, _Badge] = {}
        for b in sorted(self.badges, key=_badge_time):
            for e in entries:
                if room[id(b)] > 0 and id(e) not in cover and 0 <= b.offset(e) <= w:
                    cover[id(e)], room[id(b)] = b, room[id(b)] - 1
        for e in entries:
            late = [b for b in self.badges if room[id(b)] > 0 and -w <= b.offset(e) < 0]
            if id(e) not in cover and late:
                b = max(late, key=lambda b: b.offset(e))
                cover[id(e)], room[id(b)] = b, room[id(b)] - 1
        return cover

    def _window(self, e: _Entry) -> list[_Badge]:
        w = self.zone.badge_window_s
        return sorted((b for b in self.badges if abs(b.offset(e)) <= w), key=_badge_time)

    def _badge_notes(self, e: _Entry, held: dict[int, list[_Entry]]) -> list[str]:
        """The badges considered for an uncovered entry, and whom each admitted instead.

        `held`: entries still pending that a badge is kept for.
        """
        z, w = self.zone, self.zone.badge_window_s
        window = self._window(e)
        notes = []
        for b in window:
            who = ", ".join(f"track {u.track}" for u in b.used_by + held.get(id(b), []))
            notes.append(
                f"badge {b.name} at {b.when()} authorized {who}"
                f" ({z.persons_per_badge} per badge)"
            )
        if window:
            near = min(window, key=lambda b: abs(b.offset(e)))
            notes.append(f"track {e.track} entered {_apart(near.offset(e))} badge {near.name}"
                         " without a badge of its own")  # fmt: skip
            return notes
        notes.append(f"no badge at zone {z.id} within {w:g} s of the entry")
        if self.badges:
            near = min(self.badges, key=lambda b: abs(b.offset(e)))
            notes.append(
                f"nearest badge: {near.name} at {near.when()}, the entry {_apart(near.offset(e))} it"
            )
        return notes

    def _adopt(self, foot: tuple[float, float], t: float) -> _Presence:
        """A track born inside the zone inherits the state of one recently lost there, or of
        the nearest person the camera's previous owner saw inside (a ghost), early enough
        after the handover."""
        ghosts = [
            (math.dist(foot, p.last_foot), tid)
            for tid, p in self.tracks.items()
            if p.ghost and 0 <= t - p.last_t <= HANDOVER_ADOPT_S
        ]
        if ghosts:
            p = self.tracks.pop(min(ghosts)[1])
            p.ghost = False
            return p
        best: tuple[float, int] | None = None
        for tid, p in self.tracks.items():
            if p.inside and not p.ghost and 0 < t - p.last_t <= REID_WINDOW_S:
                d = math.dist(foot, p.last_foot)
                if d <= REID_DISTANCE_PX and (best is None or d < best[0]):
                    best = (d, tid)
        if best is None:
            return _Presence()
        return self.tracks.pop(best[1])

    def _alert(self, e: _Entry, why: list[str]) -> Alert:
        return Alert(
            type="unauthorized_entry",
            camera=e.camera,
            zone=self.zone.id,
            t=e.seen_t,
            ts=e.ts,
            track=e.track,
            confidence=round(e.conf, 3),
            id=event_id("unauthorized_entry", e.camera, self.zone.id, _origin(e), e.ts),
            explanation="; ".join(
                [
                    f"person track {e.track} entered restricted zone {self.zone.id}"
                    f" at t={e.seen_t:.1f}s and stayed {e.stayed:.1f}s"
                    f" (dwell threshold {self.zone.dwell_s:.1f}s)"
                    + ("" if e.lost_at is None else
                       f"; last seen inside at t={e.lost_at - e.shift:.1f}s, not seen leaving"),
                    *why,
                ]
            ),
        )


def _origin(e: _Entry) -> int:
    return e.track if e.origin is None else e.origin


def _badge_time(b: _Badge) -> float:
    return b.t if b.t is not None else b.ts or 0.0


def _apart(offset: float) -> str:
    """'2.0 s after' for an entry 2 s after a badge."""
    return f"{abs(offset):.1f} s {'after' if offset >= 0 else 'before'}"


class RuleEngine:
    """All rules of a site, by camera. `process` takes one camera's batch at a time.

    Scans go to the departure rule of every zone of their station, badge events to the
    restricted zone they name (`add_scan`); in replay, add each before the first batch whose
    `t` passes it, and `flush()` at the end. `replay`: batches carry decode time as `ts`, so
    open hours apply only from the site's `replay_start`. A camera's state moves to another
    process with `export_state` there and `restore_state` here (docs/scaling.md).
    """

    def __init__(self, site: Site, replay: bool = False):
        tz = ZoneInfo(site.timezone)
        schedule: Schedule | None = Schedule(tz)
        if replay:
            start = site.replay_start
            if start is not None and start.tzinfo is None:
                start = start.replace(tzinfo=tz)
            schedule = None if start is None else Schedule(tz, start.timestamp())
        self.schedule = schedule
        self.rules: dict[str, list[RestrictedZoneRule | DepartureRule]] = {}
        self.departures: list[DepartureRule] = []
        self.restricted: list[RestrictedZoneRule] = []
        self._clock: dict[str, tuple[float, float]] = {}  # camera -> newest batch's (t, ts)
        self._parked: dict[str, dict[str, Any]] = {}  # camera -> state to restore at its next batch
        self.reload_zones(site)

    def reload_zones(self, site: Site) -> list[Alert]:
        """Take the zones of `site`, edited while running, between two batches.

        A zone that keeps its id, camera and kind keeps its rule's state (the tracks inside,
        pending entries and departures, scans and badges) and only takes the new polygon and
        settings; a new zone starts empty. A removed zone's pending events are decided at once
        and returned, so an edit never silently drops an alert that was waiting for its scan.
        """
        old: dict[str, RestrictedZoneRule | DepartureRule] = {
            r.zone.id: r for r in [*self.restricted, *self.departures]
        }
        gone: list[RestrictedZoneRule | DepartureRule] = []
        rules: dict[str, list[RestrictedZoneRule | DepartureRule]] = {c.id: [] for c in site.cameras}
        restricted: list[RestrictedZoneRule] = []
        departures: list[DepartureRule] = []
        for zone in site.zones:
            rule = old.pop(zone.id, None)
            if rule is not None and (rule.zone.camera, rule.zone.kind) != (zone.camera, zone.kind):
                gone.append(rule)
                rule = None
            if rule is None:
                restricted_zone = zone.kind == "restricted"
                rule = RestrictedZoneRule(zone, self.schedule) if restricted_zone else DepartureRule(zone)
            rule.zone = zone
            rules[zone.camera].append(rule)
            if isinstance(rule, RestrictedZoneRule):
                restricted.append(rule)
            else:
                departures.append(rule)
        self.rules, self.restricted, self.departures = rules, restricted, departures
        return [a for rule in [*gone, *old.values()] for a in rule.flush()]

    def process(self, batch: DetectionBatch) -> list[Alert]:
        state = self._parked.get(batch.camera)
        if state is not None:
            at_t, at_ts = state.get("at_t"), state.get("at_ts")
            if at_ts is not None and batch.ts < at_ts:
                return []  # a frame older than the state taken over: from a stream since closed
            del self._parked[batch.camera]
            # The same wall-clock instant in the two streams' video times: the previous owner's
            # (at_t, at_ts), this one's (batch.t, batch.ts).
            shift = 0.0 if at_t is None or at_ts is None else (batch.t - batch.ts) - (at_t - at_ts)
            zones = state.get("zones", {})
            for rule in self.rules.get(batch.camera, []):
                z = zones.get(rule.zone.id)
                if z is not None and z.get("kind") == rule.zone.kind:
                    rule.restore(z, shift, batch.t)
        self._clock[batch.camera] = (batch.t, batch.ts)
        return [a for rule in self.rules.get(batch.camera, []) for a in rule.update(batch)]

    def export_state(self, camera: str) -> dict[str, Any]:
        """The rule state of `camera` that must survive its move to another worker, as a small
        JSON-able snapshot for `restore_state` there: people inside restricted zones, entries
        and departures still waiting for their badge or scan window, units at the stations,
        badges and scans with what each covered. `at_t`/`at_ts`: the newest batch's capture
        times, which tie the snapshot's video times to the wall clock."""
        if camera in self._parked:
            return self._parked[camera]  # taken over but not applied yet: still the newest
        at = self._clock.get(camera)
        return {
            "v": STATE_VERSION,
            "camera": camera,
            "at_t": None if at is None else at[0],
            "at_ts": None if at is None else at[1],
            "zones": {r.zone.id: {"kind": r.zone.kind, **r.export()} for r in self.rules.get(camera, [])},
        }

    def restore_state(self, camera: str, state: dict[str, Any] | None) -> None:
        """Start `camera` over from `state` (from `export_state` on its previous owner), or
        empty when None: its people, entries, units and departures are replaced at once; the
        snapshot is applied at the camera's next batch, whose capture times map the snapshot's
        video times into the new stream's (video time starts over with each stream; the wall
        clock does not). Frames older than the snapshot are ignored until then. Windows then
        run out by capture time as usual, and a scan or badge arriving later still counts."""
        for rule in self.rules.get(camera, []):
            rule.reset()
        self._clock.pop(camera, None)
        self._parked.pop(camera, None)
        if state is not None:
            if state.get("v") != STATE_VERSION or state.get("camera") != camera:
                raise ValueError(f"camera {camera}: not a rule state snapshot of this camera")
            self._parked[camera] = state

    def add_scan(self, scan: ScanEvent) -> list[Alert]:
        """Route a scan to its station's zones, a badge to its zone; either may end the window
        of entries or departures held for it."""
        if scan.kind == "badge":
            return [a for r in self.restricted if r.zone.id == scan.zone for a in r.add_badge(scan)]
        rules = [r for r in self.departures if r.zone.station == scan.station]
        return [a for r in rules for a in r.add_scan(scan)]

    def flush(self, t: float | None = None, camera: str | None = None) -> list[Alert]:
        """Decide pending departures and entries (of `camera`, or all) whose window ended before
        video time `t`; all of them when `t` is None, at the end of a replay when no scan can come."""
        rules: list[RestrictedZoneRule | DepartureRule] = [*self.restricted, *self.departures]
        return [a for r in rules if camera is None or r.zone.camera == camera for a in r.flush(t)]
