"""`bondwatch replay` as other people's scripts call it (CONTRACTS.md section 1)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import PETS_LABELS

from alerts.truth import read_mot, truth_alerts
from bondwatch.scoring import read_jsonl, score
from bondwatch.site import load_site

SITE = """\
cameras:
  - id: pets
    url: {video}
    detect_fps: 10
zones:
  - id: road
    camera: pets
    kind: restricted
    polygon: [[450, 195], [700, 160], [768, 250], [768, 470], [600, 420], [450, 330]]
"""


def bondwatch(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bondwatch.cli", *args],
        capture_output=True, text=True, input=stdin, timeout=600,
    )  # fmt: skip


@pytest.fixture
def site_file(tmp_path, pets_video):
    path = tmp_path / "site.yaml"
    path.write_text(SITE.format(video=pets_video))
    return path


def test_replay_finds_zone_entries_on_labelled_pets_frames(tmp_path, site_file, pets_first_400):
    """Alerts on frames 1-400 against the truth the rule gives on the labelled tracks.

    These frames were in the model's calibration set (320 train / 80 validation), so this
    checks the plumbing end to end, not generalisation: bench/alert_quality.py measures that.
    """
    out, tracks = tmp_path / "alerts.jsonl", tmp_path / "tracks"
    r = bondwatch("replay", "--site", str(site_file), "--source", f"pets={pets_first_400}",
                  "--out", str(out), "--tracks", str(tracks))  # fmt: skip
    assert r.returncode == 0, r.stderr
    alerts = read_jsonl(out)
    for a in alerts:
        assert set(a) >= {"type", "camera", "zone", "t", "track"}
        assert a["type"] == "unauthorized_entry" and a["zone"] == "road"
    site = load_site(site_file)
    truth = truth_alerts(site, "pets", read_mot(PETS_LABELS), 10.0, (768, 576), range(1, 401))
    s = score(alerts, [t.to_dict() for t in truth])
    assert s.recall >= 0.6 and s.precision >= 0.6, s

    rows = [line.split(",") for line in (tracks / "pets.txt").read_text().splitlines()]
    assert len(rows) > 1000
    frames = [int(r[0]) for r in rows]
    assert min(frames) >= 1 and max(frames) <= 400
    assert all(len(r) == 10 and r[8:] == ["-1", "-1"] for r in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "nocam=x.mp4"], "--source names unknown camera 'nocam' (site has pets)"),
        (["--source", "pets=/nonexistent.mp4"], "--source pets: video file /nonexistent.mp4 does not exist"),
        (["--source", "pets"], "--source 'pets' is not CAM=PATH"),
        (["--scans", "{scans}"], "line 2: not JSON"),
        (["--source", "pets={corrupt}"], "pets"),
        (["--model", "{site}"], "is not a YOLO detection model"),
    ],
    ids=["unknown-camera", "missing-file", "not-a-pair", "garbage-scans", "corrupt-video", "bad-model"],
)  # fmt: skip
def test_replay_bad_input_is_one_clear_line(tmp_path, site_file, args, message):
    scans = tmp_path / "scans.jsonl"
    scans.write_text(json.dumps({"t": 1.0, "station": "S01", "serial": "SN1"}) + "\n{oops\n")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    args = [a.format(scans=scans, corrupt=corrupt, site=site_file) for a in args]
    r = bondwatch("replay", "--site", str(site_file), "--out", str(tmp_path / "a.jsonl"), *args)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("bondwatch: ") and message in last, r.stderr
    assert "Traceback" not in r.stderr


def test_replay_bad_site_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras:\n  - id: pets\n    url: x.mp4\n    zoom: 2\n")
    r = bondwatch("replay", "--site", str(bad), "--out", str(tmp_path / "a.jsonl"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"bondwatch: {bad}: 1 error(s): cameras[0].zoom: unknown key 'zoom' (line 4)"


def test_read_ahead_keeps_order_and_hands_on_the_decoders_error():
    from bondwatch.replay import _read_ahead

    def decode():
        yield from range(5)
        raise ValueError("corrupt packet")

    seen = []
    with pytest.raises(ValueError, match="corrupt packet"):
        for item in _read_ahead(decode(), 2):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]
