"""Evidence against real parts: the PETS clip recorded into real segments, alerts stored by the
real AlertSink in SQLite, snapshots drawn from the frame ring, clips cut from the recording,
packages signed with a real Ed25519 key and checked by the `bondwatch` command.

The recording is the first 30 s of PETS 2009 fed into a recorder as if it had arrived live,
ending about now, so an alert near its end still waits for footage (409) while one in the
middle can be cut. The ring is fed with the ground-truth boxes as detections (detection is not
what is under test here), every second frame, as a 5 fps detector would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import wait_for
from fastapi.testclient import TestClient
from rtsp import make_h264_mp4

from alerts.bus import AlertBus
from alerts.evidence import (
    ALERT_BOX,
    ClipPending,
    Evidence,
    FrameRing,
    NoEvidence,
    PackageInvalid,
    Shot,
    installation_key,
    render_snapshot,
    verify_package,
)
from alerts.outbox import Outbox
from alerts.store import AlertStore
from alerts.types import Alert
from bondwatch.accounts import Accounts
from bondwatch.cli import main
from bondwatch.db import database_url
from bondwatch.service import AlertSink
from bondwatch.site import Site, parse_site
from dashboard.app import create_app
from detectors.types import Detection, DetectionBatch
from streams.frame import Frame
from streams.recorder import Recorder
from streams.recordings import RecordingStore, open_store
from streams.source import VideoSource

PETS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pets2009-s2l1"
SECONDS = 30
FPS = 10
SITE_YAML = """
name: evidence test
timezone: Asia/Shanghai
cameras:
  - id: pets
    url: rtsp://127.0.0.1:8554/pets
    factory: f1
  - id: dock
    url: rtsp://127.0.0.1:8554/dock
    factory: f1
zones:
  - id: lawn
    camera: pets
    kind: restricted
    polygon: [[300, 150], [700, 150], [700, 420], [300, 420]]
"""
TRACK = 15  # a PETS person walking through the middle of the picture around t = 12 s
PASSWORDS = {"admin": "admin-pass-1", "officer": "officer-pass-1", "operator": "operator-pass-1"}
OUTSIDER = ("outsider", "outsider-pass-1")  # an operator of another factory than the cameras'


@dataclass(frozen=True)
class World:
    data: Path
    t0: float  # wall clock of video time 0
    site: Site
    store: AlertStore
    recording: RecordingStore
    ring: FrameRing
    evidence: Evidence
    sink: AlertSink
    frames: dict[int, np.ndarray]  # video frame index -> raw BGR picture (the ring's frames)


def ground_truth() -> dict[int, tuple[Detection, ...]]:
    boxes: dict[int, list[Detection]] = {}
    for line in (PETS_DIR / "gt-frames-0001-0400.txt").read_text().splitlines():
        f, tid, x, y, w, h = (float(v) for v in line.split(",")[:6])
        boxes.setdefault(int(f) - 1, []).append(Detection("person", 0.9, (x, y, x + w, y + h), int(tid)))
    return {i: tuple(d) for i, d in boxes.items()}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    mp = pytest.MonkeyPatch()
    mp.delenv("DATABASE_URL", raising=False)
    data = tmp_path_factory.mktemp("data")
    video = make_h264_mp4(PETS_DIR / "vtest.avi", seconds=SECONDS)
    t0 = time.time() - SECONDS
    recording = open_store(data)
    recorder = Recorder(recording, "pets", segment_s=2.0)
    truth = ground_truth()
    ring = FrameRing()
    frames: dict[int, np.ndarray] = {}
    with VideoSource(str(video), camera="pets") as src:
        for frame in src.frames(on_packet=lambda p: recorder.write(dataclasses.replace(p, ts=t0 + p.t))):
            if frame.index % 2:
                continue
            live = Frame("pets", frame.index, frame.t, t0 + frame.t, frame.image)
            batch = DetectionBatch(
                "pets", frame.index, live.t, live.ts, 768, 576, truth.get(frame.index, ())
            )
            ring.add(live, batch)
            frames[frame.index] = frame.image
    assert recorder.close()
    site = parse_site(SITE_YAML)
    store = AlertStore(database_url(data))
    # A window counts as recorded by age only after ten minutes: longer than this module runs.
    evidence = Evidence(data, store, recording, site, ring, settle_s=600.0)
    sink = AlertSink(Outbox(store), recording, evidence)
    yield World(data, t0, site, store, recording, ring, evidence, sink, frames)
    store.close()
    mp.undo()


def entry(world: World, at: float, track: int = TRACK) -> Alert:
    """An unauthorized entry of `track` at video time `at`, emitted through the real sink.

    Entries of one track within a minute join one case; give other alerts other tracks.
    """
    alert = Alert(
        type="unauthorized_entry", camera="pets", zone="lawn", track=track, t=at, ts=world.t0 + at
    )
    world.sink.emit(alert)
    return alert


@pytest.fixture(scope="module")
def alert(world: World) -> Alert:
    return entry(world, 11.95)


@pytest.fixture(scope="module")
def package(world: World, alert: Alert, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "case.zip"
    world.evidence.export(alert.id, out, actor="officer")
    return out


def verify_cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["evidence", "verify", *args])
    return code, out.getvalue()


# ---------- snapshots ----------


def test_the_snapshot_shows_the_alerts_box_zone_and_time(world: World, alert: Alert) -> None:
    path = world.data / "evidence" / alert.id / "snapshot.jpg"
    snap = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert snap.shape == (576, 768, 3)
    assert alert.ts is not None
    shot = world.ring.nearest("pets", alert.ts, TRACK)
    assert shot is not None and abs(shot.ts - alert.ts) <= 0.1  # the frame of the event
    raw = world.frames[round(shot.t * FPS)]
    x1, y1, x2, y2 = (round(v) for v in next(d for d in shot.detections if d.track == TRACK).box)

    def magenta(image: np.ndarray, ys: slice | int, xs: slice | int) -> bool:
        b, g, r = (float(c) for c in image[ys, xs].reshape(-1, 3).mean(axis=0))
        return b > 170 and r > 170 and g < 100

    assert ALERT_BOX == (255, 0, 255)  # what `magenta` looks for
    edges = [(y1, slice(x1 + 2, x2 - 1)), (y2, slice(x1 + 2, x2 - 1)), (slice(y1 + 2, y2 - 1), x1)]
    for ys, xs in edges:  # the track's box is burned in, where the footage has no magenta
        assert magenta(snap, ys, xs) and not magenta(raw, ys, xs), (ys, xs)
    assert not magenta(snap, slice(y1 + 6, y2 - 6), slice(x1 + 6, x2 - 6))  # a frame, not a fill
    # the zone's edge (yellow) runs along y = 150 from x = 300 to 700, away from the header
    b, g, r = snap[150, 320:680].reshape(-1, 3).mean(axis=0)
    assert g > 170 and r > 170 and b < 110
    # the header band carries the type, camera and times: darkened, with white text on it
    band = snap[:70].astype(int)
    assert band.mean() < raw[:70].mean() * 0.7 and (band.min(axis=2) > 200).sum() > 300


def test_the_snapshot_writes_chinese_names_in_a_cjk_font() -> None:
    """Officers read the zone and camera as the site names them: 保税区, not boxes or '???'."""
    grey = cv2.imencode(".jpg", np.full((576, 768, 3), 90, np.uint8))[1].tobytes()
    alert = Alert(type="unauthorized_entry", camera="c", zone="z", t=1.0, ts=1_780_000_000.0, track=1)

    def snapshot(name: str) -> np.ndarray:
        site = parse_site(
            f"cameras: [{{id: c, url: x.mp4}}]\nzones: [{{id: z, name: '{name}', camera: c,"
            " kind: restricted, polygon: [[100, 300], [400, 300], [400, 500], [100, 500]]}]"
        )
        shot = Shot("c", 1.0, 1_780_000_000.0, grey, (Detection("person", 0.9, (150, 350, 200, 450), 1),))
        return cv2.imdecode(np.frombuffer(render_snapshot(shot, alert, site), np.uint8), cv2.IMREAD_COLOR)

    label = (slice(300, 325), slice(100, 300))  # where the zone's name is written
    chinese, question_marks = snapshot("保税区")[label], snapshot("???")[label]
    assert (chinese.max(axis=2) > 200).sum() > 80  # the glyphs are drawn ...
    assert np.abs(chinese.astype(int) - question_marks).max() > 100  # ... and they are not '???'
    header = snapshot("保税区")[:30, :300]
    assert (header.max(axis=2) > 200).sum() > 300  # 未授权进入 / Unauthorized entry


def test_a_carried_off_unit_shows_the_person_who_carried_it() -> None:
    """The unit is out of sight in the carrier's hand: the carrier's box is the magenta one, and
    another person's box and a unit that happens to share the carrier's id (another tracker) not."""
    grey = cv2.imencode(".jpg", np.full((576, 768, 3), 90, np.uint8))[1].tobytes()
    alert = Alert(type="unscanned_departure", camera="c", zone="s", station="s", t=1.0, ts=1_780_000_000.0,
                  track=3, carrier=5)  # fmt: skip
    dets = (
        Detection("person", 0.9, (150, 250, 250, 450), 5),
        Detection("person", 0.9, (450, 250, 550, 450), 6),
        Detection("unit", 0.9, (600, 480, 640, 500), 5),
    )
    shot = Shot("c", 1.0, 1_780_000_000.0, grey, dets)
    snap = cv2.imdecode(np.frombuffer(render_snapshot(shot, alert, None), np.uint8), cv2.IMREAD_COLOR)

    def magenta(x1: int, y1: int, x2: int) -> bool:
        b, g, r = (float(c) for c in snap[y1, x1 + 3 : x2 - 2].reshape(-1, 3).mean(axis=0))
        return b > 170 and r > 170 and g < 100

    assert magenta(150, 450, 250)  # the carrier's bottom edge
    assert not magenta(450, 450, 550)
    assert not magenta(600, 500, 640)


def test_an_alert_without_a_frame_is_stored_without_a_snapshot(world: World) -> None:
    offline = Alert(type="camera_offline", camera="dock", t=3.0, ts=world.t0 + 3.0)
    world.sink.emit(offline)
    assert world.store.case(offline.id) is not None
    assert not (world.data / "evidence" / offline.id).exists()
    with pytest.raises(NoEvidence, match="no snapshot"):
        world.evidence.snapshot(offline.id)


def test_a_failing_snapshot_never_loses_the_alert(world: World, caplog: pytest.LogCaptureFixture) -> None:
    blocked = Alert(type="unauthorized_entry", camera="pets", zone="lawn", track=99, t=12.0,
                    ts=world.t0 + 12.0)  # fmt: skip
    (world.data / "evidence").mkdir(exist_ok=True)
    (world.data / "evidence" / blocked.id).write_text("a file where the folder should go")
    world.sink.emit(blocked)  # does not raise
    assert world.store.case(blocked.id) is not None
    assert f"no snapshot for alert {blocked.id}" in caplog.text


@pytest.mark.parametrize(("keep_s", "max_frames", "kept"), [(5.0, 1000, 26), (60.0, 10, 10)])
def test_the_ring_is_bounded_by_time_and_bytes(
    world: World, keep_s: float, max_frames: int, kept: int
) -> None:
    """100 copies of one picture at 5 fps: the last `keep_s` of them, or what fits the bytes."""
    image = world.frames[0]
    size = len(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1])
    ring = FrameRing(keep_s=keep_s, max_bytes=max_frames * size)
    for i in range(100):
        ts = world.t0 + i * 0.2
        ring.add(Frame("pets", i, i * 0.2, ts, image), DetectionBatch("pets", i, i * 0.2, ts, 768, 576, ()))
    assert len(ring) == kept
    newest, oldest = ring.nearest("pets", world.t0 + 1000), ring.nearest("pets", world.t0)
    assert newest is not None and oldest is not None
    assert newest.ts == world.t0 + 99 * 0.2 and oldest.ts == world.t0 + (100 - kept) * 0.2


# ---------- clips ----------


def test_the_clip_is_a_stream_copy_with_pre_and_post_roll(world: World, alert: Alert) -> None:
    assert alert.ts is not None
    path = world.evidence.clip(alert.id)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["reencoded"] is False and sidecar["complete"] is True
    assert sidecar["start_ts"] <= alert.ts - 10 and sidecar["end_ts"] >= alert.ts + 10
    assert sidecar["start_ts"] > alert.ts - 12  # pre-roll starts at the keyframe before, no earlier
    with VideoSource(str(path)) as src:
        assert sum(1 for _ in src.packets()) == sidecar["frames"] >= 200
    assert world.recording.held("pets", alert.ts - 10, alert.ts + 10)

    # the annotated copy is a second file; the original is cut again bit for bit the same
    original = path.read_bytes()
    annotated = world.evidence.clip(alert.id, annotated=True)
    assert annotated.name == "clip-annotated.mp4" and annotated.read_bytes() != original
    assert path.read_bytes() == original


def test_a_clip_waits_for_its_window_to_be_recorded(world: World) -> None:
    late = entry(world, 25.0, track=101)  # the window runs 5 s past the end of the recording, into the future
    with pytest.raises(ClipPending, match="still being written") as err:
        world.evidence.clip(late.id)
    assert err.value.retry_after_s > 0


def test_clips_are_cut_in_the_background_once_their_window_is_recorded(world: World) -> None:
    evidence = Evidence(
        world.data, world.store, world.recording, world.site, world.ring, settle_s=600.0, prepare_clips=True
    )
    assert evidence.preparer is not None
    sink = AlertSink(Outbox(world.store), world.recording, evidence)
    ready = Alert(type="unauthorized_entry", camera="pets", zone="lawn", track=103, t=8.0, ts=world.t0 + 8.0)
    late = Alert(type="unauthorized_entry", camera="pets", zone="lawn", track=104, t=25.0, ts=world.t0 + 25.0)
    clock = [world.t0 + 8.0]  # the moment of `ready`
    evidence.preparer.clock = lambda: clock[0]
    sink.emit(ready)
    sink.emit(late)
    folder = world.data / "evidence"
    time.sleep(1.5)
    assert not (folder / ready.id / "clip-annotated.mp4").exists()  # not before its post-roll is due
    clock[0] = world.t0 + 50.0  # both windows' post-roll has passed; only `ready`'s is recorded
    assert wait_for(lambda: evidence.preparer.prepared == 1, 60)
    assert (folder / ready.id / "clip.mp4").is_file() and (folder / ready.id / "clip-annotated.mp4").is_file()
    time.sleep(0.5)
    assert not (folder / late.id / "clip.mp4").exists()  # still being written: tried again later
    assert evidence.preparer._due and evidence.preparer._due[0][2] == late.id


def test_no_clip_where_nothing_was_recorded(world: World) -> None:
    old = entry(world, -3600.0, track=102)  # an hour before the recording started
    with pytest.raises(NoEvidence, match="no recording of camera pets"):
        world.evidence.clip(old.id)


# ---------- packages ----------


def test_the_package_verifies_and_holds_everything(
    world: World, alert: Alert, package: Path
) -> None:
    code, out = verify_cli(str(package))
    key = installation_key(world.data).public_key()
    with zipfile.ZipFile(package) as z:
        names = sorted(z.namelist())
        manifest = json.loads(z.read("manifest.json"))
        case = json.loads(z.read("case.json"))
    expected = sorted([
        "case.json", "clip-annotated.mp4", "clip.json", "clip.mp4", "manifest.json", "manifest.sig",
        "public_key.pem", f"snapshots/{alert.id}.jpg",
    ])  # fmt: skip
    assert names == expected
    fp = manifest["signer"]["fingerprint"]
    assert (code, out) == (0, f"verified: {len(names) - 2} files, signed by {fp}\n")
    assert case["alerts"][0]["id"] == alert.id and case["history"][0]["action"] == "raised"
    with zipfile.ZipFile(package) as z:  # the original clip is the cut file, byte for byte
        assert z.read("clip.mp4") == (world.data / "evidence" / alert.id / "clip.mp4").read_bytes()
    # the key: private file readable by its owner only; the public one verifies with --key
    private = world.data / "keys" / "evidence-ed25519.pem"
    assert private.stat().st_mode & 0o777 == 0o600
    pub = world.data / "keys" / "evidence-ed25519.pub.pem"
    assert verify_cli(str(package), "--key", str(pub))[0] == 0
    assert verify_package(package, key).fingerprint == fp
    exports = world.store.audit.entries("evidence_export")
    assert [(e.actor, e.target) for e in exports][-1] == ("officer", f"alert:{alert.id}")


def rewrite(package: Path, out: Path, name: str, change: bytes | None = None) -> Path:
    """A copy of `package` with member `name` replaced by `change`, or one byte flipped."""
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == name:
                if change is None:
                    raw = bytearray(data)
                    raw[len(raw) // 2] ^= 0x01
                    change = bytes(raw)
                data = change
            dst.writestr(info, data)
    return out


def test_a_one_byte_change_in_any_file_fails_naming_it(package: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(package) as z:
        names = z.namelist()
    assert len(names) == 8
    for name in names:
        code, out = verify_cli(str(rewrite(package, tmp_path / "x.zip", name)))
        assert code == 1, name
        assert out.startswith(f"NOT verified: {name}: ") or (
            name == "manifest.sig" and "manifest.sig" in out and "signature" in out
        ), out


def test_a_changed_manifest_fails_the_signature(package: Path, tmp_path: Path) -> None:
    """Changing a file and its hash in the manifest alike is caught by the signature."""
    with zipfile.ZipFile(package) as z:
        manifest = json.loads(z.read("manifest.json"))
        case = z.read("case.json").replace(b'"state": "new"', b'"state": "resolved"')
    assert b"resolved" in case
    for f in manifest["files"]:
        if f["path"] == "case.json":
            f["sha256"] = hashlib.sha256(case).hexdigest()
    forged = rewrite(package, tmp_path / "a.zip", "case.json", case)
    forged = rewrite(forged, tmp_path / "b.zip", "manifest.json", json.dumps(manifest, indent=2).encode())
    code, out = verify_cli(str(forged))
    assert code == 1 and out.startswith("NOT verified: manifest.json: the signature")


def test_damage_inside_the_zip_and_added_files_are_named(package: Path, tmp_path: Path) -> None:
    raw = bytearray(package.read_bytes())
    with zipfile.ZipFile(package) as z:
        info = z.getinfo("clip.mp4")
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    raw[at] ^= 0xFF  # stored, not deflated: the zip's CRC catches it on reading
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(raw))
    code, out = verify_cli(str(damaged))
    assert code == 1 and out.startswith("NOT verified: clip.mp4: "), out

    added = tmp_path / "added.zip"
    shutil.copy(package, added)
    with zipfile.ZipFile(added, "a") as z:
        z.writestr("snapshots/extra.jpg", b"not from the camera")
    assert verify_cli(str(added)) == (1, "NOT verified: snapshots/extra.jpg: not listed in the signed"
                                         " manifest (the file was added)\n")  # fmt: skip

    doubled = tmp_path / "doubled.zip"  # a second case.json, which an unzip tool would show
    shutil.copy(package, doubled)
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(doubled, "a") as z:
        z.writestr("case.json", b'{"state": "resolved"}')
    code, out = verify_cli(str(doubled))
    assert code == 1 and out.startswith("NOT verified: case.json: appears twice"), out


def test_another_key_and_unreadable_input(package: Path, tmp_path: Path) -> None:
    other = installation_key(tmp_path / "other").public_key()
    other_pem = tmp_path / "other" / "keys" / "evidence-ed25519.pub.pem"
    code, out = verify_cli(str(package), "--key", str(other_pem))
    assert code == 1 and "another key signed it" in out
    with pytest.raises(PackageInvalid, match="signature"):
        verify_package(package, other)
    text = tmp_path / "notes.txt"
    text.write_text("not a package")
    assert verify_cli(str(text))[0] == 2
    assert verify_cli(str(tmp_path / "missing.zip"))[0] == 2
    assert verify_cli(str(package), "--key", str(text))[0] == 2


def test_export_from_the_command_line(world: World, alert: Alert, tmp_path: Path) -> None:
    out = tmp_path / "cli.zip"
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(["evidence", "export", alert.id, "--data", str(world.data), "--out", str(out)])
    assert code == 0 and buf.getvalue().startswith(f"exported {out}: 6 files, signed by ")
    assert verify_cli(str(out))[0] == 0
    assert main(["evidence", "export", "0123abcd", "--data", str(world.data), "--out", str(out)]) == 2


# ---------- dashboard routes ----------


class StillLive:
    """A LiveView with no pictures: the evidence routes read stored evidence, not live video."""

    def __init__(self, site: Site):
        self.site = site

    def latest(self, camera: str) -> tuple[Frame | None, DetectionBatch | None]:
        return None, None

    def health(self) -> dict[str, object]:
        return {}


@pytest.fixture
def client(world: World, redis_server, tmp_path: Path) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    accounts = Accounts(f"sqlite:///{tmp_path / 'accounts.db'}")
    for role, password in PASSWORDS.items():
        accounts.add(role, role, password, "f1" if role == "operator" else None)
    accounts.add(OUTSIDER[0], "operator", OUTSIDER[1], "f2")
    bus = AlertBus(redis_server.url)
    app = create_app(
        StillLive(world.site), world.store, bus, accounts, title="t",
        recording=world.recording, evidence=world.evidence,
    )  # fmt: skip
    with TestClient(app) as c:
        yield c
    bus.close()


def sign_in(client: TestClient, name: str) -> None:
    res = client.post("/api/login", json={"name": name, "password": PASSWORDS[name]})
    assert res.status_code == 200, res.text


def views(world: World, actor: str, alert_id: str) -> list[dict[str, object]]:
    return [
        e.detail for e in world.store.audit.entries("evidence_view")
        if e.actor == actor and e.target == f"alert:{alert_id}"
    ]  # fmt: skip


def test_snapshot_and_clip_views_are_served_and_audited(
    client: TestClient, world: World, alert: Alert
) -> None:
    sign_in(client, "officer")
    before = len(views(world, "officer", alert.id))
    res = client.get(f"/api/alerts/{alert.id}/snapshot.jpg")
    assert res.status_code == 200 and res.headers["content-type"] == "image/jpeg"
    assert res.content == (world.data / "evidence" / alert.id / "snapshot.jpg").read_bytes()

    clip = client.get(f"/api/alerts/{alert.id}/clip.mp4")
    assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"
    part = client.get(f"/api/alerts/{alert.id}/clip.mp4", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == clip.content[1000:2000]  # seekable
    annotated = client.get(f"/api/alerts/{alert.id}/clip.mp4?annotated=1")
    assert annotated.status_code == 200 and annotated.content != clip.content

    seen = views(world, "officer", alert.id)[before:]
    assert [v["what"] for v in seen] == ["snapshot", "clip", "clip"]  # the range is no new view
    assert [v.get("annotated") for v in seen[1:]] == [False, True]
    assert world.store.audit.verify()[1] is None


def test_clip_answers_409_while_recording_and_404_without_recording(
    client: TestClient, world: World
) -> None:
    sign_in(client, "officer")
    late = entry(world, 26.0, track=103)
    res = client.get(f"/api/alerts/{late.id}/clip.mp4")
    assert res.status_code == 409 and "still being written" in res.json()["detail"]
    assert int(res.headers["retry-after"]) > 0
    old = entry(world, -7200.0, track=104)
    res = client.get(f"/api/alerts/{old.id}/clip.mp4")
    assert res.status_code == 404 and "no recording of camera pets" in res.json()["detail"]
    assert client.get("/api/alerts/feedbeef/snapshot.jpg").status_code == 404


def test_an_operator_views_evidence_but_may_not_export(
    client: TestClient, world: World, alert: Alert
) -> None:
    sign_in(client, "operator")
    assert client.get(f"/api/alerts/{alert.id}/snapshot.jpg").status_code == 200
    res = client.post(f"/api/alerts/{alert.id}/export")
    assert res.status_code == 403
    assert views(world, "operator", alert.id)[-1]["what"] == "snapshot"
    assert all(e.actor != "operator" for e in world.store.audit.entries("evidence_export"))

    name, password = OUTSIDER
    assert client.post("/api/login", json={"name": name, "password": password}).status_code == 200
    for route in ("snapshot.jpg", "clip.mp4"):
        res = client.get(f"/api/alerts/{alert.id}/{route}")
        assert res.status_code == 403 and "another factory" in res.json()["detail"]
    assert views(world, name, alert.id) == []


def test_an_officer_exports_a_verifiable_package(
    client: TestClient, world: World, alert: Alert, tmp_path: Path
) -> None:
    sign_in(client, "officer")
    res = client.post(f"/api/alerts/{alert.id}/export")
    assert res.status_code == 200 and res.headers["content-type"] == "application/zip"
    assert f"bondwatch-evidence-{alert.id}.zip" in res.headers["content-disposition"]
    out = tmp_path / "download.zip"
    out.write_bytes(res.content)
    assert verify_cli(str(out))[0] == 0
    assert world.store.audit.entries("evidence_export")[-1].actor == "officer"
    left = Path(tempfile.gettempdir()).glob(f"bondwatch-export-*/bondwatch-evidence-{alert.id}.zip")
    assert list(left) == []  # the temporary package is gone once sent
