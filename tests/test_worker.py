"""`bondwatch worker` processes sharing twelve cameras through one real Redis: failover on
SIGKILL, rebalance when a worker joins, and no write from a worker paused past its lease."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from conftest import MODEL, pattern_clip, wait_for

from bondwatch.leases import lease_key
from bondwatch.worker import PUBLISHER
from streams.recordings import RecordingStore

LEASE_S = 3.0
CAMERAS = [f"cam{i:02d}" for i in range(12)]
SEGMENT_S = 2.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """Four seconds of a moving test pattern, 320x240 at 5 fps, a keyframe every second."""
    return pattern_clip(tmp_path_factory.mktemp("clip") / "pattern.mp4", 5)


def write_site(path: Path, clip: Path) -> Path:
    lines = [f"recording:\n  segment_s: {SEGMENT_S}\n", "cameras:\n"]
    lines += [f"  - id: {cam}\n    url: {clip}\n    detect_fps: 1\n" for cam in CAMERAS]
    path.write_text("".join(lines))
    return path


class Workers:
    """`bondwatch worker` subprocesses of one site, each logging to its own file."""

    def __init__(
        self, site: Path, data: Path, redis_url: str, logs: Path, *,
        capacity: int = 6, model: str = "none", lease_s: float = LEASE_S,
    ):  # fmt: skip
        self.site, self.data, self.redis_url, self.logs = site, data, redis_url, logs
        self.capacity, self.model, self.lease_s = capacity, model, lease_s
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.client = redis.Redis.from_url(redis_url, decode_responses=True)

    def start(self, worker: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        log = (self.logs / f"{worker}.log").open("ab")  # a worker started again goes on in its log
        self.procs[worker] = subprocess.Popen(
            [sys.executable, "-c", "import sys; from bondwatch.cli import main; sys.exit(main())",
             "worker", "--site", str(self.site), "--data", str(self.data), "--redis", self.redis_url,
             "--worker-id", worker, "--capacity", str(self.capacity), "--lease-s", str(self.lease_s),
             "--model", self.model],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip

    def log(self, worker: str) -> str:
        return (self.logs / f"{worker}.log").read_text(errors="replace")

    def leases(self) -> dict[str, tuple[str, int]]:
        """Camera -> (owner, fencing token) of every camera leased now."""
        values = self.client.mget([lease_key(c) for c in CAMERAS])
        split = {c: v.split("|") for c, v in zip(CAMERAS, values, strict=True) if v}
        return {c: (owner, int(token)) for c, (owner, token) in split.items()}

    def publisher(self) -> str | None:
        """The worker that publishes the alert outbox now."""
        value = self.client.get(lease_key(PUBLISHER))
        return value.split("|")[0] if value else None

    def owners(self) -> dict[str, str]:
        return {c: owner for c, (owner, _) in self.leases().items()}

    def loads(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for w in self.owners().values():
            out[w] = out.get(w, 0) + 1
        return out

    def stop_all(self) -> dict[str, int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        codes = {}
        for w, proc in self.procs.items():
            try:
                codes[w] = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[w] = None
        return codes


def test_workers_fail_over_rebalance_and_fence_a_paused_worker(tmp_path, clip, redis_server):
    site = write_site(tmp_path / "site.yaml", clip)
    data = tmp_path / "data"
    workers = Workers(site, data, redis_server.url, tmp_path)
    victim = None
    try:
        for w in ("w1", "w2", "w3"):
            workers.start(w)
        assert wait_for(lambda: workers.loads() == {"w1": 4, "w2": 4, "w3": 4}, timeout_s=60), (
            workers.loads(), workers.log("w1")[-2000:],
        )  # fmt: skip
        store = RecordingStore(f"sqlite:///{data.resolve()}/bondwatch.db", data / "recordings")

        def recorded_by_owners() -> bool:
            written = {(c, owner, token) for c, _, owner, token in store.writers()}
            return all((c, *lease) in written for c, lease in workers.leases().items())

        assert wait_for(recorded_by_owners, timeout_s=30)

        # SIGKILL the worker that publishes the alerts: its cameras and the publishing are taken
        # over by the others within about a lease time.
        victim = workers.publisher()
        assert victim in ("w1", "w2", "w3")
        rest = sorted({"w1", "w2", "w3"} - {victim})
        victim_tokens = {c: token for c, (owner, token) in workers.leases().items() if owner == victim}
        workers.procs[victim].kill()
        killed = time.monotonic()
        assert wait_for(lambda: set(workers.loads()) == set(rest) and len(workers.owners()) == 12,
                        timeout_s=LEASE_S * 4)  # fmt: skip
        takeover_s = time.monotonic() - killed
        assert takeover_s <= LEASE_S * 1.25 + 1.0, f"takeover took {takeover_s:.1f} s"
        assert workers.loads() == {rest[0]: 6, rest[1]: 6}
        assert wait_for(lambda: workers.publisher() in rest, timeout_s=LEASE_S * 2)

        # A fourth worker joins: the others hand it their surplus, two each.
        before = workers.owners()
        workers.start("w4")
        balanced = {rest[0]: 4, rest[1]: 4, "w4": 4}
        assert wait_for(lambda: workers.loads() == balanced, timeout_s=60), workers.loads()
        after = workers.owners()
        assert sum(before[c] != after[c] for c in CAMERAS) == 4, "only the four for w4 move"

        # The victim's cameras are recorded again, the hole no longer than a lease plus the
        # segment that died with it (its part file was never indexed).
        def resumed() -> dict[str, float]:
            holes = {}
            for cam, token in victim_tokens.items():
                rows = store.writers(cam)
                segs = {s.seq: s for s in store.segments(cam)}
                before = [segs[seq] for _, seq, _, t in rows if t <= token]
                after = [segs[seq] for _, seq, _, t in rows if t > token]
                if before and after:
                    holes[cam] = after[0].start_ts - before[-1].end_ts
            return holes if set(holes) == set(victim_tokens) else {}

        holes = wait_for(resumed, timeout_s=30)
        print(f"takeover after SIGKILL {takeover_s:.1f} s; recording holes {sorted(holes.values())}")
        assert holes and max(holes.values()) <= LEASE_S * 1.25 + SEGMENT_S * 2 + 2.0, holes

        # SIGSTOP a worker past its lease: the others take its cameras; once resumed it writes
        # nothing for them (its recorders try, the fence refuses), and later takes cameras anew.
        paused = rest[0]
        paused_tokens = {c: token for c, (owner, token) in workers.leases().items() if owner == paused}
        workers.procs[paused].send_signal(signal.SIGSTOP)
        assert wait_for(lambda: paused not in workers.loads() and len(workers.owners()) == 12,
                        timeout_s=LEASE_S * 4), workers.loads()  # fmt: skip
        time.sleep(SEGMENT_S)  # the new owners record on; the paused worker's segments outlast its lease
        workers.procs[paused].send_signal(signal.SIGCONT)
        assert wait_for(lambda: "not written" in workers.log(paused), timeout_s=LEASE_S * 3), (
            workers.log(paused)[-3000:]
        )
        assert wait_for(lambda: workers.loads() == balanced, timeout_s=60), workers.loads()
        for cam, old in paused_tokens.items():
            rows = store.writers(cam)
            tokens = [token for _, _, _, token in rows]
            assert tokens == sorted(tokens), f"{cam}: a stale token wrote after a newer one: {rows}"
            assert any(token > old for token in tokens), f"{cam}: its new owner recorded nothing"
        assert store.verify() == []
    finally:
        codes = workers.stop_all()
    assert codes == {w: -signal.SIGKILL if w == victim else 0 for w in ("w1", "w2", "w3", "w4")}, codes
    assert workers.owners() == {} and workers.publisher() is None, "a clean stop releases every lease"


def test_detection_starts_over_on_a_camera_taken_back(tmp_path, pets_video):
    """A camera handed over and taken back gets a new stream whose frames count from zero
    again: detection must follow the new stream, not wait for its old frame numbers."""
    from alerts.outbox import Outbox
    from alerts.pipeline import Pipeline
    from alerts.store import AlertStore
    from bondwatch.service import AlertSink, Cameras, DetectionWorker
    from bondwatch.site import load_site
    from detectors.yolo import Detector

    site_file = tmp_path / "site.yaml"
    site_file.write_text(
        f"recording:\n  enabled: false\ncameras:\n  - id: pets\n    url: {pets_video}\n    detect_fps: 5\n"
    )
    site = load_site(site_file)
    store = AlertStore(f"sqlite:///{tmp_path}/db.sqlite")
    sink = AlertSink(Outbox(store), None)
    cameras = Cameras(site, sink, None, owned=True)
    detector = Detector(MODEL, conf=site.detection.conf, batch_size=site.detection.batch_size)
    detection = DetectionWorker(cameras, Pipeline(site, detector), sink, queue.SimpleQueue())
    detection.start()
    try:
        cameras.open(site.cameras[0])
        first = wait_for(lambda: (b := cameras.batches.get("pets")) is not None and b.index >= 30 and b, 60)
        assert first, "no detection on the camera"
        cameras.close("pets")
        assert "pets" not in cameras.batches
        cameras.open(site.cameras[0])
        again = wait_for(
            lambda: (b := cameras.batches.get("pets")) is not None and b.index < first.index and b, 30
        )
        assert again, "detection stayed blind on the re-opened camera"
        assert again.detections, "PETS shows people from its first frames"
    finally:
        detection.stop()
        cameras.close("pets")
        store.close()


@pytest.mark.parametrize(
    ("history", "owned", "online_alerts"),
    [
        pytest.param([], False, 0, id="never-dark"),
        pytest.param(["camera_offline"], False, 1, id="dark-at-the-last-stop"),
        pytest.param(["camera_offline", "camera_online"], False, 0, id="back-before-the-stop"),
        pytest.param(["camera_offline"], True, 1, id="dark-under-its-last-owner"),
    ],
)
def test_a_camera_dark_when_the_service_stopped_is_reported_back(tmp_path, history, owned, online_alerts):
    """The store remembers a camera that went dark: a service started since (or a worker that
    takes the camera over) reports its return, so its outage does not last forever."""
    from alerts.outbox import Outbox
    from alerts.store import AlertStore
    from alerts.types import Alert
    from bondwatch.service import AlertSink, Cameras
    from bondwatch.site import parse_site
    from streams.camera import CameraHealth

    site = parse_site("recording: {enabled: false}\ncameras: [{id: dock, url: 'rtsp://127.0.0.1:9/x'}]\n")
    store = AlertStore(f"sqlite:///{tmp_path}/db.sqlite")
    for k, kind in enumerate(history):
        store.add(Alert(type=kind, camera="dock", t=0.0, ts=1000.0 + k))
    cameras = Cameras(site, AlertSink(Outbox(store), None), None, owned=owned)
    if owned:
        cameras.open(site.cameras[0])
    try:
        cameras._on_state(CameraHealth("dock", "live", 10.0, 1, 0, 0, 0, 1.0, ""))
        kinds = [a.type for a in store.recent(types=["camera_online"])]
        assert len(kinds) == history.count("camera_online") + online_alerts
    finally:
        for cam in list(cameras.streams):
            cameras.close(cam)
