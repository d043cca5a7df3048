"""`bondwatch worker`: ingest, recording, detection and rules for the cameras this process owns.

Many workers share one site through Redis: each announces itself with its capacity, computes
the same balanced plan (`bondwatch.leases.assign`) from the same state, hands over cameras the
plan moves away, and takes by lease the free cameras the plan gives it. Every write for a
camera (a segment, an outage, an alert) goes through the lease's fence, so a worker that lost
a camera writes nothing more for it. The worker holding the `@publisher` lease also publishes
the shared alert outbox to the stream. The live view of its cameras reaches `bondwatch web`
processes on other machines through Redis (`dashboard.remote`). The rule state of each camera
it detects on is checkpointed to Redis every second and on handover, and restored by the
camera's next owner (`RuleCheckpoints`), so a move neither repeats nor loses an alert. See
docs/scaling.md.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from alerts.bus import AlertBus
from alerts.evidence import Evidence, FrameRing
from alerts.outbox import Outbox, Publisher
from alerts.store import AlertStore
from bondwatch.db import database_url
from bondwatch.leases import Lease, LeaseKeeper, Leases, Registry, RuleStates, assign, connect
from bondwatch.scanbus import ScanReader
from bondwatch.scanlog import ScanLog
from bondwatch.service import AlertSink, Cameras, DetectionWorker, ScanListener, recording_store
from bondwatch.site import Site
from dashboard.remote import LivePublisher

if TYPE_CHECKING:
    from alerts.pipeline import Pipeline
    from detectors.yolo import Detector

logger = logging.getLogger(__name__)

# How long a Redis call of the lease machinery may take, as a part of the lease: short enough
# that a keeper learns of an outage with most of the lease still left.
CALL_TIMEOUT_PART = 1 / 6
# The outbox publisher's lease: one worker at a time publishes. No camera id can take this name.
PUBLISHER = "@publisher"
# How often each camera's rule state is checkpointed to Redis for its next owner.
CHECKPOINT_S = 1.0


class RuleCheckpoints(threading.Thread):
    """Writes the rule state of every camera this worker holds to Redis every CHECKPOINT_S,
    and once more on handover (`final`), fenced by the camera's lease (`RuleStates.save`).

    What happens between the last checkpoint and a crash is re-decided by the next owner from
    that checkpoint; alert ids are derived from the event (alerts.departure.event_id), so an
    alert raised twice that way is stored once.
    """

    def __init__(
        self, states: RuleStates, pipeline: Pipeline, keeper: LeaseKeeper, busy: threading.Lock
    ):
        """`busy`: the detection loop's lock from rule decision to alert emission
        (DetectionWorker.busy), so a checkpoint never drops an event whose alert is in flight."""
        super().__init__(name="rule-checkpoints", daemon=True)
        self.states = states
        self.pipeline = pipeline
        self.keeper = keeper
        self.busy = busy
        self.stopping = threading.Event()
        self._lock = threading.Lock()  # one save per camera at a time, the final one last

    def run(self) -> None:
        while not self.stopping.wait(CHECKPOINT_S):
            for cam in sorted(self.keeper.held()):
                if cam != PUBLISHER:
                    with self._lock:
                        lease = self.keeper.held().get(cam)  # not handed over meanwhile
                        if lease is not None:
                            self._save(lease)

    def final(self, lease: Lease) -> None:
        """The state as the camera leaves (its stream stopped, the lease still ours)."""
        with self._lock:
            self._save(lease)

    def restore(self, lease: Lease) -> None:
        """Start the rules of a camera just taken from the newest checkpoint, if any; raises
        redis.RedisError when it cannot be read (the caller lets the camera go again)."""
        saved = self.states.load(lease.camera)
        state = None
        if saved is not None:
            token, text = saved
            try:
                state = json.loads(text)
                self.pipeline.restore_state(lease.camera, state)
            except ValueError as e:
                logger.error("camera %s: unusable rule state of token %d, starting empty: %s",
                             lease.camera, token, e)  # fmt: skip
                state = None
        if state is None:
            self.pipeline.restore_state(lease.camera, None)
        logger.info("camera %s: rule state %s", lease.camera,
                    "taken over" if state is not None else "starts empty")  # fmt: skip

    def _save(self, lease: Lease) -> None:
        try:
            with self.busy:
                state = self.pipeline.export_state(lease.camera)
            text = json.dumps(state, separators=(",", ":"))
            if not self.states.save(lease, text):
                logger.warning("camera %s: rule state not saved: lease %d no longer ours",
                               lease.camera, lease.token)  # fmt: skip
        except redis.RedisError as e:
            logger.warning("camera %s: rule state not saved: %s", lease.camera, e)

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        self.join(timeout_s)


class Worker:
    """One worker process's loop: `run` until `stop` (from a signal handler) is called."""

    def __init__(
        self,
        site: Site,
        data_dir: Path,
        *,
        redis_url: str,
        worker_id: str,
        capacity: int,
        lease_s: float,
        model: Detector | None,
    ):
        self.site = site
        self.data_dir = data_dir
        self.redis_url = redis_url
        self.id = worker_id
        self.capacity = capacity
        self.lease_s = lease_s
        self.model = model
        self.tick_s = lease_s / 4
        self.by_id = {c.id: c for c in site.cameras}
        self.stopping = threading.Event()
        self._wake = threading.Event()  # a lost lease or a stop: act before the next tick
        self._lost: queue.SimpleQueue[str] = queue.SimpleQueue()
        client = connect(redis_url, lease_s * CALL_TIMEOUT_PART)
        self.leases = Leases(client, worker_id, lease_s)
        self.registry = Registry(client, ttl_s=lease_s)
        self.keeper = LeaseKeeper(self.leases, self._on_lost)
        self.rule_states = RuleStates(client)
        self.checkpoints: RuleCheckpoints | None = None  # when this worker detects
        self._publisher: Publisher | None = None

    def stop(self) -> None:
        self.stopping.set()
        self._wake.set()

    def run(self) -> int:
        db_url = database_url(self.data_dir)
        store = AlertStore(db_url)
        self.outbox = Outbox(store, fence=self.keeper.fence)
        self.bus = AlertBus(self.redis_url)
        recording = recording_store(self.site, self.data_dir, fence=self.keeper.fence)
        evidence = Evidence(self.data_dir, store, recording, self.site, FrameRing(), prepare_clips=True)
        sink = AlertSink(self.outbox, recording, evidence)
        self.cameras = Cameras(self.site, sink, recording, owned=True)
        listener: ScanListener | None = None
        detection: DetectionWorker | None = None
        if self.model is not None:
            from alerts.pipeline import Pipeline  # loads torch: only for a worker that detects

            stations = [z for z in self.site.zones if z.kind == "station"]
            backlog_s = max((z.scan_before_s + z.scan_grace_s for z in stations), default=0.0)
            # Every worker stores the scans it reads: the scan log is idempotent on the scan id.
            listener = ScanListener(ScanReader(self.redis_url, since_s=backlog_s), ScanLog(store.engine))
            pipeline = Pipeline(self.site, self.model)
            detection = DetectionWorker(self.cameras, pipeline, sink, listener.scans)
            self.checkpoints = RuleCheckpoints(self.rule_states, pipeline, self.keeper, detection.busy)
        # Health of the cameras it owns always, frames only of those a web process watches.
        live = LivePublisher(self.redis_url, self.cameras.latest, self.cameras.health)
        threads = [t for t in (self.keeper, listener, detection, self.checkpoints, live) if t is not None]
        for t in threads:
            t.start()
        logger.info(
            "worker %s: capacity %d, lease %.1f s, %d site cameras, detection %s",
            self.id, self.capacity, self.lease_s, len(self.by_id), "on" if detection else "off",
        )  # fmt: skip
        try:
            while not self.stopping.is_set():
                self.tick()
                self._wake.wait(self.tick_s)
                self._wake.clear()
        finally:
            logger.info("worker %s: stopping", self.id)
            self._release_all()
            for t in reversed(threads):
                t.stop()
            self.bus.close()
            store.close()
        return 0

    def tick(self) -> None:
        """Drop what lost its lease, then move toward the plan by one step."""
        while not self._lost.empty():
            self._drop(self._lost.get())
        ids = list(self.by_id)
        try:
            self.registry.heartbeat(self.id, self.capacity)
            plan = assign(self.registry.alive(), ids, self.leases.owners(ids))
            self._publish()
        except redis.RedisError as e:
            logger.warning("worker %s: Redis unreachable, keeping what the leases allow: %s", self.id, e)
            return
        for cam in sorted(self.keeper.held()):
            if cam != PUBLISHER and plan.get(cam) != self.id and not self.stopping.is_set():
                self._hand_over(cam, to=plan.get(cam))
        held = {c: x for c, x in self.keeper.held().items() if c != PUBLISHER}
        for cam, worker in plan.items():
            if worker != self.id or cam in held or len(held) >= self.capacity:
                continue
            if self.stopping.is_set():
                return
            try:
                lease = self.leases.acquire(cam)
            except redis.RedisError as e:
                logger.warning("camera %s: cannot take the lease: %s", cam, e)
                return
            if lease is None:
                continue  # its previous owner has not let it go yet
            if self.checkpoints is not None:
                try:
                    self.checkpoints.restore(lease)
                except redis.RedisError as e:
                    logger.warning("camera %s: cannot read its rule state, letting it go: %s", cam, e)
                    self._release(lease)
                    return
            self.keeper.add(lease)
            held[cam] = lease
            logger.info("camera %s: taken by worker %s (token %d)", cam, self.id, lease.token)
            self.cameras.open(self.by_id[cam])

    def _publish(self) -> None:
        """Run the outbox publisher while this worker holds the publisher's lease.

        One publisher for all workers keeps each alert to one stream entry; in the moment a
        lease changes hands two may overlap, and the repeat carries the same alert id, which
        consumers drop (see alerts/outbox.py).
        """
        if self._publisher is not None:
            return
        lease = self.leases.acquire(PUBLISHER)
        if lease is None:
            return
        self.keeper.add(lease)
        self._publisher = Publisher(self.outbox, self.bus)
        self._publisher.start()
        logger.info("worker %s: publishes the alert outbox (token %d)", self.id, lease.token)

    def _drop(self, name: str) -> None:
        """Stop acting on a camera, or stop publishing."""
        if name != PUBLISHER:
            self.cameras.close(name)
            if self.checkpoints is not None:
                # Whatever the rules hold for it now belongs to the next owner.
                self.checkpoints.pipeline.restore_state(name, None)
        elif self._publisher is not None:
            self._publisher.stop()
            self._publisher = None

    def _hand_over(self, name: str, to: str | None) -> None:
        """Stop first, while the lease still fences the last writes in, and checkpoint the
        rule state as the camera leaves; then let it go."""
        if name != PUBLISHER:
            self.cameras.close(name)
            held = self.keeper.held().get(name)
            if held is not None and self.checkpoints is not None:
                # Before the keeper lets go: an alert still being emitted is fenced in, not out.
                self.checkpoints.final(held)
        lease = self.keeper.remove(name)
        self._drop(name)
        if lease is None:
            return  # lost meanwhile; `tick` has dropped it
        self._release(lease)
        logger.info("%s: handed over by worker %s to %s", name, self.id, to or "nobody")

    def _release(self, lease: Lease) -> None:
        try:
            self.leases.release(lease)
        except redis.RedisError as e:
            logger.warning("%s: release failed, the lease runs out by itself: %s", lease.camera, e)

    def _release_all(self) -> None:
        for name in sorted(self.keeper.held()):
            self._hand_over(name, to=None)
        while not self._lost.empty():
            self._drop(self._lost.get())
        try:
            self.registry.leave(self.id)
        except redis.RedisError as e:
            logger.warning("worker %s: could not sign off, its heartbeat runs out: %s", self.id, e)

    def _on_lost(self, name: str) -> None:
        """From the keeper's thread: writes are already fenced off; the loop stops the rest."""
        self._lost.put(name)
        self._wake.set()
