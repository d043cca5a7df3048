"""The built-in demo site used by `bondwatch run` when no site file is given.

For now it loops the PETS 2009 clip (real outdoor footage) from the `shared/` folder beside
the checkout, or from BONDWATCH_DEMO_VIDEO; simulated workshop cameras replace it once the
simulator and a model trained on it land.
"""

from __future__ import annotations

import os
from pathlib import Path

from bondwatch.site import Site, parse_site

REPO = Path(__file__).resolve().parents[1]
PETS = REPO.parent / "shared" / "data" / "pets2009-s2l1" / "vtest.avi"

DEMO_SITE = """
name: BondWatch demo (PETS 2009 footage)
cameras:
  - id: plaza
    name: Plaza / 广场
    url: {video}
    detect_fps: 5
  - id: road
    name: Road / 道路
    url: {video}
    detect_fps: 5
zones:
  - id: cage-east
    name: Bonded cage (east) / 保税仓（东）
    camera: plaza
    kind: restricted
    polygon: [[450, 195], [700, 160], [768, 250], [768, 470], [600, 420], [450, 330]]
  - id: old-parts
    name: Old-parts cage / 旧件笼
    camera: road
    kind: restricted
    dwell_s: 0.5
    polygon: [[120, 220], [330, 205], [345, 320], [130, 330]]
"""


class DemoError(Exception):
    pass


def demo_site(data_dir: Path) -> Site:
    video = Path(os.environ.get("BONDWATCH_DEMO_VIDEO", PETS))
    if not video.is_file():
        raise DemoError(
            f"the demo needs the PETS clip at {video}: set BONDWATCH_DEMO_VIDEO to a video file"
            " or pass --site SITE.yaml"
        )
    return parse_site(DEMO_SITE.format(video=video), "<demo site>")
