"""The built-in demo site used by `bondwatch run` when no site file is given.

For now it loops the PETS 2009 clip (real outdoor footage) from the `shared/` folder beside
the checkout, or from BONDWATCH_DEMO_VIDEO; simulated workshop cameras replace it once the
simulator and a model trained on it land.
"""

from __future__ import annotations

import os
import subprocess
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
    src = Path(os.environ.get("BONDWATCH_DEMO_VIDEO", PETS))
    if not src.is_file():
        raise DemoError(
            f"the demo needs the PETS clip at {src}: set BONDWATCH_DEMO_VIDEO to a video file"
            " or pass --site SITE.yaml"
        )
    return parse_site(DEMO_SITE.format(video=_as_h264(src, data_dir / "demo")), "<demo site>")


def _as_h264(src: Path, out_dir: Path) -> Path:
    """The clip as H.264 in MP4, made once: what IP cameras send, and what recording stores."""
    dst = out_dir / f"{src.stem}.mp4"
    if dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime:
        return dst
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".part.mp4")
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-an", "-c:v", "libx264",
           "-preset", "veryfast", "-g", "10", "-bf", "0", "-pix_fmt", "yuv420p", str(tmp)]  # fmt: skip
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    except FileNotFoundError:
        raise DemoError("the demo needs ffmpeg to prepare its video: run `make run`") from None
    except subprocess.CalledProcessError as e:
        raise DemoError(f"ffmpeg could not convert {src}: {e.stderr.decode()[-200:]}") from None
    tmp.replace(dst)
    return dst
