"""How fast the workshop simulator renders one 1280x720 camera, against real time.

    python bench/sim_render.py [--scenario examples/scenarios/basic.yaml] [--seconds 30]

Prints the rendered frames per second of one camera (drawing, post effects and H.264 encoding
together; with several cameras, all frames rendered / wall time) and its ratio to the
scenario's fps: a ratio >= 1 means one camera renders faster than real time. The scenario is
cut to --seconds and its canvas set to 1280x720.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sim.render import render
from sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "examples" / "scenarios" / "basic.yaml"))
    ap.add_argument("--seconds", type=float, default=30.0, help="scenario seconds to render")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    s = load_scenario(args.scenario)
    layout = s.layout.model_copy(
        update={"canvas": (1280, 720), "duration_s": min(args.seconds, s.layout.duration_s)}
    )
    s = s.model_copy(update={"layout": layout})
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        result = render(s, out, args.seed)
        took = time.perf_counter() - started
    frames = result.frames * len(result.videos)
    fps = frames / took
    print(f"scenario      {s.name} ({layout.duration_s:g} s, {len(result.videos)} camera(s), 1280x720)")
    print(f"frames        {frames}")
    print(f"wall time     {took:.1f} s (includes the one-off background, {len(s.actors)} actors)")
    print(f"rendered fps  {fps:.1f}")
    print(f"real-time x   {fps / layout.fps:.2f}  (scenario fps {layout.fps:g})")


if __name__ == "__main__":
    main()
