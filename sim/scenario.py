"""The scenario file: a workshop's layout, cameras and a script of what its people do.

Strict pydantic models (unknown keys forbidden) so a typo in a scenario is one clear line with
its YAML path and line number, not a silently ignored option. docs/scenarios.md describes it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from bondwatch import yamlcheck
from bondwatch.site import ID_PATTERN, KEY_PATTERN
from sim.geometry import centroid, distance, polygon_area

Id = Annotated[str, Field(pattern=ID_PATTERN, description="lower-case letters, digits, _ and -")]
Key = Annotated[str, Field(pattern=KEY_PATTERN, description="letters, digits, _ . and -")]
XY = tuple[float, float]
Place = Annotated[
    Key | XY,
    Field(description="a named place (station, door, zone or `places` entry) or [x, y] metres"),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Layout(Strict):
    width_m: float = Field(12.0, gt=2, le=200, description="floor extent along x, metres")
    depth_m: float = Field(8.0, gt=2, le=200, description="floor extent along y, metres")
    wall_height_m: float = Field(3.2, gt=2, le=20, description="height of the walls")
    canvas: tuple[int, int] = Field((1280, 720), description="video width, height in pixels")
    fps: float = Field(10.0, gt=0, le=60, description="frames per second of every video")
    duration_s: float = Field(gt=0, le=3600, description="length of every video")
    floor: Literal["epoxy", "concrete", "tiles"] = Field("epoxy", description="floor finish")

    @field_validator("canvas")
    @classmethod
    def _even_canvas(cls, v: tuple[int, int]) -> tuple[int, int]:
        w, h = v
        if not (64 <= w <= 3840 and 64 <= h <= 2160) or w % 2 or h % 2:
            raise ValueError(f"canvas must be even sizes within 64..3840 x 64..2160, got {w}x{h}")
        return v


class CameraSpec(Strict):
    id: Id = Field(description="camera id; the video is CAM.mp4")
    name: str = Field("", description="human-readable name")
    pose: Literal["overhead", "oblique"] = Field(
        description="overhead looks straight down; oblique looks at `look_at`"
    )
    position: tuple[float, float, float] = Field(description="x, y, height of the lens, metres")
    look_at: XY | None = Field(None, description="floor point at the image centre (oblique)")
    hfov_deg: float = Field(80.0, gt=20, lt=150, description="horizontal field of view")

    @model_validator(mode="after")
    def _pose(self) -> CameraSpec:
        if self.position[2] < 1.0:
            raise ValueError("a camera must hang at least 1 m above the floor")
        if self.pose == "oblique" and self.look_at is None:
            raise ValueError("an oblique camera needs `look_at: [x, y]`")
        if self.pose == "overhead" and self.look_at is not None:
            raise ValueError("an overhead camera looks straight down; remove `look_at`")
        return self


class Bench(Strict):
    center: XY = Field(description="centre of the bench top, metres")
    size: tuple[float, float] = Field((1.6, 0.7), description="length and depth, metres")
    angle_deg: float = Field(0.0, description="rotation of the bench about its centre")
    height: float = Field(0.85, gt=0.4, lt=1.3, description="height of the work surface")


class StationSpec(Strict):
    id: Key = Field(description="station id, as its scanner reports it; also its zone id")
    name: str = Field("", description="human-readable name")
    bench: Bench
    worker_side: Literal["front", "back"] = Field(
        "front", description="front: the worker stands on the +y side of the unrotated bench"
    )
    zone: list[XY] | None = Field(
        None, description="floor polygon of the station; default: bench plus the worker's spot"
    )
    camera: Id | None = Field(None, description="camera the zone is drawn on; default: first seeing it")


class RestrictedSpec(Strict):
    id: Key = Field(description="zone id, used in alerts")
    name: str = Field("", description="human-readable name")
    kind: Literal["bonded", "old_parts", "other"] = Field(
        "bonded", description="bonded storage cage, old-parts (旧件) cage, or other area"
    )
    polygon: list[XY] = Field(description="floor polygon, metres")
    gate: XY | None = Field(None, description="gate in the fence; default: middle of 1st edge")
    fence: bool = Field(True, description="draw a mesh fence around it")
    dwell_s: float = Field(1.0, ge=0, description="seconds inside before an entry counts")
    camera: Id | None = Field(None, description="camera the zone is drawn on; default: first seeing it")

    @field_validator("polygon")
    @classmethod
    def _area(cls, v: list[XY]) -> list[XY]:
        if len(v) < 3 or polygon_area(v) < 0.25:
            raise ValueError("a zone polygon needs at least 3 points and 0.25 m² of area")
        return v


class Door(Strict):
    id: Key
    at: XY = Field(description="point on a wall where the door is")
    width_m: float = Field(1.0, gt=0.5, le=4)


UnitKind = Literal["watch", "band", "phone"]
Container = Literal["bare", "tray", "bin"]


class UnitSpec(Strict):
    id: Id
    serial: str = Field(pattern=r"^[A-Za-z0-9-]{3,32}$", description="serial the scanner reads")
    kind: UnitKind = Field("phone", description="watch, band or phone")
    container: Container = Field("bare", description="bare, in a tray, or in a bin")
    at: Place | None = Field(
        None, description="station (on its bench) or floor place; none: handed in at a door"
    )
    variant: int | None = Field(None, ge=0, description="colour variant (default: by position in the list)")


class WalkTo(Strict):
    walk_to: Place
    via: list[Place] = Field(default_factory=list, description="waypoints, in order")
    speed: float = Field(1.3, ge=0.3, le=3.0, description="metres per second")


class Wait(Strict):
    wait: float = Field(gt=0, description="stand still for this many seconds")


class Until(Strict):
    until: float = Field(ge=0, description="stand still until this scenario time")


class Sit(Strict):
    sit: float = Field(gt=0, description="sit (at a station: work) for this many seconds")


class PickUp(Strict):
    pick_up: Id = Field(description="unit within reach, or handed in when standing at a door")


class PutDown(Strict):
    put_down: Id = Field(description="unit carried; lands on the bench when at a station")
    slot: int | None = Field(None, ge=0, le=5, description="bench slot (default: first free)")


class Scan(Strict):
    scan: Id = Field(description="unit held or on the bench of the station the actor is at")
    skip_scan: bool = Field(False, description="go through the motion but send no scan")
    scan_delay_s: float = Field(0.0, ge=0, description="the scan event arrives this much later")


class Enter(Strict):
    enter: Key = Field(description="restricted zone to walk into through its gate, then back out")
    authorized: bool = Field(False, description="badge in (badge event, no alert)")
    stay_s: float = Field(4.0, gt=0, description="seconds spent inside")
    to: Place | None = Field(None, description="where to stand inside; default the centroid")


class HandOff(Strict):
    hand_off: Id = Field(description="give a carried unit out through the door the actor is at")


class Leave(Strict):
    leave: Key = Field(description="walk out through this door and disappear")


VERBS = ("walk_to", "wait", "until", "sit", "pick_up", "put_down", "scan", "enter", "hand_off", "leave")


def _verb(v: Any) -> str | None:
    if isinstance(v, dict):
        found = [k for k in VERBS if k in v]
        return found[0] if len(found) == 1 else None
    return next((k for k in VERBS if hasattr(v, k)), None)


Action = Annotated[
    Annotated[WalkTo, Tag("walk_to")]
    | Annotated[Wait, Tag("wait")]
    | Annotated[Until, Tag("until")]
    | Annotated[Sit, Tag("sit")]
    | Annotated[PickUp, Tag("pick_up")]
    | Annotated[PutDown, Tag("put_down")]
    | Annotated[Scan, Tag("scan")]
    | Annotated[Enter, Tag("enter")]
    | Annotated[HandOff, Tag("hand_off")]
    | Annotated[Leave, Tag("leave")],
    Discriminator(
        _verb,
        custom_error_type="action_verb",
        custom_error_message="an action needs exactly one verb: " + ", ".join(VERBS),
    ),
]

Outfit = Literal["blue", "navy", "grey", "white", "orange", "green", "black", "red"]


class ActorSpec(Strict):
    id: Id = Field(description="worker id; also the track of its person boxes")
    badge: str | None = Field(None, description="badge id for authorized entries (default B-ID)")
    start: Place = Field(description="where the worker stands at `appear_at`")
    appear_at: float = Field(0.0, ge=0, description="scenario time the worker appears")
    outfit: Outfit | None = Field(None, description="work clothes colour (default from the seed)")
    height_m: float = Field(1.72, ge=1.45, le=2.0)
    script: list[Action] = Field(default_factory=list, description="actions, one after another")


class RandomSpec(Strict):
    """Volume from the seed: workers fetch units, repair, scan (or not), take them away."""

    workers: int = Field(3, ge=0, le=40, description="generated workers")
    units: int = Field(8, ge=0, le=500, description="generated units")
    skip_scan_p: float = Field(0.2, ge=0, le=1, description="probability a departure is unscanned")
    late_scan_p: float = Field(0.1, ge=0, le=1, description="probability a scan comes late")
    late_scan_s: tuple[float, float] = Field((2.0, 10.0), description="range of the lateness")
    repair_s: tuple[float, float] = Field((20.0, 50.0), description="range of a repair's length")
    cage_p: float = Field(0.3, ge=0, le=1, description="probability a worker visits a cage")
    authorized_p: float = Field(0.5, ge=0, le=1, description="probability a visit is badged")
    walk_past_p: float = Field(0.3, ge=0, le=1, description="probability of a walk past a cage")


class TruthSpec(Strict):
    """How the perfect observer decides; the service's rules should be configured alike."""

    scan_window_s: float = Field(60.0, ge=0, description="a scan this long before departure counts")
    scan_grace_s: float = Field(10.0, ge=0, description="a scan this long after departure counts")
    exit_s: float = Field(1.0, ge=0, description="outside this long before leaving counts")
    station_min_s: float = Field(
        2.0, ge=0, description="a unit must have been at a station this long to depart from it"
    )


class RenderSpec(Strict):
    noise: float = Field(2.5, ge=0, le=20, description="sensor noise, grey levels (sigma)")
    lighting: float = Field(0.12, ge=0, le=0.5, description="amplitude of brightness drift")
    motion_blur: bool = Field(True, description="smear walking people along their motion")
    osd: bool = Field(True, description="burn the camera id and a clock into the picture")
    crf: int = Field(27, ge=0, le=51, description="x264 quality (lower is better)")


class Scenario(Strict):
    name: str = Field(description="scenario name")
    description: str = Field("", description="what happens in it")
    factory: Id | None = Field(
        None, description="the factory whose workshop this is: the `factory` of every camera in site.yaml"
    )
    timezone: str | None = Field(None, description="the site's IANA time zone (Asia/Shanghai), for site.yaml")
    layout: Layout
    cameras: list[CameraSpec] = Field(min_length=1)
    stations: list[StationSpec] = Field(default_factory=list)
    restricted: list[RestrictedSpec] = Field(default_factory=list)
    doors: list[Door] = Field(default_factory=list)
    places: dict[str, XY] = Field(default_factory=dict, description="named floor points")
    units: list[UnitSpec] = Field(default_factory=list)
    actors: list[ActorSpec] = Field(default_factory=list)
    random: RandomSpec | None = Field(None, description="generated volume on top of the script")
    truth: TruthSpec = Field(default_factory=TruthSpec)
    render: RenderSpec = Field(default_factory=RenderSpec)

    def place_names(self) -> dict[str, str]:
        """Every name a `Place` may use, and what kind of thing it names."""
        names: dict[str, str] = {}
        for kind, ids in (
            ("station", [s.id for s in self.stations]),
            ("zone", [z.id for z in self.restricted]),
            ("door", [d.id for d in self.doors]),
            ("place", list(self.places)),
        ):
            for i in ids:
                names[i] = kind
        return names


class ScenarioError(yamlcheck.ConfigError):
    """A scenario that cannot be rendered; `errors` holds one line per problem."""


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    return parse_scenario(yamlcheck.read(path, "scenario", ScenarioError), str(path))


def parse_scenario(text: str, name: str = "<scenario>") -> Scenario:
    try:
        root, data = yamlcheck.load(text)
    except yamlcheck.YamlError as e:
        raise ScenarioError(name, e.errors) from None
    if not isinstance(data, dict):
        raise ScenarioError(name, ["a scenario is a mapping with `layout:` and `cameras:`"])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        raise ScenarioError(name, yamlcheck.describe(e, root, _with_verb_keys)) from None
    problems = [yamlcheck.located(loc, msg, root) for loc, msg in check(scenario)]
    if problems:
        raise ScenarioError(name, problems)
    return scenario


def _with_verb_keys(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the union tags pydantic inserts (`walk_to`, `tuple[float, float]`) from a path.

    The tag of a script action duplicates the key that follows it; union member names are not
    YAML keys at all. What is left walks the YAML tree, so the line lookup finds the value.
    """
    out: list[Any] = []
    for i, part in enumerate(loc):
        if isinstance(part, str) and ("[" in part or part in ("str", "constrained-str", "function-after")):
            continue
        nxt = loc[i + 1] if i + 1 < len(loc) else None
        if isinstance(part, str) and part in VERBS and i >= 2 and loc[i - 2] == "script":
            if nxt is not None:
                continue
        out.append(part)
    return tuple(out)


def check(s: Scenario) -> list[tuple[tuple[Any, ...], str]]:
    """Cross-references and geometry that pydantic cannot see one field at a time."""
    errs: list[tuple[tuple[Any, ...], str]] = []
    names = s.place_names()
    seen: dict[str, tuple[str, ...]] = {}
    for what, items in (
        ("stations", s.stations),
        ("restricted", s.restricted),
        ("doors", s.doors),
    ):
        for i, item in enumerate(items):
            if item.id in seen:
                errs.append(((what, i, "id"), f"id {item.id!r} is used twice"))
            seen[item.id] = (what,)
    for what, items in (("cameras", s.cameras), ("units", s.units), ("actors", s.actors)):
        ids: set[str] = set()
        for i, item in enumerate(items):
            if item.id in ids:
                errs.append(((what, i, "id"), f"duplicate id {item.id!r} in {what}"))
            ids.add(item.id)
    for name in s.places:
        if name in seen:
            errs.append((("places", name), f"place {name!r} has the id of a station/zone/door"))
    cams = {c.id for c in s.cameras}
    lw, ld = s.layout.width_m, s.layout.depth_m

    def on_floor(p: tuple[float, float]) -> bool:
        return -0.01 <= p[0] <= lw + 0.01 and -0.01 <= p[1] <= ld + 0.01

    def place(loc: tuple[Any, ...], p: Any) -> None:
        if isinstance(p, str):
            if p not in names:
                errs.append((loc, f"unknown place {p!r} (known: {', '.join(sorted(names))})"))
        elif not on_floor(p):
            errs.append((loc, f"point {list(p)} is off the {lw} x {ld} m floor"))

    for i, st in enumerate(s.stations):
        if st.camera is not None and st.camera not in cams:
            errs.append((("stations", i, "camera"), f"unknown camera {st.camera!r}"))
        if not on_floor(st.bench.center):
            errs.append((("stations", i, "bench", "center"), "bench is off the floor"))
    for i, z in enumerate(s.restricted):
        if z.camera is not None and z.camera not in cams:
            errs.append((("restricted", i, "camera"), f"unknown camera {z.camera!r}"))
        if z.gate is not None and _edge_dist(z.gate, z.polygon) > 0.3:
            errs.append((("restricted", i, "gate"), "the gate must lie on the zone's edge"))
    for i, d in enumerate(s.doors):
        x, y = d.at
        if min(abs(x), abs(x - lw), abs(y), abs(y - ld)) > 0.3:
            errs.append((("doors", i, "at"), f"door {d.id!r} is not on a wall of the floor"))
    for name, p in s.places.items():
        place(("places", name), p)
    units = {u.id for u in s.units}
    for i, u in enumerate(s.units):
        if u.at is not None:
            place(("units", i, "at"), u.at)
    zones = {z.id for z in s.restricted}
    doors = {d.id for d in s.doors}
    for i, a in enumerate(s.actors):
        place(("actors", i, "start"), a.start)
        for j, act in enumerate(a.script):
            loc = ("actors", i, "script", j)
            if isinstance(act, WalkTo):
                place((*loc, "walk_to"), act.walk_to)
                for k, v in enumerate(act.via):
                    place((*loc, "via", k), v)
            elif isinstance(act, Enter):
                if act.enter not in zones:
                    errs.append(((*loc, "enter"), f"unknown restricted zone {act.enter!r}"))
                if act.to is not None:
                    place((*loc, "to"), act.to)
            elif isinstance(act, Leave) and act.leave not in doors:
                errs.append(((*loc, "leave"), f"unknown door {act.leave!r}"))
            for key in ("pick_up", "put_down", "scan", "hand_off"):
                uid = getattr(act, key, None)
                if uid is not None and uid not in units:
                    errs.append(((*loc, key), f"unknown unit {uid!r}"))
    return errs


def _edge_dist(p: tuple[float, float], poly: list[XY]) -> float:
    best = math.inf
    for i, a in enumerate(poly):
        b = poly[i - 1]
        best = min(best, _seg_dist(p, a, b))
    return best


def _seg_dist(p: XY, a: XY, b: XY) -> float:
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    n = dx * dx + dy * dy
    t = 0.0 if n == 0 else max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / n))
    return distance(p, (ax + t * dx, ay + t * dy))


def gate_of(z: RestrictedSpec) -> tuple[XY, XY]:
    """The gate point and the unit normal pointing out of the zone there."""
    poly = z.polygon
    if z.gate is None:
        a, b = poly[0], poly[1]
        g = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
    else:
        g = z.gate
        a, b = min(
            ((poly[i - 1], poly[i]) for i in range(len(poly))),
            key=lambda e: _seg_dist(g, e[0], e[1]),
        )
    dx, dy = b[0] - a[0], b[1] - a[1]
    n = math.hypot(dx, dy) or 1.0
    nx, ny = dy / n, -dx / n
    c = centroid(poly)
    if (g[0] + nx * 0.1 - c[0]) ** 2 + (g[1] + ny * 0.1 - c[1]) ** 2 < (g[0] - c[0]) ** 2 + (
        g[1] - c[1]
    ) ** 2:
        nx, ny = -nx, -ny
    return g, (nx, ny)
