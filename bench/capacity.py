"""Capacity model: what one camera costs on this machine, measured in this run, and the
arithmetic that sizes a site of `--cameras` cameras on GPU servers from those costs.

    python bench/capacity.py [--seconds 20] [--steps 1,4] [--batches 12] [--cameras 263]
                             [--detect-fps 5] [--server-cores 32] [--gpus 1] [--gpu-fps 400]

Measured here, each with the code the service runs:

1. **ingest + recording** of a 1280x720 H.264 10 fps RTSP camera (decode, remux into 10 s
   segments, tamper check, newest-frame reader): `bench/ingest_capacity.run_step`, CPU seconds
   of this process per camera-second, at each of `--steps` camera counts.
2. **detection** through the service's pipeline (`bench/latency.TimedPipeline`: the bundled
   model as the CPU runs it, ByteTrack per camera, the rules), batches of one 720p frame per
   camera: CPU seconds per frame, split into the model call and the rest (tracker + rules),
   which stays on the CPU when the model runs on a GPU.
3. **live relay** of a watched camera across machines (dashboard/remote.py): JPEG encode in
   the worker, decode in the web process, bytes per frame, per 720p frame.

Then the sizing. The GPU throughput (`--gpu-fps`) cannot be measured on this machine (no GPU)
and is an assumption stated as such in the output; everything else comes from this run.
On a shared machine the CPU figures are what was left for us: pessimistic, not optimistic.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import ingest_capacity  # noqa: E402  # the ingest bench: its step runner and RTSP helpers
import latency  # noqa: E402  # the alert-latency bench: its site builder and timed pipeline

from bondwatch.site import parse_site  # noqa: E402
from dashboard.remote import MAX_FPS, decode_frame, encode_frame  # noqa: E402
from detectors.yolo import DEFAULT_MODEL, Detector  # noqa: E402
from streams.frame import Frame  # noqa: E402
from streams.source import open_frames  # noqa: E402

CAMERA_FPS = 10.0  # the measured camera profile: 1280x720 H.264 at 10 fps
# A watched camera's frames cross Redis at its own rate, up to the publisher's cap.
RELAY_FPS = min(CAMERA_FPS, MAX_FPS)
# Frames per second of the model per GPU. NOT measured (this machine has no GPU): ultralytics
# publishes 0.99 ms per 640-px image for YOLOv8n with TensorRT on an A100 at batch 1, 1.5 ms
# for YOLO11n on a T4; bondwatch-n is of that nano size. Measure on the target GPU first.
ASSUMED_GPU_FPS = 1000.0


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def measure_ingest(clip: Path, steps: list[int], seconds: float) -> list[ingest_capacity.Step]:
    mounts = {f"/cam{i:02d}": clip for i in range(max(steps))}
    out = []
    server = ingest_capacity.RtspServer(mounts)
    with tempfile.TemporaryDirectory(prefix="bondwatch-cap-") as tmp, server as srv:
        for n in steps:
            r = ingest_capacity.run_step(srv, n, seconds, 5.0, Path(tmp))
            out.append(r)
            print(
                f"  ingest+record N={n:>2}: fps min {min(r.fps):.2f}, {r.cpu_per_cam_s:.3f} CPU-s per "
                f"camera-second (RTSP server {r.server_cpu_per_cam_s:.3f}), load {r.load1:.1f}",
                flush=True,
            )
    return out


def measure_detection(clip: Path, model: str, cameras: int, batches: int) -> dict[str, float]:
    """CPU and wall time per frame of the service's pipeline, one frame per camera per batch."""
    images = []
    for frame in open_frames(str(clip)):
        images.append(frame.image)
        if len(images) >= cameras * (batches + 1):
            break
    site = parse_site(latency.site_yaml(cameras, 5.0, clip))
    pipeline = latency.TimedPipeline(site, Detector(model, conf=site.detection.conf, batch_size=cameras))
    detector = pipeline.detector
    predict = detector._predict
    spent = {"model_cpu": 0.0, "model_wall": 0.0}

    def timed_predict(imgs):  # type: ignore[no-untyped-def]
        c, w = cpu_s(), time.perf_counter()
        try:
            return predict(imgs)
        finally:
            spent["model_cpu"] += cpu_s() - c
            spent["model_wall"] += time.perf_counter() - w

    detector._predict = timed_predict  # type: ignore[method-assign]
    now = time.time()

    def batch(k: int) -> list[Frame]:
        return [Frame(f"cam{j}", k, k / 5.0, now + k / 5.0, images[k * cameras + j]) for j in range(cameras)]

    pipeline.process(batch(0))  # warm-up: first call allocates
    spent.update(model_cpu=0.0, model_wall=0.0)
    c0, w0 = cpu_s(), time.perf_counter()
    for k in range(1, batches + 1):
        pipeline.process(batch(k))
    frames = cameras * batches
    total_cpu, total_wall = cpu_s() - c0, time.perf_counter() - w0
    return {
        "frames": frames,
        "cpu_per_frame": total_cpu / frames,
        "wall_per_frame": total_wall / frames,
        "model_cpu_per_frame": spent["model_cpu"] / frames,
        "rest_cpu_per_frame": (total_cpu - spent["model_cpu"]) / frames,
        "runtime": str(detector.runtime.name),
    }


def measure_relay(clip: Path, frames: int = 60) -> dict[str, float]:
    enc, dec, sizes = [], [], []
    for i, frame in enumerate(open_frames(str(clip))):
        if i >= frames:
            break
        t0 = time.perf_counter()
        jpeg = encode_frame(frame)
        t1 = time.perf_counter()
        decode_frame(frame.camera, {b"jpeg": jpeg, b"index": b"0", b"t": b"0", b"ts": b"0"})
        t2 = time.perf_counter()
        enc.append(t1 - t0)
        dec.append(t2 - t1)
        sizes.append(len(jpeg))
    return {
        "encode_s": statistics.median(enc),
        "decode_s": statistics.median(dec),
        "bytes": statistics.median(sizes),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measured time per ingest step")
    ap.add_argument("--steps", default="1,4", help="ingest camera counts, comma-separated")
    ap.add_argument("--batches", type=int, default=12, help="detection batches measured")
    ap.add_argument("--batch-cameras", type=int, default=4, help="cameras (frames) per detection batch")
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--video", type=Path, default=ingest_capacity.PETS)
    ap.add_argument("--cameras", type=int, default=263, help="cameras of the site to size")
    ap.add_argument("--detect-fps", type=float, default=5.0, help="detection rate per camera")
    ap.add_argument("--decode-scale", type=float, default=1.0,
                    help="site camera pixel rate / 720p at 10 fps (1080p at 15 fps: 3.4)")  # fmt: skip
    ap.add_argument("--watched", type=int, default=16, help="cameras watched live at once")
    ap.add_argument("--server-cores", type=int, default=32, help="CPU cores per GPU server")
    ap.add_argument("--gpus", type=int, default=1, help="GPUs per server")
    ap.add_argument("--gpu-fps", type=float, default=ASSUMED_GPU_FPS,
                    help="ASSUMED frames/s of the model per GPU, batched (not measurable here)")  # fmt: skip
    ap.add_argument("--headroom", type=float, default=0.6, help="usable share of each resource")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    steps = [int(n) for n in args.steps.split(",")]

    clip = ingest_capacity.make_mp4(args.video, seconds=45, fps=10, size=(1280, 720), keyframe_every=20)
    cpus = len(os.sched_getaffinity(0))
    print(f"machine: {cpus} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at start")
    print("measured in this run:", flush=True)
    ingest = measure_ingest(clip, steps, args.seconds)
    det = measure_detection(clip, args.model, args.batch_cameras, args.batches)
    print(
        f"  detection ({det['runtime']}, 720p frames, batches of {args.batch_cameras}): "
        f"{det['cpu_per_frame']:.3f} CPU-s per frame = model {det['model_cpu_per_frame']:.3f} "
        f"+ tracker and rules {det['rest_cpu_per_frame']:.4f}; wall {det['wall_per_frame'] * 1000:.0f} ms "
        f"per frame ({1 / det['wall_per_frame']:.1f} frames/s on this machine)",
        flush=True,
    )
    relay = measure_relay(clip)
    print(
        f"  live relay, 720p JPEG q80: encode {relay['encode_s'] * 1000:.1f} ms (worker), decode "
        f"{relay['decode_s'] * 1000:.1f} ms (web), {relay['bytes'] / 1000:.0f} kB per frame",
        flush=True,
    )

    # -- the arithmetic ------------------------------------------------------------------------
    n, fps = args.cameras, args.detect_fps
    ingest_cpu = max(r.cpu_per_cam_s for r in ingest) * args.decode_scale  # the worst step
    rest_cpu = det["rest_cpu_per_frame"] * fps  # tracker + rules per camera-second
    cpu_detect = det["cpu_per_frame"] * fps  # the whole detection on the CPU, per camera-second
    relay_cpu = relay["encode_s"] * RELAY_FPS  # worker side, per watched camera
    cores_gpu_site = n * (ingest_cpu + rest_cpu) + args.watched * relay_cpu
    gpu_frames = n * fps
    gpus_needed = gpu_frames / (args.gpu_fps * args.headroom)
    servers_cpu = cores_gpu_site / (args.server_cores * args.headroom)
    servers = max(1, math.ceil(max(servers_cpu, gpus_needed / args.gpus)))
    capacity = math.ceil(n / servers)  # each worker's cap; on servers + 1, any one may fail
    cpu_only = math.ceil(n * (ingest_cpu + cpu_detect) / (args.server_cores * args.headroom))
    print(f"\nsizing {n} cameras, detection at {fps:g} fps each (720p10 decode x {args.decode_scale:g}):")
    print(f"  per camera: ingest+record {ingest_cpu:.3f} CPU-s/s; detection on CPU {cpu_detect:.3f} "
          f"CPU-s/s, of which tracker+rules {rest_cpu:.4f} (stays on the CPU with a GPU)")  # fmt: skip
    print(
        f"  CPU only: {n * (ingest_cpu + cpu_detect):.0f} cores in all ({n * cpu_detect:.0f} for "
        f"detection) -> {cpu_only} servers of {args.server_cores} cores at {args.headroom:.0%} use"
    )
    print(f"  with GPUs: {cores_gpu_site:.1f} CPU cores (ingest, record, tracker, rules, relay of "
          f"{args.watched} watched) and {gpu_frames:.0f} frames/s of inference = {gpus_needed:.2f} GPUs "
          f"at the ASSUMED {args.gpu_fps:g} frames/s per GPU and {args.headroom:.0%} use")  # fmt: skip
    print(
        "  (the model's pre- and post-processing, letterbox and NMS, counted above as model time, "
        "partly stays on the CPU with a GPU: not separated here)"
    )
    print(f"  -> {servers} server(s) of {args.server_cores} cores + {args.gpus} GPU, `bondwatch worker "
          f"--capacity {capacity}` each; {servers + 1} such servers survive the loss of any one")  # fmt: skip
    rec_mbit = clip.stat().st_size * 8 / 45 / 1e6  # the clip is 45 s long
    print(f"  recording: {rec_mbit:.1f} Mbit/s per camera (this clip) x {n} = {rec_mbit * n:.0f} Mbit/s "
          f"to the shared recordings, {rec_mbit * n / 8 * 86400 / 1e6:.1f} TB per day")  # fmt: skip
    mbit = args.watched * RELAY_FPS * relay["bytes"] * 8 / 1e6
    print(f"  live relay: {args.watched} watched cameras x {RELAY_FPS:g} fps x {relay['bytes'] / 1000:.0f} "
          f"kB = {mbit:.0f} Mbit/s through Redis")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
