"""The site file: cameras, zones and stations of one workshop, strictly validated.

Every stage reads its configuration from these models, so a mistake in the YAML is caught
once, at load time, with the YAML path and line number of the offending value.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bondwatch import yamlcheck
from bondwatch.yamlcheck import LocatedError

ID_PATTERN = r"^[a-z0-9_-]+$"
KEY_PATTERN = r"^[A-Za-z0-9_.-]+$"
Id = Annotated[str, Field(pattern=ID_PATTERN, description="lower-case letters, digits, _ and -")]
Key = Annotated[str, Field(pattern=KEY_PATTERN, description="letters, digits, _ . and -")]
Point = tuple[float, float]
HOURS_PATTERN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-(?:([01]\d|2[0-3]):([0-5]\d)|24:00)$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Camera(Strict):
    id: Id = Field(description="unique camera id, used in alerts and file names")
    url: str = Field(description="rtsp://, rtsps:// URL or a video file path")
    name: str = Field("", description="human-readable name shown on the dashboard")
    factory: Id | None = Field(
        None,
        description="the factory (bonded repair company) whose workshop the camera watches; its"
        " operators see only its cameras and their alerts. None: customs staff only",
    )
    detect_fps: float = Field(5.0, gt=0, le=60, description="frames per second sent to the detector")
    transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport")
    motion_gate: bool = Field(
        False,
        description="skip detection while the picture does not change (see `detection`);"
        " never longer than `detection.max_skip_s`, never while a unit is near a station",
    )

    @field_validator("url")
    @classmethod
    def _url_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("camera url is empty")
        return v


class Zone(Strict):
    id: Key = Field(description="unique zone id, used in alerts")
    camera: Id = Field(description="the camera whose frame the polygon is drawn on")
    kind: Literal["restricted", "station"] = Field(
        description="restricted: a person inside is an unauthorized entry; station: a workstation"
    )
    polygon: list[Point] = Field(description="polygon vertices in pixels of that camera's frame")
    station: Key | None = Field(None, description="for a station zone, the station (scanner) id")
    name: str = Field("", description="human-readable name")
    dwell_s: float = Field(
        1.0,
        ge=0,
        description="seconds a person must stay inside before an entry counts;"
        " station: seconds a unit must have been there before its leaving counts",
    )
    exit_s: float = Field(
        1.0, ge=0, description="seconds a person must stay outside before the next entry counts"
    )
    exit_detections: int = Field(
        3,
        ge=1,
        description="station: a unit seen outside in this many detections in a row has left it",
    )
    scan_before_s: float = Field(
        60.0, ge=0, description="station: a scan this long before a unit leaves covers it"
    )
    scan_grace_s: float = Field(
        10.0,
        ge=0,
        description="station: a scan arriving this long after a unit left still covers it;"
        " the alert waits that long (in capture time) before it is raised",
    )
    clock_skew_s: float = Field(
        0.0,
        description="seconds the scanner's (station) or badge reader's (restricted) clock runs"
        " ahead of the cameras'; subtracted from live scan and badge times (`ts`)",
    )
    persons_per_badge: int = Field(
        1,
        ge=1,
        description="restricted: person entries one badge event at this zone authorizes;"
        " anyone beyond them is an unauthorized entry",
    )
    badge_window_s: float = Field(
        10.0,
        ge=0,
        description="restricted: an entry this long before or after a badge event is covered by"
        " it; an entry's alert waits that long (in capture time) for a late badge. 0: no wait",
    )
    open_hours: list[str] = Field(
        default_factory=list,
        description="restricted: local times (site `timezone`) when badged entry is allowed, such"
        " as ['08:00-12:00', '13:00-18:00'] ('22:00-06:00' spans midnight); outside them every"
        " entry is unauthorized, badge or not. Empty: always open. Live, an entry's time is its"
        " frame's wall clock; replay ignores open_hours unless the site sets `replay_start`,"
        " because a replayed frame's wall clock is when it was decoded, not when it was filmed",
    )

    @field_validator("polygon")
    @classmethod
    def _polygon_has_area(cls, v: list[Point]) -> list[Point]:
        if len(v) < 3:
            raise ValueError(f"a polygon needs at least 3 points, got {len(v)}")
        return v

    @field_validator("open_hours")
    @classmethod
    def _hours_well_formed(cls, v: list[str]) -> list[str]:
        for span in v:
            m = HOURS_PATTERN.match(span)
            if m is None or m.group(1, 2) == m.group(3, 4):
                raise ValueError(f"open hours {span!r} are not HH:MM-HH:MM (like 08:00-12:00)")
        return v

    def open_at(self, moment: time) -> bool:
        """Whether local time of day `moment` falls in the open hours (always, without any)."""
        if not self.open_hours:
            return True
        hm = (moment.hour, moment.minute)
        for span in self.open_hours:
            start, end = span.split("-")
            lo = tuple(int(x) for x in start.split(":"))
            hi = tuple(int(x) for x in end.split(":"))
            if (lo <= hm < hi) if lo < hi else (hm >= lo or hm < hi):
                return True
        return False

    @model_validator(mode="after")
    def _station_named(self) -> Zone:
        if self.kind == "station" and self.station is None:
            raise ValueError("a station zone must name its `station`")
        return self


class Station(Strict):
    id: Key = Field(description="station id, as sent by its scanner")
    name: str = Field("", description="human-readable name")
    step: Literal["in", "repair", "out"] | None = Field(
        None,
        description="the step of the unit's way through the workshop its scans record (进 in,"
        " 修 repair, 出 out), for the serial trace; a scan's own `step` field wins",
    )


class Recording(Strict):
    enabled: bool = Field(True, description="record every camera continuously (no re-encoding)")
    segment_s: float = Field(10.0, gt=1, le=300, description="length of a recording segment")
    max_age_days: float | None = Field(
        90.0, gt=0, description="delete segments older than this, unless held by an alert or export"
    )
    quota_gb: float | None = Field(None, gt=0, description="disk quota for recordings, oldest first")


class RetentionSettings(Strict):
    days: float = Field(
        1096, gt=0,
        description="keep alerts with their cases, deliveries and evidence, and audit entries, this"
        " many days (default 3 years, the customs audit period); alerts of open cases stay longer",
    )  # fmt: skip


class DetectionSettings(Strict):
    model: str | None = Field(
        None, description="model file (.pt or .onnx); default: the bundled person+unit model"
    )
    conf: float = Field(0.1, gt=0, lt=1, description="lowest detection confidence kept")
    batch_size: int = Field(
        8, ge=1, le=64, description="most frames, one per camera, sent to the model in one call"
    )
    sessions: int = Field(
        1,
        ge=1,
        le=64,
        description="model sessions run side by side on a CPU, a batch split over them (one thread"
        " each; 1: one session on all cores but one); replay uses one per core",
    )
    batch_timeout_ms: float = Field(
        20.0,
        ge=0,
        le=1000,
        description="how long the first frame of a batch waits for other cameras' frames",
    )
    motion_threshold: float = Field(
        2.0,
        gt=0,
        description="motion gating: mean grey-level change (0-255) of a thumbnail that counts as motion",
    )
    max_skip_s: float = Field(
        1.0, gt=0, description="motion gating: longest time a camera goes without detection"
    )


# The alert types of alerts/types.py, repeated because the shared package imports no stage;
# tests/test_notify.py checks that the two lists agree.
AlertTypeName = Literal[
    "unauthorized_entry", "unscanned_departure", "camera_offline", "camera_online", "camera_tamper"
]


# Apprise's plain HTTP posts: read by programs, which can drop a repeat by the alert id.
WEBHOOK_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})


class NotifyChannel(Strict):
    id: Id = Field(description="unique channel id, stored with each delivery")
    url: str = Field(
        description="Apprise URL (json://, mailto://, wecombot://, dingtalk://, feishu://, ...);"
        " ${VAR} is replaced from the environment when sending, so secrets stay out of the file"
    )
    rules: list[Literal[AlertTypeName, "all"]] = Field(
        ["all"], description="the alert types sent to this channel; `all` (the default): every type"
    )
    language: Literal["zh-CN", "en"] = Field("zh-CN", description="language of the messages")
    interrupted: Literal["resend", "drop"] | None = Field(
        None,
        description="a send cut short by a crash: `resend` it (at least once: the receiver drops a"
        " repeat by the alert id in the message) or `drop` it (at most once: marked failed, never"
        " repeated). Default: resend on webhooks (json://, xml://, form://), drop on channels people"
        " read (e-mail, chat), where a repeat is a second message",
    )

    def resends_interrupted(self) -> bool:
        if self.interrupted is not None:
            return self.interrupted == "resend"
        return self.url.split("://", 1)[0].lower() in WEBHOOK_SCHEMES

    @field_validator("rules", mode="before")
    @classmethod
    def _all_alone(cls, v: object) -> object:
        return [v] if v == "all" else v  # `rules: all` reads as well as `rules: [all]`


class NotifyRateLimit(Strict):
    max_per_minute: int = Field(
        10, ge=1, description="most messages per channel per minute; the rest go out as a digest"
    )


class NotifyRetry(Strict):
    max_attempts: int = Field(5, ge=1, description="attempts per message before it is marked failed")
    backoff_s: float = Field(2.0, gt=0, description="wait before the second attempt, doubled after")
    backoff_max_s: float = Field(300.0, gt=0, description="longest wait between two attempts")


class Notifications(Strict):
    channels: list[NotifyChannel] = Field(
        default_factory=list, description="where alerts are sent; none: no notifications"
    )
    rate_limit: NotifyRateLimit = Field(
        default_factory=NotifyRateLimit, description="per-channel message rate"
    )
    digest_after: int = Field(
        5, ge=1, description="more alerts than this due at once on a channel go out as one digest"
    )
    snapshot_wait_s: float = Field(
        5.0, ge=0, description="how long a message waits for the alert's snapshot to attach it"
    )
    retry: NotifyRetry = Field(default_factory=NotifyRetry, description="retries with backoff")
    send_timeout_s: float = Field(
        120.0, gt=0, description="a send not finished after this long was cut short by a crash:"
        " resent or dropped as its channel's `interrupted` says (a live sender's sends are left alone)",
    )
    dashboard_url: str | None = Field(
        None, description="the dashboard address officers use, for the link in each message"
    )

    @model_validator(mode="after")
    def _unique_channels(self) -> Notifications:
        ids = [c.id for c in self.channels]
        if dupes := sorted({x for x in ids if ids.count(x) > 1}):
            raise ValueError(f"duplicate channel id(s) {', '.join(dupes)}")
        return self


class Site(Strict):
    name: str = Field("BondWatch site", description="site name shown on the dashboard")
    recording: Recording = Field(default_factory=Recording, description="continuous recording")
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings, description="how long alerts, evidence and audit are kept"
    )
    detection: DetectionSettings = Field(
        default_factory=DetectionSettings, description="the model and how frames are batched for it"
    )
    cameras: list[Camera] = Field(min_length=1, description="the cameras of the site")
    zones: list[Zone] = Field(default_factory=list, description="zones drawn on camera frames")
    stations: list[Station] = Field(default_factory=list, description="scanner stations")
    timezone: str = Field(
        "UTC", description="IANA time zone of the site (like Asia/Shanghai), for `open_hours`"
    )
    replay_start: datetime | None = Field(
        None,
        description="replay only: local wall-clock time (site `timezone` unless given) at which"
        " the replayed videos begin; with it, `open_hours` apply in replay at replay_start + t",
    )
    notifications: Notifications = Field(
        default_factory=Notifications, description="alert notifications through Apprise"
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}: use an IANA name like Asia/Shanghai") from None
        return v

    @model_validator(mode="after")
    def _references(self) -> Site:
        _unique("cameras", [c.id for c in self.cameras])
        _unique("zones", [z.id for z in self.zones])
        cameras = {c.id for c in self.cameras}
        for i, zone in enumerate(self.zones):
            if zone.camera not in cameras:
                raise LocatedError(
                    ("zones", i, "camera"),
                    f"zone {zone.id!r} is on unknown camera {zone.camera!r}"
                    f" (cameras: {', '.join(sorted(cameras))})",
                )
        return self

    def camera(self, camera_id: str) -> Camera:
        return next(c for c in self.cameras if c.id == camera_id)

    def zones_of(self, camera_id: str) -> list[Zone]:
        return [z for z in self.zones if z.camera == camera_id]


def _unique(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i, x in enumerate(ids):
        if x in seen:
            raise LocatedError((what, i, "id"), f"duplicate id {x!r} in {what}")
        seen.add(x)


class SiteError(yamlcheck.ConfigError):
    """A site file that cannot be used; `errors` holds one line per problem."""


def load_site(path: str | Path) -> Site:
    path = Path(path)
    return parse_site(yamlcheck.read(path, "site file", SiteError), str(path), base=path.parent)


def parse_site(text: str, name: str = "<site>", base: Path | None = None) -> Site:
    """Parse and validate a site file; relative video-file URLs resolve against `base`."""
    try:
        root, data = yamlcheck.load(text)
    except yamlcheck.YamlError as e:
        raise SiteError(name, e.errors) from None
    if not isinstance(data, dict):
        raise SiteError(name, ["the site file must be a mapping with `cameras:` and `zones:`"])
    if base is not None:
        for cam in data.get("cameras") or []:
            if isinstance(cam, dict) and isinstance(cam.get("url"), str):
                cam["url"] = _resolve_url(cam["url"], base)
        detection = data.get("detection")
        if isinstance(detection, dict) and isinstance(detection.get("model"), str):
            detection["model"] = _resolve_url(detection["model"], base)
    try:
        return Site.model_validate(data)
    except ValidationError as e:
        raise SiteError(name, yamlcheck.describe(e, root)) from None


def _resolve_url(url: str, base: Path) -> str:
    if re.match(r"^[a-z][a-z0-9+.-]*://", url) or Path(url).is_absolute():
        return url
    return str((base / url).resolve())


def save_zones(path: str | Path, zones: list[Zone], now: float | None = None) -> tuple[Site, Path]:
    """Write `zones` as the `zones:` of the site file at `path`; the new Site and the backup.

    Only the `zones:` block is rewritten, so the rest of the file (comments, `${VAR}` secrets,
    relative paths) stays as the site's author wrote it. The result must load exactly as
    `load_site` would read it at the next start (SiteError otherwise, the file untouched); the
    previous file is kept next to it as `NAME.TIMESTAMP.bak`, and the new one replaces it
    atomically, so a crash leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    text = yamlcheck.read(path, "site file", SiteError)
    block = yaml.dump(
        {"zones": [_zone_yaml(z) for z in zones]},
        Dumper=_ZoneDumper, allow_unicode=True, sort_keys=False, width=200,
    )  # fmt: skip
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    span = next(
        ((k.start_mark.index, v.end_mark.index) for k, v in getattr(root, "value", []) if k.value == "zones"),
        None,
    )
    if span is None:
        new_text = text + ("" if text.endswith("\n") or not text else "\n") + block
    else:
        start, end = span
        if not text[start:end].endswith("\n"):
            block = block.rstrip("\n")
        new_text = text[:start] + block + text[end:]
    site = parse_site(new_text, str(path), base=path.parent)
    stamp = datetime.fromtimestamp(now, UTC) if now is not None else datetime.now(UTC)
    backup = path.with_name(f"{path.name}.{stamp:%Y%m%dT%H%M%S.%fZ}.bak")
    shutil.copy2(path, backup)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(new_text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return site, backup


class _Flow(list):  # type: ignore[type-arg]
    """A polygon, written on one line as the site file's authors write it."""


class _ZoneDumper(yaml.SafeDumper):
    pass


_ZoneDumper.add_representer(
    _Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


def _zone_yaml(zone: Zone) -> dict[str, object]:
    """A zone as a YAML mapping: the fields that differ from their defaults, whole pixels as ints."""
    data = zone.model_dump(mode="json", exclude_defaults=True)
    data["polygon"] = _Flow(
        _Flow(int(v) if float(v).is_integer() else round(v, 1) for v in point) for point in zone.polygon
    )
    return data
