"""The workshop simulator: its truth agrees with its own label boxes, and it is reproducible."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest
import yaml

from bondwatch.site import load_site
from sim.dataset import export_yolo, read_labels
from sim.geometry import inside
from sim.render import render, render_scenario
from sim.scenario import ScenarioError, parse_scenario
from sim.video import read_frames

ROOT = Path(__file__).resolve().parents[1]

# One bench, one cage, one door, seen by one small camera: a few seconds of video.
BASE: dict = {
    "name": "tiny",
    "layout": {"width_m": 8, "depth_m": 6, "canvas": [320, 180], "fps": 5, "duration_s": 20},
    "cameras": [
        {"id": "cam1", "pose": "oblique", "position": [0.3, 0.3, 3.2], "look_at": [4.5, 3.5], "hfov_deg": 90},
    ],
    "stations": [{"id": "s01", "bench": {"center": [3.0, 2.0], "size": [1.4, 0.7]}}],
    "restricted": [
        {"id": "cage", "polygon": [[5.0, 3.6], [7.6, 3.6], [7.6, 5.7], [5.0, 5.7]], "gate": [5.6, 3.6]},
    ],
    "doors": [{"id": "door", "at": [8.0, 2.0]}],
    "units": [{"id": "u1", "serial": "SN0000001", "kind": "phone", "container": "tray", "at": "s01"}],
    "actors": [
        {
            "id": "w1",
            "start": "s01",
            "script": [
                {"wait": 2},
                {"pick_up": "u1"},
                {"scan": "u1"},
                {"walk_to": "door"},
                {"hand_off": "u1"},
            ],
        },
    ],
}


def scenario(**changes) -> dict:
    s = copy.deepcopy(BASE)
    for key, value in changes.items():
        s[key] = value
    return s


def with_scan(**options) -> dict:
    s = scenario()
    s["actors"][0]["script"][2] = {"scan": "u1", **options}
    return s


def render_dict(data: dict, out: Path, seed: int = 0):
    return render(parse_scenario(yaml.safe_dump(data)), out, seed)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def skipped(tmp_path_factory):
    return render_dict(with_scan(skip_scan=True), tmp_path_factory.mktemp("skipped"))


def test_skipped_scan_is_one_departure_when_the_unit_box_leaves_the_station(skipped):
    truth = jsonl(skipped.truth)
    assert [(a["type"], a["zone"], a["station"], a["track"]) for a in truth] == [
        ("unscanned_departure", "s01", "s01", 1001)
    ]
    site = load_site(skipped.site)
    poly = next(z for z in site.zones if z.id == "s01").polygon
    labels = read_labels(skipped.labels["cam1"])
    frame = round(truth[0]["t"] * skipped.fps) + 1  # 1-based frame of the departure

    def foot_inside(f: int) -> bool:
        box = next((b for b in labels.get(f, []) if b[0] == 1001), None)
        return box is not None and inside((box[2] + box[4] / 2, box[3] + box[5]), poly)

    assert foot_inside(frame - 1) and not foot_inside(frame)
    assert all(foot_inside(f) for f in range(1, 6))  # it lay on the bench at the start
    assert not any(json.loads(line)["kind"] == "scan" for line in skipped.scans.read_text().splitlines())


@pytest.mark.parametrize(
    ("scan", "alerts"),
    [
        ({}, 0),  # scanned before leaving
        ({"scan_delay_s": 6.0}, 0),  # late, but within the 10 s grace
        ({"scan_delay_s": 14.0}, 1),  # too late: the departure stands
    ],
)
def test_scans_before_or_within_grace_cancel_the_departure(tmp_path, scan, alerts):
    result = render_dict(with_scan(**scan), tmp_path)
    assert len(jsonl(result.truth)) == alerts
    scans = jsonl(result.scans)
    assert [(e["station"], e["serial"]) for e in scans] == [("s01", "SN0000001")]


@pytest.mark.parametrize(("authorized", "alerts", "badges"), [(False, 1, 0), (True, 0, 1)])
def test_cage_entry_is_an_alert_unless_badged(tmp_path, authorized, alerts, badges):
    s = scenario(
        units=[],
        actors=[
            {
                "id": "w1",
                "start": [4.0, 3.0],
                "script": [{"enter": "cage", "authorized": authorized, "stay_s": 3}],
            },
        ],
    )
    result = render_dict(s, tmp_path)
    truth = jsonl(result.truth)
    assert [(a["type"], a["zone"], a["track"]) for a in truth] == [("unauthorized_entry", "cage", 1)] * alerts
    assert sum(e["kind"] == "badge" for e in jsonl(result.scans)) == badges
    if alerts:
        poly = next(z for z in load_site(result.site).zones if z.id == "cage").polygon
        labels = read_labels(result.labels["cam1"])
        f = round(truth[0]["t"] * result.fps) + 1
        feet = {
            g: next(((b[2] + b[4] / 2, b[3] + b[5]) for b in labels[g] if b[0] == 1), None)
            for g in (f - 1, f)
        }
        assert not inside(feet[f - 1], poly) and inside(feet[f], poly)


def test_walking_past_a_cage_is_no_alert(tmp_path):
    s = scenario(
        units=[],
        actors=[
            {"id": "w1", "start": [4.2, 3.2], "script": [{"walk_to": [7.5, 3.2]}]},
        ],
    )
    assert jsonl(render_dict(s, tmp_path).truth) == []


def test_same_seed_same_output(tmp_path, skipped):
    again = render_dict(with_scan(skip_scan=True), tmp_path)
    for name in ("site.yaml", "scans.jsonl", "truth.jsonl", "labels/cam1.txt"):
        assert (skipped.out_dir / name).read_bytes() == (again.out_dir / name).read_bytes(), name

    def frames(path: Path) -> list[str]:
        return [hashlib.sha256(img.tobytes()).hexdigest() for _, _, img in read_frames(path)]

    assert frames(skipped.videos["cam1"]) == frames(again.videos["cam1"])


def test_video_has_the_scenario_frames(skipped):
    frames = [(i, t, img.shape) for i, t, img in read_frames(skipped.videos["cam1"])]
    assert len(frames) == 20 * 5
    assert all(shape == (180, 320, 3) for _, _, shape in frames)
    assert [t for _, t, _ in frames] == pytest.approx([i / 5 for i in range(100)])


def test_site_file_loads_and_points_at_the_video(skipped):
    site = load_site(skipped.site)
    assert [c.id for c in site.cameras] == ["cam1"]
    assert Path(site.cameras[0].url) == skipped.videos["cam1"].resolve()
    assert {(z.id, z.kind) for z in site.zones} == {("cage", "restricted"), ("s01", "station")}
    for z in site.zones:
        assert all(0 <= x <= 320 and 0 <= y <= 180 for x, y in z.polygon)


def test_the_scenarios_factory_and_time_zone_go_to_the_site(tmp_path, skipped):
    assert load_site(skipped.site).cameras[0].factory is None
    layout = {**BASE["layout"], "duration_s": 1}
    short = scenario(factory="acme-repair", timezone="Asia/Shanghai", layout=layout)
    site = load_site(render_dict(short, tmp_path).site)
    assert [c.factory for c in site.cameras] == ["acme-repair"]
    assert site.timezone == "Asia/Shanghai"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown key 'colour' (line"),
        (
            {"cameras": [{"id": "cam1", "pose": "oblique", "position": [1, 1, 3]}]},
            "cameras[0]: an oblique camera needs `look_at: [x, y]`",
        ),
        ({"actors": [{"id": "w1", "start": "nowhere"}]}, "actors[0].start: unknown place 'nowhere'"),
        (
            {"actors": [{"id": "w1", "start": "s01", "script": [{"jump": 1}]}]},
            "actors[0].script[0]: an action needs exactly one verb",
        ),
        (
            {"actors": [{"id": "w1", "start": "s01", "script": [{"walk_to": "door", "speed": 9}]}]},
            "actors[0].script[0].speed: Input should be less than or equal to 3",
        ),
        (
            {"actors": [{"id": "w1", "start": "door", "script": [{"pick_up": "u1"}]}]},
            "w1 cannot reach u1 at t=0.5s",
        ),
        (
            {"actors": [{"id": "w1", "start": [4, 3], "script": [{"scan": "u1"}]}]},
            "w1 scans u1 away from any station",
        ),
    ],
)
def test_invalid_scenarios_say_what_is_wrong(tmp_path, change, message):
    with pytest.raises(ScenarioError) as err:
        render_dict(scenario(**change), tmp_path)
    assert message in str(err.value)


def test_shipped_scenarios_parse():
    paths = sorted((ROOT / "examples" / "scenarios").glob("*.yaml"))
    assert {p.stem for p in paths} >= {"basic", "demo", "random"}
    for p in paths:
        parse_scenario(p.read_text(encoding="utf-8"), str(p))


def test_random_volume_depends_on_the_seed(tmp_path):
    s = scenario(actors=[], units=[], random={"workers": 2, "units": 2, "repair_s": [2, 3]})
    s["layout"]["duration_s"] = 6
    a = render_dict(s, tmp_path / "a", seed=1)
    b = render_dict(s, tmp_path / "b", seed=2)
    assert a.labels["cam1"].read_text() != b.labels["cam1"].read_text()


def test_export_yolo_writes_an_ultralytics_dataset(tmp_path, skipped):
    data = export_yolo([skipped.out_dir], tmp_path / "ds", every_n=7)
    spec = yaml.safe_load(data.read_text())
    assert spec["names"] == {0: "person", 1: "unit"}
    images = sorted((tmp_path / "ds" / "images").rglob("*.jpg"))
    assert len(images) == 15  # 100 frames, every 7th
    rows = [
        line.split()
        for p in (tmp_path / "ds" / "labels").rglob("*.txt")
        for line in p.read_text().splitlines()
    ]
    assert {r[0] for r in rows} == {"0", "1"}
    assert all(0 <= float(v) <= 1 for r in rows for v in r[1:])


def test_render_scenario_reads_the_file(tmp_path):
    path = tmp_path / "s.yaml"
    data = scenario()
    data["layout"]["duration_s"] = 1
    path.write_text(yaml.safe_dump(data))
    result = render_scenario(path, tmp_path / "out", seed=3)
    assert result.frames == 5 and result.videos["cam1"].exists()


def test_the_service_rules_over_perfect_boxes_agree_with_the_truth(tmp_path):
    """The truth uses the rules' own definitions: run alerts.rules over the label boxes."""
    from alerts.rules import RuleEngine
    from bondwatch.scans import ScanEvent
    from detectors.types import Detection, DetectionBatch

    s = with_scan(skip_scan=True)
    s["actors"].append(
        {"id": "w2", "start": [4.0, 3.2], "appear_at": 6, "script": [{"enter": "cage", "stay_s": 3}]}
    )
    result = render_dict(s, tmp_path)
    engine = RuleEngine(load_site(result.site))
    labels = read_labels(result.labels["cam1"])
    scans = [e for e in jsonl(result.scans) if e["kind"] == "scan"]
    alerts = []
    for f in range(1, result.frames + 1):
        t = (f - 1) / result.fps
        while scans and scans[0]["t"] <= t:
            e = scans.pop(0)
            alerts += engine.add_scan(ScanEvent(station=e["station"], serial=e["serial"], t=e["t"]))
        dets = tuple(
            Detection(("person", "unit")[c], 1.0, (x, y, x + w, y + h), track)
            for track, c, x, y, w, h, _ in labels.get(f, [])
        )
        alerts += engine.process(DetectionBatch("cam1", f - 1, t, t, 320, 180, dets))
    alerts += engine.flush()
    got = sorted((a.type, a.zone, a.track, round(a.t, 1)) for a in alerts)
    truth = sorted((a["type"], a["zone"], a["track"], round(a["t"], 1)) for a in jsonl(result.truth))
    assert [a[0] for a in truth] == ["unauthorized_entry", "unscanned_departure"]
    assert got == truth
