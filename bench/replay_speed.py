"""Replay throughput against a plain ultralytics tracking loop, both measured in this run.

    python bench/replay_speed.py [--video PATH] [--frames N]

Baseline: `YOLO(best.pt).track(source, stream=True)` over the clip, the loop most people
write first. Ours: the same code path as `bondwatch replay` (PyAV decode, the Detector with
its per-camera ByteTrack, the rules), given the same bundled .pt: on a CPU it runs the int8
model quantized from that .pt (models/NAME.int8.onnx, detectors/quantize.py), and, for
comparison, with int8 off, the float32 ONNX export cached from the .pt; and the int8 path
with one model session instead of one per core (what `bondwatch replay` runs). Both loops
run the model at the size it runs at in BondWatch (`trained_imgsz`). Every frame of the clip
is processed in all runs. Prints frames per second and ratios.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

from ultralytics import YOLO  # noqa: E402

from bondwatch.replay import replay  # noqa: E402
from bondwatch.site import parse_site  # noqa: E402
from detectors.yolo import MODELS_DIR, Detector, trained_imgsz  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PETS = ROOT.parent / "shared" / "data" / "pets2009-s2l1" / "vtest.avi"
SITE = """
cameras: [{{id: pets, url: {video}, detect_fps: 60}}]  # above the clip's 10 fps: every frame
zones:
  - id: road
    camera: pets
    kind: restricted
    polygon: [[450, 195], [700, 160], [768, 250], [768, 470], [600, 420], [450, 330]]
"""


def clip(video: Path, frames: int, out: Path) -> Path:
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(video), "-frames:v", str(frames),
         "-c:v", "libx264", "-preset", "veryfast", "-g", "10", "-bf", "0", str(out)],
        check=True,
    )  # fmt: skip
    return out


def plain_loop(model: Path, video: Path) -> tuple[int, float]:
    yolo = YOLO(str(model), task="detect")
    start = time.perf_counter()
    frames = yolo.track(
        source=str(video), stream=True, tracker="bytetrack.yaml", verbose=False, imgsz=trained_imgsz(model)
    )
    n = sum(1 for _ in frames)
    return n, time.perf_counter() - start


def ours(model: Path, video: Path, int8: bool = True, parallel: int | None = None) -> tuple[int, float]:
    site = parse_site(SITE.format(video=video))
    detector = Detector(model, int8=int8, parallel=parallel or os.cpu_count() or 1)
    stats = replay(site, {"pets": str(video)}, io.StringIO(), detector=detector)
    return stats.frames, stats.seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=PETS)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--model", default="bondwatch-person", help="a model in models/ (NAME.pt)")
    args = ap.parse_args()
    video = clip(args.video, args.frames, Path(tempfile.mkdtemp()) / "clip.mp4")
    pt = MODELS_DIR / f"{args.model}.pt"
    rows = []
    for name, fn in [
        ("plain ultralytics loop (.pt, torch)", plain_loop),
        ("bondwatch replay path (.pt -> int8 ONNX)", ours),
        ("bondwatch replay path (.pt -> float32 ONNX)", lambda m, v: ours(m, v, int8=False)),
        ("int8 ONNX, one session (no parallel calls)", lambda m, v: ours(m, v, parallel=1)),
    ]:
        fn(pt, video)  # warm-up: model load, first-call allocations
        n, secs = fn(pt, video)
        rows.append((name, n, secs))
    base = rows[0][1] / rows[0][2]
    print(f"{'run':<46} {'frames':>6} {'seconds':>8} {'fps':>7} {'ratio':>6}")
    for name, n, secs in rows:
        print(f"{name:<46} {n:>6} {secs:>8.2f} {n / secs:>7.1f} {n / secs / base:>6.2f}")
    print("(ratio = fps / plain loop fps, same clip, same machine, same run)")


if __name__ == "__main__":
    main()
