"""Evidence for a case: a snapshot per alert, a clip from the recording, a signed export package.

An alert is often decided seconds after its moment (dwell, grace windows), so the detection
loop keeps a short ring of recent detected frames per camera (JPEG, with their detections) and
the snapshot is drawn from the frame nearest the alert's time, not from the newest one. Clips
are cut from the recording store without re-encoding, once the recording of their window is
complete. A package is a zip whose manifest lists the SHA-256 of every file and is signed with
the installation's Ed25519 key, so anyone holding the public key can tell whether any byte of
it changed (`verify_package`, `bondwatch evidence verify`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import getpass
import hashlib
import heapq
import json
import logging
import os
import threading
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from PIL import Image, ImageDraw, ImageFont

from alerts.cases import Case
from alerts.store import AlertStore
from alerts.types import TYPE_LABELS, Alert
from bondwatch.site import Site
from detectors.types import Detection, DetectionBatch
from streams.clips import ClipError, cut_clip
from streams.frame import Frame
from streams.recordings import RecordingStore, file_sha256

logger = logging.getLogger(__name__)

EVIDENCE_SUBDIR = "evidence"  # under the data directory: evidence/<alert id>/...
KEYS_SUBDIR = "keys"
PRIVATE_KEY_FILE = "evidence-ed25519.pem"
PUBLIC_KEY_FILE = "evidence-ed25519.pub.pem"
SNAPSHOT = "snapshot.jpg"
CLIP = "clip.mp4"  # cut_clip writes clip.json (sidecar) and clip-annotated.mp4 next to it
CLIP_PRE_S = 10.0
CLIP_POST_S = 10.0
# A window whose end lies this long in the past is as complete as it will get, even when no
# later segment ever came (the recorder died without reporting an outage).
CLIP_SETTLE_S = 60.0
RING_KEEP_S = 60.0
RING_MAX_BYTES = 48 << 20  # per camera: 60 s at 5 fps of 768x576 JPEGs is about 18 MB
JPEG_QUALITY = 85
TRACK_NEAR_S = 2.0  # a frame showing the alert's track wins over a nearer one within this

PACKAGE_FORMAT = "bondwatch-evidence-package/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PACKAGE_KEY = "public_key.pem"

# Burn-in colours (BGR). The alert's own box is magenta: no zone or other box uses it.
ALERT_BOX = (255, 0, 255)
OTHER_BOX = (0, 200, 0)
ZONE_COLOURS = {"restricted": (0, 220, 255), "station": (255, 200, 0)}


class NoEvidence(LookupError):
    """Nothing to show: unknown alert, no snapshot, or nothing recorded; one sentence."""


class ClipPending(Exception):
    """The clip's window is still being recorded; one sentence saying when to try again."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PackageUnreadable(Exception):
    """Not a readable evidence package (not a zip, no manifest): `verify` exits 2."""


class PackageInvalid(Exception):
    """A package whose file `name` or signature fails: `verify` exits 1."""

    def __init__(self, name: str, why: str):
        super().__init__(f"{name}: {why}")
        self.name = name


# -- the ring of recent detected frames ------------------------------------------------------


@dataclass(frozen=True)
class Shot:
    """One detected frame as the ring keeps it: JPEG bytes, capture times and detections."""

    camera: str
    t: float
    ts: float
    jpeg: bytes = field(repr=False)
    detections: tuple[Detection, ...]


class FrameRing:
    """Per camera, the detected frames of the last `keep_s` seconds (capture time), JPEG-encoded.

    Bounded twice: by time and by `max_bytes` per camera, the oldest going first, so a camera
    with a busy picture cannot grow it. Fed by the detection thread, read by whoever emits.
    """

    def __init__(
        self, keep_s: float = RING_KEEP_S, max_bytes: int = RING_MAX_BYTES, quality: int = JPEG_QUALITY
    ):
        self.keep_s = keep_s
        self.max_bytes = max_bytes
        self.quality = quality
        self._shots: dict[str, deque[Shot]] = {}
        self._bytes: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, frame: Frame, batch: DetectionBatch) -> None:
        ok, buf = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            logger.warning("camera %s: frame %d could not be JPEG-encoded", frame.camera, frame.index)
            return
        shot = Shot(frame.camera, frame.t, frame.ts, buf.tobytes(), batch.detections)
        with self._lock:
            shots = self._shots.setdefault(frame.camera, deque())
            shots.append(shot)
            size = self._bytes.get(frame.camera, 0) + len(shot.jpeg)
            while shots and (shots[0].ts < shot.ts - self.keep_s or size > self.max_bytes):
                size -= len(shots.popleft().jpeg)
            self._bytes[frame.camera] = size

    def nearest(self, camera: str, ts: float, track: int | None = None) -> Shot | None:
        """The shot nearest `ts`; one showing `track` when there is one within TRACK_NEAR_S."""
        with self._lock:
            shots = list(self._shots.get(camera, ()))
        if not shots:
            return None
        if track is not None:
            showing = [
                s for s in shots
                if abs(s.ts - ts) <= TRACK_NEAR_S and any(d.track == track for d in s.detections)
            ]  # fmt: skip
            if showing:
                shots = showing
        return min(shots, key=lambda s: abs(s.ts - ts))

    def __len__(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._shots.values())


# -- the snapshot's burn-in ------------------------------------------------------------------


def _highlighted(det: Detection, alert: Alert) -> bool:
    """The alert's own object: its track (a unit for a departure, else a person), or the person
    who carried the unit off when the unit was not seen leaving."""
    if det.track is None:
        return False
    if det.cls == "person" and det.track == alert.carrier:
        return True
    own_cls = "unit" if alert.type == "unscanned_departure" else "person"
    return det.cls == own_cls and det.track == alert.track


def render_snapshot(shot: Shot, alert: Alert, site: Site | None) -> bytes:
    """The shot with the alert's zone, its track's box (magenta) and the times burned in, the
    words in Chinese and English (zone and camera names as the site file gives them)."""
    image = cv2.imdecode(np.frombuffer(shot.jpeg, np.uint8), cv2.IMREAD_COLOR)
    texts: list[Text] = []
    zones = site.zones_of(alert.camera) if site is not None else []
    for zone in zones:
        pts = np.array(zone.polygon, np.int32).reshape(-1, 1, 2)
        own = zone.id == alert.zone
        cv2.polylines(image, [pts], True, ZONE_COLOURS[zone.kind], 3 if own else 1, cv2.LINE_AA)
        x, y = zone.polygon[0]
        label = _named(zone.name, zone.id)
        texts.append(Text(label, (int(x) + 4, int(y) + 18), ZONE_COLOURS[zone.kind], 16))
    for det in sorted(shot.detections, key=lambda d: _highlighted(d, alert)):
        own = _highlighted(det, alert)
        x1, y1, x2, y2 = (int(round(v)) for v in det.box)
        cv2.rectangle(image, (x1, y1), (x2, y2), ALERT_BOX if own else OTHER_BOX, 3 if own else 1)
        if det.track is not None:
            label = f"{det.cls} {det.track}"
            texts.append(Text(label, (x1, max(14, y1 - 5)), ALERT_BOX if own else OTHER_BOX, 15))
    tz_name = site.timezone if site is not None else "UTC"
    utc = datetime.fromtimestamp(shot.ts, UTC)
    local = utc.astimezone(ZoneInfo(tz_name))
    camera = next((c for c in site.cameras if c.id == alert.camera), None) if site is not None else None
    zone = next((z for z in zones if z.id == alert.zone), None)
    where = "   ".join(
        x for x in (
            f"摄像头 camera {_named(camera.name if camera else '', alert.camera)}",
            f"区域 zone {_named(zone.name if zone else '', alert.zone)}" if alert.zone else "",
            f"目标 track {alert.track}" if alert.track is not None else "",
            f"携带者 carried by person {alert.carrier}" if alert.carrier is not None else "",
        ) if x
    )  # fmt: skip
    labels = [TYPE_LABELS[lang].get(alert.type, alert.type) for lang in ("zh-CN", "en")]
    lines = [
        " / ".join(labels),
        where,
        f"{utc:%Y-%m-%d %H:%M:%S}.{utc.microsecond // 1000:03d} UTC",
        f"{local:%Y-%m-%d %H:%M:%S %z} {tz_name}",
    ]
    if alert.ts is not None and abs(shot.ts - alert.ts) >= 0.5:
        lines.append(f"画面距事件 frame {shot.ts - alert.ts:+.1f} s from the event")
    band = 14 + 24 * len(lines)
    image[:band] = (image[:band] * 0.35).astype(np.uint8)  # a dark band keeps the text legible
    texts += [Text(line, (10, 26 + 24 * i), (255, 255, 255), 19 if i else 21) for i, line in enumerate(lines)]
    texts.append(Text(f"告警 alert {alert.id}", (10, image.shape[0] - 10), (255, 255, 255), 14))
    image = _draw_texts(image, texts)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("the snapshot could not be JPEG-encoded")
    return buf.tobytes()


Colour = tuple[int, int, int]
# Fonts with Chinese glyphs, first found wins (Debian's fonts-noto-cjk, installed by setup).
CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
)


@dataclass(frozen=True)
class Text:
    text: str
    org: tuple[int, int]  # left end of the baseline, as for cv2.putText
    colour: Colour  # BGR
    px: int  # font size in pixels


def _named(name: str, ident: str | None) -> str:
    return f"{name} ({ident})" if name and name != ident else str(ident)


@functools.cache
def _font(px: int) -> ImageFont.FreeTypeFont | None:
    for path in CJK_FONTS:
        if Path(path).is_file():
            return ImageFont.truetype(path, px)
    logger.warning("no font with Chinese glyphs (%s): snapshot text falls back to ASCII", CJK_FONTS[0])
    return None


def _draw_texts(image: np.ndarray, texts: list[Text]) -> np.ndarray:
    """The texts drawn with a dark outline, in a CJK font where one is installed, else in
    OpenCV's Hershey font with what it cannot draw shown as '?'."""
    if not texts:
        return image
    if _font(texts[0].px) is None:
        for t in texts:
            _hershey(image, t.text.encode("ascii", "replace").decode(), t.org, t.colour, t.px / 30)
        return image
    canvas = Image.fromarray(np.ascontiguousarray(image[..., ::-1]))
    draw = ImageDraw.Draw(canvas)
    for t in texts:
        b, g, r = t.colour
        font = _font(t.px)
        draw.text(t.org, t.text, font=font, fill=(r, g, b), anchor="ls", stroke_width=2, stroke_fill=0)
    return np.asarray(canvas)[..., ::-1].copy()


def _hershey(image: np.ndarray, text: str, org: tuple[int, int], colour: Colour, scale: float) -> None:
    """Text with a dark outline made of shifted copies: a thicker stroke would widen the
    glyph advance in Hershey fonts and the outline would drift off the letters."""
    x, y = org
    for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1), (0, 2), (2, 0), (0, -2), (-2, 0)):
        cv2.putText(image, text, (x + dx, y + dy), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


# -- the installation's signing key ------------------------------------------------------------


def fingerprint(key: Ed25519PublicKey) -> str:
    """The first 128 bits of SHA-256 of the raw public key, in colon-separated groups."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    digest = hashlib.sha256(raw).hexdigest()[:32]
    return ":".join(digest[i : i + 4] for i in range(0, 32, 4))


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def installation_key(data_dir: str | Path) -> Ed25519PrivateKey:
    """The installation's signing key, created on first use under DATA/keys/ (private: 0600).

    The private file is created with its final mode in one call, so it is never readable by
    others, not even for a moment; two processes creating it at once keep the first one's.
    """
    folder = Path(data_dir) / KEYS_SUBDIR
    path = folder / PRIVATE_KEY_FILE
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            (folder / PUBLIC_KEY_FILE).write_bytes(public_pem(key.public_key()))
            logger.info("created the evidence signing key %s (%s)", path, fingerprint(key.public_key()))
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(pem: bytes, source: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise PackageUnreadable(f"{source} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise PackageUnreadable(f"{source} is not an Ed25519 public key")
    return key


# -- evidence of stored alerts ---------------------------------------------------------------


@dataclass(frozen=True)
class Exported:
    path: Path
    files: int
    fingerprint: str
    clip: bool


class Evidence:
    """Snapshots, clips and packages of the alerts in `store`, under DATA/evidence/.

    `ring` (the detection loop feeds it) is needed for snapshots, `recording` for clips; either
    may be None, and then that kind of evidence is simply not made. With `prepare_clips`, each
    alert's clips (original and annotated) are cut in the background as soon as its window is
    recorded, so the desk and an export need not wait for the re-encode. `site` gives the zones and
    time zone to burn in (replace the attribute when the site changes). A clip window that
    ended `settle_s` ago counts as recorded even when no later segment came.
    """

    def __init__(
        self,
        data_dir: str | Path,
        store: AlertStore,
        recording: RecordingStore | None,
        site: Site | None = None,
        ring: FrameRing | None = None,
        *,
        settle_s: float = CLIP_SETTLE_S,
        prepare_clips: bool = False,
    ):
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / EVIDENCE_SUBDIR
        self.store = store
        self.recording = recording
        self.site = site
        self.ring = ring
        self.settle_s = settle_s
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self.preparer = ClipPreparer(self) if prepare_clips and recording is not None else None

    def folder(self, alert_id: str) -> Path:
        if not alert_id.isalnum():  # ids are uuid hex; nothing else may reach the file system
            raise NoEvidence(f"unknown alert {alert_id!r}")
        return self.root / alert_id

    # snapshots

    def take_snapshot(self, alert: Alert) -> Path | None:
        """Render DATA/evidence/<id>/snapshot.jpg from the ring; None when there is no frame."""
        if self.ring is None or alert.ts is None:
            return None
        shown = alert.track if alert.carrier is None else alert.carrier  # a carried unit is not in view
        shot = self.ring.nearest(alert.camera, alert.ts, shown)
        if shot is None:
            logger.info("camera %s: no recent frame for a snapshot of alert %s", alert.camera, alert.id)
            return None
        path = self.folder(alert.id) / SNAPSHOT
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{SNAPSHOT}.part")
        tmp.write_bytes(render_snapshot(shot, alert, self.site))
        tmp.replace(path)
        if self.preparer is not None:
            self.preparer.schedule(alert)
        return path

    def snapshot(self, alert_id: str) -> Path:
        path = self.folder(alert_id) / SNAPSHOT
        if not path.is_file():
            if self.store.case(alert_id) is None:
                raise NoEvidence(f"unknown alert {alert_id!r}")
            raise NoEvidence(f"alert {alert_id} has no snapshot (no frame of its camera near its time)")
        return path

    # clips

    def clip(self, alert_id: str, *, annotated: bool = False) -> Path:
        """The case's clip (its alerts' times with pre- and post-roll), cut once it is recorded.

        Raises NoEvidence when there is nothing to cut, ClipPending while the window's end is
        still being recorded.
        """
        case = self.store.case(alert_id)
        if case is None:
            raise NoEvidence(f"unknown alert {alert_id!r}")
        camera, from_ts, to_ts = _window(case)
        if self.recording is None:
            raise NoEvidence("this installation does not record video")
        folder = self.folder(case.id)
        path = folder / CLIP
        with self._lock(case.id):
            cached = _cached_window(path.with_suffix(".json"))
            fresh = cached == (_iso(from_ts - CLIP_PRE_S), _iso(to_ts + CLIP_POST_S))
            annotated_path = folder / f"{path.stem}-annotated.mp4"
            if not (fresh and path.is_file() and (not annotated or annotated_path.is_file())):
                self._require_recorded(camera, to_ts + CLIP_POST_S)
                try:
                    cut_clip(
                        self.recording, camera, from_ts, to_ts, path,
                        pre_s=CLIP_PRE_S, post_s=CLIP_POST_S, annotated=annotated,
                    )  # fmt: skip
                except ClipError as e:
                    raise NoEvidence(str(e)) from None
        return annotated_path if annotated else path

    def _require_recorded(self, camera: str, until: float) -> None:
        assert self.recording is not None
        if self.recording.segments(camera, until, None):
            return  # a segment reaching past the window's end is indexed
        now = time.time()
        stopped = any(
            g.from_ts < until and (g.to_ts is None or g.to_ts >= until)
            for g in self.recording.gaps(camera)
        )
        if stopped or now > until + self.settle_s:
            return  # what is recorded now is all there will be
        wait = max(1.0, until - now) + 10.0
        raise ClipPending(
            f"the recording of camera {camera} up to {_iso(until)} is still being written;"
            f" the clip can be cut in about {wait:.0f} s",
            wait,
        )

    def _lock(self, case_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(case_id, threading.Lock())

    # packages

    def export(self, alert_id: str, out: str | Path, *, actor: str) -> Exported:
        """Write the case's signed package to `out` and record the export in the audit trail.

        Raises ClipPending while the clip's window is being recorded; a case without any
        recording (a camera that went offline) is packaged without a clip, and says so.
        """
        case = self.store.case(alert_id)
        if case is None:
            raise NoEvidence(f"unknown alert {alert_id!r}")
        files: dict[str, Path | bytes] = {}
        clip_note = ""
        try:
            annotated = self.clip(case.id, annotated=True)
            original = annotated.with_name(CLIP)
            files |= {"clip.mp4": original, "clip-annotated.mp4": annotated}
            files["clip.json"] = original.with_suffix(".json")
        except NoEvidence as e:
            clip_note = str(e)
        for alert in (case.alert, *case.members):
            snap = self.folder(alert.id) / SNAPSHOT
            if snap.is_file():
                files[f"snapshots/{alert.id}.jpg"] = snap
        files["case.json"] = _json(_case_record(case))
        key = installation_key(self.data_dir)
        pub = key.public_key()
        files[PACKAGE_KEY] = public_pem(pub)
        manifest = {
            "format": PACKAGE_FORMAT,
            "case": case.id,
            "alerts": [a.id for a in (case.alert, *case.members)],
            "created": _iso(time.time()),
            "created_by": actor,
            "clip": clip_note or "clip.mp4 (stream copy of the recording), clip-annotated.mp4",
            "signer": {
                "algorithm": "Ed25519",
                "fingerprint": fingerprint(pub),
                "public_key": base64.b64encode(
                    pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
                ).decode(),
            },
            "files": [
                {"path": name, "size": _size(content), "sha256": _sha256(content)}
                for name, content in sorted(files.items())
            ],
        }
        manifest_bytes = _json(manifest)
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.part")
        with zipfile.ZipFile(tmp, "w") as z:
            for name, content in sorted(files.items()):
                # video and JPEG are compressed already; deflate only what shrinks
                kind = zipfile.ZIP_DEFLATED if name.endswith((".json", ".pem")) else zipfile.ZIP_STORED
                if isinstance(content, bytes):
                    z.writestr(name, content, compress_type=kind)
                else:
                    z.write(content, name, compress_type=kind)
            z.writestr(MANIFEST, manifest_bytes, compress_type=zipfile.ZIP_DEFLATED)
            z.writestr(SIGNATURE, base64.b64encode(key.sign(manifest_bytes)) + b"\n")
        tmp.replace(out)
        self.store.audit.record(
            actor, "evidence_export", f"alert:{case.id}",
            {"files": len(files), "sha256": file_sha256(out), "clip": not clip_note},
        )  # fmt: skip
        logger.info("exported the evidence of case %s to %s (%d files)", case.id, out, len(files))
        return Exported(out, len(files), fingerprint(pub), not clip_note)


NICE = 10  # the priority of background clip cutting (19 = lowest)


class ClipPreparer:
    """Cuts each scheduled alert's clips, original and annotated, once its window is recorded:
    one background thread, oldest due first, retried while the window is still being written."""

    RETRY_S = 10.0

    def __init__(self, evidence: Evidence, clock: Callable[[], float] = time.time):
        self.evidence = evidence
        self.clock = clock
        self._due: list[tuple[float, float, str]] = []  # (when, given up at, alert id): a heap
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self.prepared = 0

    def schedule(self, alert: Alert) -> None:
        ts = alert.ts if alert.ts is not None else self.clock()
        first = ts + CLIP_POST_S + self.RETRY_S
        with self._wake:
            heapq.heappush(self._due, (first, first + self.evidence.settle_s + 60.0, alert.id))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="evidence-clips", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        # The re-encode must never starve detection: this thread (and the encoder threads it
        # starts, which inherit it) runs at a low priority. Linux gives each thread its own.
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        except (AttributeError, OSError) as e:
            logger.info("clip preparation runs at normal priority: %s", e)
        while True:
            with self._wake:
                while not self._due or self._due[0][0] > self.clock():
                    # At most a second: the wall clock may be stepped (NTP) while this waits.
                    due = self._due[0][0] - self.clock() if self._due else None
                    self._wake.wait(None if due is None else min(1.0, max(0.05, due)))
                when, give_up, alert_id = heapq.heappop(self._due)
            try:
                self.evidence.clip(alert_id, annotated=True)
                self.prepared += 1
            except ClipPending:
                again = max(when, self.clock()) + self.RETRY_S
                if again < give_up:
                    with self._wake:
                        heapq.heappush(self._due, (again, give_up, alert_id))
            except NoEvidence as e:
                logger.info("no clip for alert %s: %s", alert_id, e)
            except Exception:  # one bad clip must not stop the others
                logger.exception("preparing the clips of alert %s failed", alert_id)


def _window(case: Case) -> tuple[str, float, float]:
    """The case's camera and the first and last event times of its alerts."""
    times = [a.ts for a in (case.alert, *case.members) if a.ts is not None and a.camera == case.alert.camera]
    if not times:
        raise NoEvidence(f"alert {case.id} has no wall-clock time to cut a clip at")
    return case.alert.camera, min(times), max(times)


def _cached_window(sidecar: Path) -> tuple[str, str] | None:
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
        return data["requested_from"], data["requested_to"]
    except (OSError, ValueError, KeyError):
        return None


def _case_record(case: Case) -> dict[str, object]:
    return {
        "case": case.id,
        "state": case.state,
        "resolution": case.resolution,
        "alerts": [a.to_dict(live=True) for a in (case.alert, *case.members)],
        "history": [
            {
                "action": h.action, "actor": h.actor, "at": _iso(h.at), "state": h.state,
                "note": h.note, "resolution": h.resolution,
            }
            for h in case.history
        ],
    }  # fmt: skip


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()


def _size(content: Path | bytes) -> int:
    return len(content) if isinstance(content, bytes) else content.stat().st_size


def _sha256(content: Path | bytes) -> str:
    return hashlib.sha256(content).hexdigest() if isinstance(content, bytes) else file_sha256(content)


def cli_actor() -> str:
    """Who exported from the command line, for the audit trail."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


# -- verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    files: int
    fingerprint: str


def verify_package(path: str | Path, key: Ed25519PublicKey | None = None) -> Verified:
    """Check the signature of the manifest, then every file against it, in manifest order.

    With `key` (the installation's public key, obtained separately) the package must be signed
    by it; without, by the key it carries, which proves integrity but not origin. Raises
    PackageInvalid naming the first file that fails, or PackageUnreadable.
    """
    try:
        z = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise PackageUnreadable(f"{path} is not a readable zip file: {e}") from None
    with z:
        members = z.namelist()
        names = set(members)
        if twice := sorted(n for n in names if members.count(n) > 1):
            raise PackageInvalid(twice[0], "appears twice in the archive (a second copy was added)")
        if MANIFEST not in names:
            raise PackageUnreadable(f"{path} has no {MANIFEST}: not a BondWatch evidence package")
        manifest_bytes = _member(z, MANIFEST)
        if SIGNATURE not in names:
            raise PackageInvalid(SIGNATURE, "missing: the package is not signed")
        # With a key given, the signature is checked before anything in the manifest is read.
        signer = key or _carried_key(_parse_manifest(manifest_bytes))
        try:
            signer.verify(base64.b64decode(_member(z, SIGNATURE).strip(), validate=True), manifest_bytes)
        except (InvalidSignature, binascii.Error, ValueError):
            raise PackageInvalid(
                MANIFEST,
                f"the signature ({SIGNATURE}) does not match: the manifest or its signature was"
                " changed" + (", or another key signed it" if key is not None else ""),
            ) from None
        listed: set[str] = set()
        for entry in _entries(_parse_manifest(manifest_bytes)):
            name, sha = entry["path"], entry["sha256"]
            listed.add(name)
            if name not in names:
                raise PackageInvalid(name, "missing from the package")
            if hashlib.sha256(_member(z, name)).hexdigest() != sha:
                raise PackageInvalid(name, "SHA-256 differs from the signed manifest (the file was changed)")
        if extra := sorted(names - listed - {MANIFEST, SIGNATURE}):
            raise PackageInvalid(extra[0], "not listed in the signed manifest (the file was added)")
    return Verified(len(listed), fingerprint(signer))


def _member(z: zipfile.ZipFile, name: str) -> bytes:
    try:
        return z.read(name)
    except (zipfile.BadZipFile, OSError, EOFError) as e:  # a CRC error names the damaged member
        raise PackageInvalid(name, f"damaged in the archive ({e})") from None


def _parse_manifest(data: bytes) -> dict[str, object]:
    try:
        manifest = json.loads(data)
    except ValueError:
        raise PackageInvalid(MANIFEST, "not valid JSON (the manifest was changed)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != PACKAGE_FORMAT:
        raise PackageInvalid(MANIFEST, f"not a {PACKAGE_FORMAT} manifest (the manifest was changed)")
    return manifest


def _carried_key(manifest: dict[str, object]) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(manifest["signer"]["public_key"], validate=True)  # type: ignore[index]
        return Ed25519PublicKey.from_public_bytes(raw)
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise PackageInvalid(MANIFEST, "no usable signer public key (the manifest was changed)") from None


def _entries(manifest: dict[str, object]) -> Iterable[dict[str, str]]:
    files = manifest.get("files")
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("sha256"), str)
        for f in files
    ):
        raise PackageInvalid(MANIFEST, "its file list is malformed (the manifest was changed)")
    return files
