"""The zone editor: PUT /api/zones/{camera} validates with the site file's models, rewrites only
the `zones:` block of the real site file (backup kept, change audited), and the running rules take
the new zones between two batches; RuleEngine.reload_zones keeps the state of zones that stay.

The end-to-end case runs the real model over real PETS 2009 frames through the real Pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import MODEL, PETS_VIDEO
from fastapi.testclient import TestClient
from test_dashboard import PetsLive, redis_server, sign_in
from test_trace import make_accounts

from alerts.bus import AlertBus
from alerts.pipeline import Pipeline
from alerts.rules import RuleEngine
from alerts.store import AlertStore
from alerts.types import Alert
from bondwatch.scans import ScanEvent
from bondwatch.site import Site, load_site, parse_site
from dashboard.app import create_app
from detectors.types import Detection, DetectionBatch
from detectors.yolo import Detector
from streams.frame import Frame

SITE_FILE = """\
# 保税维修车间 A: site file written by hand; the editor must keep these comments
name: 保税维修车间 A
cameras:
  - id: pets
    name: 东门道路
    url: rtsp://127.0.0.1:8554/pets   # east gate camera
  - id: dock
    name: 装卸区
    url: rtsp://127.0.0.1:8554/dock
zones:
  - id: s01
    camera: pets
    kind: station
    station: s01
    polygon: [[20, 20], [200, 20], [200, 150], [20, 150]]
  - id: dock-s02
    camera: dock
    kind: station
    station: s02
    polygon: [[100, 100], [300, 100], [300, 250], [100, 250]]
recording:
  enabled: false   # no disk in this test
"""
# Right of the PETS frame, where people walk in from the edge in the first seconds.
GATE = [[520, 280], [767, 280], [767, 450], [520, 450]]
S01 = {"id": "s01", "kind": "station", "station": "s01",
       "polygon": [[20, 20], [200, 20], [200, 150], [20, 150]]}  # fmt: skip
GATE_ZONE = {"id": "gate", "kind": "restricted", "name": "东门", "polygon": GATE, "dwell_s": 0.5,
             "badge_window_s": 0}  # fmt: skip


@dataclass
class Editor:
    client: TestClient
    path: Path
    store: AlertStore
    live: PetsLive
    applied: list[Site]


def make_editor(tmp_path: Path, site_path: Path | None, apply=None) -> Iterator[Editor]:  # type: ignore[no-untyped-def]
    path = tmp_path / "site.yaml"
    path.write_text(SITE_FILE, encoding="utf-8")
    site = load_site(path)
    store = AlertStore(f"sqlite:///{tmp_path / 'bondwatch.db'}")
    accounts = make_accounts(tmp_path / "accounts.db")
    applied: list[Site] = []
    live = PetsLive(site, n_frames=2)

    def on_site(new: Site) -> None:
        applied.append(new)
        if apply is not None:
            apply(new)

    with redis_server() as url:
        bus = AlertBus(url)
        app = create_app(live, store, bus, accounts, title="T", site_path=site_path, on_site=on_site)
        with TestClient(app) as client:
            yield Editor(client, path, store, live, applied)
        bus.close()
    store.close()


@pytest.fixture
def editor(tmp_path: Path) -> Iterator[Editor]:
    yield from make_editor(tmp_path, tmp_path / "site.yaml")


def test_admin_saves_zones_to_the_site_file_and_they_apply_at_once(editor: Editor):
    sign_in(editor.client, "admin")
    listed = editor.client.get("/api/zones").json()
    assert listed["editable"] and listed["file"] == "site.yaml"
    assert [z["id"] for z in listed["zones"]] == ["s01", "dock-s02"]

    res = editor.client.put("/api/zones/pets", json={"zones": [S01, GATE_ZONE]})
    assert res.status_code == 200, res.text
    assert [z["id"] for z in res.json()["zones"]] == ["s01", "gate", "dock-s02"]

    # The file: only the zones block changed; it loads as a restart would load it.
    text = editor.path.read_text(encoding="utf-8")
    assert text.startswith("# 保税维修车间 A: site file written by hand")
    assert "# east gate camera" in text and "# no disk in this test" in text
    assert "polygon: [[520, 280], [767, 280], [767, 450], [520, 450]]" in text
    saved = load_site(editor.path)
    gate = next(z for z in saved.zones if z.id == "gate")
    assert (gate.kind, gate.camera, gate.name, gate.dwell_s) == ("restricted", "pets", "东门", 0.5)
    assert [z.id for z in saved.zones] == ["s01", "gate", "dock-s02"]
    backups = list(editor.path.parent.glob("site.yaml.*.bak"))
    assert len(backups) == 1 and backups[0].read_text(encoding="utf-8") == SITE_FILE

    # Applied without a restart: the live view, the cameras API and the rules' callback.
    assert [z.id for z in editor.live.site.zones_of("pets")] == ["s01", "gate"]
    cams = {c["id"]: c for c in editor.client.get("/api/cameras").json()}
    assert [z["id"] for z in cams["pets"]["zones"]] == ["s01", "gate"]
    assert [[z.id for z in s.zones] for s in editor.applied] == [["s01", "gate", "dock-s02"]]

    # Audited: who, which camera, the zones before and after, the backup's name.
    (entry,) = editor.store.audit.entries("zones_edit")
    assert (entry.actor, entry.target) == ("admin", "camera:pets")
    assert [z["id"] for z in entry.detail["before"]] == ["s01"]
    assert [z["id"] for z in entry.detail["after"]] == ["s01", "gate"]
    assert entry.detail["backup"] == backups[0].name

    # Deleting a zone is saving without it.
    res = editor.client.put("/api/zones/pets", json={"zones": [GATE_ZONE]})
    assert res.status_code == 200, res.text
    assert [z.id for z in load_site(editor.path).zones] == ["gate", "dock-s02"]


@pytest.mark.parametrize(
    ("zones", "error"),
    [
        ([{**GATE_ZONE, "polygon": [[520, 280], [800, 280], [767, 450]]}],
         "zones[0].polygon[1]: point (800, 280) is outside the 768×576 frame"),
        ([{**GATE_ZONE, "polygon": [[0, 0], [10, 0]]}],
         "zones[0].polygon: a polygon needs at least 3 points, got 2"),
        ([{**S01, "station": None}], "zones[0]: a station zone must name its `station`"),
        ([S01, {**GATE_ZONE, "id": "s01"}], "zones: duplicate id 's01'"),
        ([{**GATE_ZONE, "id": "dock-s02"}], "zones: id 'dock-s02' is already a zone of another camera"),
        ([{**GATE_ZONE, "colour": "red"}], "zones[0].colour: Extra inputs are not permitted"),
        ([{**GATE_ZONE, "kind": "forbidden"}], "zones[0].kind: Input should be 'restricted' or 'station'"),
        ([{**GATE_ZONE, "id": "东门"}], "zones[0].id: String should match pattern"),
    ],
)  # fmt: skip
def test_invalid_zones_are_refused_and_the_file_is_untouched(editor: Editor, zones, error):
    sign_in(editor.client, "admin")
    res = editor.client.put("/api/zones/pets", json={"zones": zones})
    assert res.status_code == 422
    assert any(line.startswith(error) for line in res.json()["detail"]), res.json()
    assert editor.path.read_text(encoding="utf-8") == SITE_FILE
    assert not list(editor.path.parent.glob("*.bak"))
    assert editor.applied == [] and editor.store.audit.entries("zones_edit") == []


@pytest.mark.parametrize(("user", "status"), [(None, 401), ("officer", 403), ("operator", 403)])
def test_only_an_admin_edits_zones(editor: Editor, user, status):
    if user is not None:
        sign_in(editor.client, user)
    res = editor.client.put("/api/zones/pets", json={"zones": [S01, GATE_ZONE]})
    assert res.status_code == status
    assert editor.path.read_text(encoding="utf-8") == SITE_FILE
    if user == "operator":  # of factory acme: no camera of this site is acme's
        assert editor.client.get("/api/zones").json()["zones"] == []


def test_a_site_without_a_file_cannot_save_zones(tmp_path: Path):
    for e in make_editor(tmp_path, site_path=None):
        sign_in(e.client, "admin")
        assert e.client.get("/api/zones").json()["editable"] is False
        res = e.client.put("/api/zones/pets", json={"zones": [S01]})
        assert res.status_code == 409
        assert "without a site file" in res.json()["detail"]


def test_frame_for_drawing_is_the_cameras_picture(editor: Editor):
    sign_in(editor.client, "officer")
    res = editor.client.get("/api/zones/pets/frame.jpg")
    assert res.status_code == 200 and res.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(res.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (576, 768, 3)
    assert editor.client.get("/api/zones/dock/frame.jpg").status_code == 503  # no frame yet
    assert editor.client.get("/api/zones/nope/frame.jpg").status_code == 404


# ---------- the rules follow the edit ----------


def person(track: int, foot: tuple[float, float]) -> Detection:
    x, y = foot
    return Detection("person", 0.9, (x - 20, y - 80, x + 20, y), track=track)


def unit(track: int, foot: tuple[float, float]) -> Detection:
    x, y = foot
    return Detection("unit", 0.9, (x - 10, y - 10, x + 10, y), track=track)


def batch(t: float, *dets: Detection, camera: str = "pets") -> DetectionBatch:
    return DetectionBatch(camera, int(t * 10), t, 1000.0 + t, 768, 576, tuple(dets))


def zones_site(*zones: str) -> Site:
    return parse_site("cameras: [{id: pets, url: a}, {id: dock, url: b}]\nzones:\n" + "".join(zones))


CAGE = "- {id: cage, camera: pets, kind: restricted, dwell_s: 0, badge_window_s: 0, polygon: [[0,0],[100,0],[100,100],[0,100]]}\n"  # noqa: E501
CAGE_WIDE = "- {id: cage, camera: pets, kind: restricted, dwell_s: 0, badge_window_s: 0, polygon: [[0,0],[300,0],[300,300],[0,300]]}\n"  # noqa: E501
CAGE_ON_DOCK = "- {id: cage, camera: dock, kind: restricted, dwell_s: 0, badge_window_s: 0, polygon: [[0,0],[100,0],[100,100],[0,100]]}\n"  # noqa: E501
BENCH = "- {id: bench, camera: pets, kind: station, station: s01, scan_grace_s: 30, dwell_s: 0, exit_detections: 1, polygon: [[400,400],[500,400],[500,500],[400,500]]}\n"  # noqa: E501


def test_a_kept_zone_keeps_who_is_inside_and_takes_the_new_polygon():
    rules = RuleEngine(zones_site(CAGE))
    assert rules.process(batch(1.0, person(1, (50, 50)))) == []  # decided on the next batch
    assert [a.track for a in rules.process(batch(1.1, person(1, (50, 50))))] == [1]
    assert rules.reload_zones(zones_site(CAGE_WIDE)) == []
    # Person 1 is still inside the (wider) zone: the same entry, not a second alert; person 2
    # stands where only the new polygon reaches.
    assert rules.process(batch(1.2, person(1, (60, 60)), person(2, (250, 250)))) == []
    assert [a.track for a in rules.process(batch(1.3, person(1, (60, 60)), person(2, (250, 250))))] == [2]


def test_a_zone_moved_to_another_camera_starts_afresh():
    rules = RuleEngine(zones_site(CAGE))
    rules.process(batch(1.0, person(1, (50, 50))))
    rules.reload_zones(zones_site(CAGE_ON_DOCK))
    assert rules.process(batch(1.1, person(1, (50, 50)))) == []  # pets has no zone now
    assert rules.process(batch(1.2, person(1, (50, 50)), camera="dock")) == []
    assert [a.camera for a in rules.process(batch(1.3, person(1, (50, 50)), camera="dock"))] == ["dock"]


def test_a_removed_zone_decides_its_pending_departures_at_once():
    rules = RuleEngine(zones_site(BENCH, CAGE))
    rules.process(batch(1.0, unit(4, (450, 450))))
    rules.process(batch(1.5, unit(4, (450, 450))))
    assert rules.process(batch(2.0, unit(4, (600, 450)))) == []  # left; waits 30 s for a scan
    flushed = rules.reload_zones(zones_site(CAGE))
    assert [(a.type, a.zone, a.track) for a in flushed] == [("unscanned_departure", "bench", 4)]
    assert rules.add_scan(ScanEvent(station="s01", serial="SN1", t=3.0)) == []  # nothing left


def pets_frames(first: int, last: int, step: int = 2) -> Iterator[Frame]:
    """Real PETS 2009 frames `first`..`last` (0-based), every `step`-th, at 10 fps video time."""
    cap = cv2.VideoCapture(str(PETS_VIDEO))
    try:
        for i in range(last + 1):
            ok, image = cap.read()
            assert ok, "could not decode the PETS clip"
            if i >= first and i % step == 0:
                yield Frame("pets", i, i / 10, 1_780_000_000.0 + i / 10, image)
    finally:
        cap.release()


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(MODEL, threads=1)


def test_a_zone_drawn_in_the_editor_raises_entries_through_the_pipeline(tmp_path: Path, detector):
    """The real model over real frames: no alert in the gate area until the zone is saved, an
    unauthorized entry in it right after, from the same running pipeline."""
    pipeline = Pipeline(load_site_text(tmp_path), detector)
    alerts: list[Alert] = []

    def run(first: int, last: int) -> list[Alert]:
        out = []
        for frame in pets_frames(first, last):
            out += pipeline.process([frame])[1]
        return out

    def apply(site: Site) -> None:
        alerts.extend(pipeline.reload_zones(site))

    for e in make_editor(tmp_path, tmp_path / "site.yaml", apply):
        assert run(0, 20) == []
        sign_in(e.client, "admin")
        res = e.client.put("/api/zones/pets", json={"zones": [S01, GATE_ZONE]})
        assert res.status_code == 200, res.text
        alerts += run(22, 80)
    gate = [a for a in alerts if a.zone == "gate"]
    assert gate and all(a.type == "unauthorized_entry" and a.camera == "pets" for a in gate)
    assert all(a.t >= 2.2 for a in gate)  # entries seen after the save, in video time


def load_site_text(tmp_path: Path) -> Site:
    return parse_site(SITE_FILE, base=tmp_path)
