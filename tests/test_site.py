"""`check-site` and the site loader on good and broken files."""

from __future__ import annotations

import textwrap

import pytest

from bondwatch.cli import main
from bondwatch.site import SiteError, parse_site

GOOD = """\
cameras:
  - id: cam1
    url: rtsp://127.0.0.1:8554/cam1
zones:
  - id: S01
    camera: cam1
    kind: station
    station: S01
    polygon: [[100, 100], [300, 100], [300, 250], [100, 250]]
  - id: lawn
    camera: cam1
    kind: restricted
    polygon: [[20, 300], [400, 300], [400, 570], [20, 570]]
"""


def test_contract_minimum_is_accepted():
    site = parse_site(GOOD)
    assert [z.id for z in site.zones] == ["S01", "lawn"]
    assert site.zones[1].dwell_s == 1.0
    assert site.zones_of("cam1")[0].station == "S01"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    url: rtsp", "    colour: red\n    url: rtsp",
         "cameras[0].colour: unknown key 'colour' (line 3)"),
        ("    camera: cam1\n    kind: restricted", "    camera: cam9\n    kind: restricted",
         "zones[1].camera: zone 'lawn' is on unknown camera 'cam9' (cameras: cam1) (line 11)"),
        ("[[20, 300], [400, 300], [400, 570], [20, 570]]", "[[20, 300], [400, 300]]",
         "zones[1].polygon: a polygon needs at least 3 points, got 2 (line 13)"),
        ("[400, 570]", "[400, abc]",
         "zones[1].polygon[2][1]: Input should be a valid number, unable to parse string as a"
         " number (line 13)"),
        ("  - id: cam1", "  - id: Cam 1", "cameras[0].id: String should match pattern"),
        ("    station: S01\n", "", "zones[0]: a station zone must name its `station` (line 5)"),
        ("kind: restricted", "kind: forbidden", "zones[1].kind: Input should be 'restricted' or"),
        ("cameras:", "cameras: [\n", "not valid YAML"),
    ],
    ids=["unknown-key", "unknown-camera", "two-points", "non-numeric", "bad-id",
         "station-without-scanner", "bad-kind", "bad-yaml"],
)  # fmt: skip
def test_broken_site_files_name_the_error(old, new, expected):
    assert old in GOOD
    with pytest.raises(SiteError) as e:
        parse_site(GOOD.replace(old, new, 1))
    assert any(err.startswith(expected) for err in e.value.errors), e.value.errors


def test_duplicate_zone_ids_are_refused():
    extra = textwrap.dedent("""\
      - id: lawn
        camera: cam1
        kind: restricted
        polygon: [[0, 0], [1, 0], [1, 1]]
    """)
    text = GOOD + textwrap.indent(extra, "  ")
    with pytest.raises(SiteError, match="duplicate id 'lawn' in zones"):
        parse_site(text)


def test_check_site_cli(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert main(["check-site", str(good)]) == 0
    assert "ok (1 cameras, 2 zones)" in capsys.readouterr().out

    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("    url: rtsp", "    colour: red\n    url: rtsp"))
    assert main(["check-site", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"{bad}: cameras[0].colour: unknown key 'colour' (line 3)"

    assert main(["check-site", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read the site file: No such file or directory" in capsys.readouterr().err


def test_examples_are_valid():
    from pathlib import Path

    examples = sorted((Path(__file__).parents[1] / "examples").glob("*.yaml"))
    assert examples
    for path in examples:
        assert main(["check-site", str(path)]) == 0, path
