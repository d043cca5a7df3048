"""Alert precision/recall and tracking MOTA/IDF1, printed as one table.

    python bench/alert_quality.py [--model PATH] [--sim-seeds 201,202] [--no-sim]

PETS 2009 (real footage): `bondwatch replay` over frames 1-400 (the labelled part) with
two restricted zones; the truth is the same rule run over the labelled tracks
(alerts/truth.py). Frames 1-320 trained the bundled model and 321-400 validated it, so
the 321-400 row is the fairer one; frames 401-795 carry no labels here.
Simulator: `basic` and `random` scenarios rendered from seeds never used in training,
scored against their truth.jsonl (CONTRACTS.md section 5).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import tempfile
from pathlib import Path

import motmetrics as mm
import numpy as np

from alerts.truth import read_mot, truth_alerts
from bondwatch.replay import replay
from bondwatch.scans import load_scans
from bondwatch.scoring import Score, read_jsonl, score
from bondwatch.site import load_site, parse_site
from detectors.yolo import DEFAULT_MODEL, Detector, TrackerParams

ROOT = Path(__file__).resolve().parents[1]
PETS = ROOT.parent / "shared" / "data" / "pets2009-s2l1"
PETS_SITE = """
cameras: [{{id: pets, url: {video}, detect_fps: 10}}]
zones:
  - {{id: road, camera: pets, kind: restricted,
     polygon: [[450, 195], [700, 160], [768, 250], [768, 470], [600, 420], [450, 330]]}}
  - {{id: west, camera: pets, kind: restricted,
     polygon: [[120, 220], [330, 205], [345, 320], [130, 330]]}}
"""


def row(name: str, s: Score) -> str:
    return f"{name:<44} {s.truth:>6} {s.alerts:>7} {s.matched:>8} {s.precision:>9.3f} {s.recall:>7.3f}"


def pets(detector: Detector, tmp: Path) -> list[str]:
    clip = tmp / "pets-0001-0400.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(PETS / "vtest.avi"), "-frames:v", "400",
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "10", "-bf", "0", str(clip)],
        check=True,
    )  # fmt: skip
    site = parse_site(PETS_SITE.format(video=clip))
    out = io.StringIO()
    replay(site, {"pets": str(clip)}, out, detector=detector, tracks_dir=tmp / "tracks")
    alerts = [a for a in map(_json, out.getvalue().splitlines())]
    labels = read_mot(PETS / "gt-frames-0001-0400.txt")
    truth = [a.to_dict() for a in truth_alerts(site, "pets", labels, 10.0, (768, 576), range(1, 401))]
    rows = [row("PETS frames 1-400, unauthorized_entry", score(alerts, truth))]
    late = [a for a in alerts if a["t"] >= 32.0]
    late_truth = [a for a in truth if a["t"] >= 32.0]
    rows.append(row("PETS frames 321-400 (validation), entries", score(late, late_truth)))
    rows.append(_tracking(labels, tmp / "tracks" / "pets.txt"))
    return rows


def _json(line: str) -> dict:
    return json.loads(line)


def _tracking(labels: dict, tracks_file: Path) -> str:
    """MOTA / IDF1 of the replay tracks against the labels (boxes, IoU >= 0.5)."""
    hyp = read_mot(tracks_file)
    acc = mm.MOTAccumulator(auto_id=True)
    for f in range(1, 401):
        gt = labels.get(f, [])
        hy = hyp.get(f, [])
        g = np.array([[x1, y1, x2 - x1, y2 - y1] for _, (x1, y1, x2, y2) in gt]).reshape(-1, 4)
        h = np.array([[x1, y1, x2 - x1, y2 - y1] for _, (x1, y1, x2, y2) in hy]).reshape(-1, 4)
        acc.update([i for i, _ in gt], [i for i, _ in hy], _iou_distance(g, h))
    m = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches"], name="pets")
    return (
        f"{'PETS frames 1-400, tracking':<44} MOTA {m['mota'].iloc[0]:.3f}  IDF1 {m['idf1'].iloc[0]:.3f}"
        f"  id switches {int(m['num_switches'].iloc[0])}"
    )


def _iou_distance(a: np.ndarray, b: np.ndarray, min_iou: float = 0.5) -> np.ndarray:
    """1 - IoU of ltwh boxes, NaN below `min_iou` (motmetrics' own helper needs numpy < 2)."""
    if len(a) == 0 or len(b) == 0:
        return np.empty((len(a), len(b)))
    a1, a2 = a[:, None, :2], a[:, None, :2] + a[:, None, 2:]
    b1, b2 = b[None, :, :2], b[None, :, :2] + b[None, :, 2:]
    inter = np.clip(np.minimum(a2, b2) - np.maximum(a1, b1), 0, None).prod(axis=2)
    union = a[:, None, 2:].prod(axis=2) + b[None, :, 2:].prod(axis=2) - inter
    iou = inter / np.maximum(union, 1e-9)
    return np.where(iou >= min_iou, 1 - iou, np.nan)


KINDS = ("unauthorized_entry", "unscanned_departure")


def sim(detector: Detector, renders: Path, seeds: list[int]) -> list[str]:
    """Replay each scenario and seed, rendered into `renders` unless it is there already."""
    from sim.render import render_scenario

    rows = []
    totals = {kind: Score(0, 0, 0) for kind in KINDS}
    for scenario in ("basic", "random"):
        for seed in seeds:
            out = renders / f"{scenario}-{seed}"
            if not (out / "truth.jsonl").is_file():
                render_scenario(ROOT / "examples" / "scenarios" / f"{scenario}.yaml", out, seed=seed)
            site = load_site(out / "site.yaml")
            buf = io.StringIO()
            videos = {c.id: str(out / f"{c.id}.mp4") for c in site.cameras}
            replay(site, videos, buf, detector=detector, scans=load_scans(out / "scans.jsonl"))
            (out / "alerts.jsonl").write_text(buf.getvalue())  # beside its truth, to look into
            alerts = [_json(line) for line in buf.getvalue().splitlines()]
            truth = read_jsonl(out / "truth.jsonl")
            for kind in KINDS:
                s = score([a for a in alerts if a["type"] == kind], [a for a in truth if a["type"] == kind])
                rows.append(row(f"sim {scenario} seed {seed}, {kind}", s))
                t = totals[kind]
                totals[kind] = Score(t.alerts + s.alerts, t.truth + s.truth, t.matched + s.matched)
    return rows + [row(f"sim, all seeds above, {kind}", s) for kind, s in totals.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--sim-seeds", default="201,202")
    ap.add_argument("--no-sim", action="store_true")
    ap.add_argument("--no-pets", action="store_true")
    ap.add_argument("--renders", type=Path, help="keep (and reuse) the simulator renders here")
    ap.add_argument(
        "--unit-tracker", metavar="HIGH,NEW[,fuse]",
        help="units on a ByteTrack of their own with these thresholds (fuse: IoU times score)",
    )  # fmt: skip
    args = ap.parse_args()
    unit_tracker = None
    if args.unit_tracker:
        high, new, *fuse = args.unit_tracker.split(",")
        unit_tracker = TrackerParams(high=float(high), new=float(new), fuse_score=fuse == ["fuse"])
    detector = Detector(args.model, parallel=os.cpu_count() or 1, unit_tracker=unit_tracker)  # as replay
    tmp = Path(tempfile.mkdtemp(prefix="bondwatch-bench-"))
    print(f"model: {args.model}; units tracked on {unit_tracker or 'the tracker of people'}")
    print(f"{'data':<44} {'truth':>6} {'alerts':>7} {'matched':>8} {'precision':>9} {'recall':>7}")
    rows = [] if args.no_pets else pets(detector, tmp)
    if not args.no_sim:
        rows += sim(detector, args.renders or tmp, [int(s) for s in args.sim_seeds.split(",")])
    print("\n".join(rows))


if __name__ == "__main__":
    main()
