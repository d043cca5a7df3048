"""A camera's rule state follows it to its next owner: real `bondwatch worker` processes with
the real model, one real Redis, a clip in which a person stands in three restricted zones.

Three workers of capacity 1: one owns the camera, two stand by. A clean handover (SIGTERM) and
a crash (SIGKILL) move the camera while the person is inside
and two of the three entries still wait for their badge windows: the person is alerted once
per zone, each alert with the entry's original time, the waiting entries decided exactly once
by whichever worker owns the camera when their window ends.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis
from conftest import MODEL, PETS_VIDEO, wait_for
from test_worker import Workers as BaseWorkers

from alerts.outbox import Outbox, OutboxRow
from alerts.rules import RuleEngine
from alerts.store import AlertRow, AlertStore
from bondwatch.leases import Leases, RuleStates, WriteToken, lease_key, worker_key
from bondwatch.site import parse_site

LEASE_S = 3.0
CAMERA = "cam"
# The person of the clip stands with their feet at about (153, 155).
ZONE = "[[113,115],[193,115],[193,195],[113,195]]"
WINDOWS = {"now": 0, "later": 8, "last": 18}  # badge window of each zone, seconds


@pytest.fixture(scope="module")
def still_clip(tmp_path_factory) -> Path:
    """Six seconds of one PETS picture (a crop with a single person), 320x240 at 5 fps."""
    assert PETS_VIDEO.is_file(), f"the PETS clip is missing at {PETS_VIDEO}"
    out = tmp_path_factory.mktemp("still")
    png = out / "person.png"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-ss", "40", "-i", str(PETS_VIDEO),
                    "-frames:v", "1", "-vf", "crop=320:240:128:110", str(png)], check=True)  # fmt: skip
    clip = out / "person.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-loop", "1", "-framerate", "5", "-i", str(png),
         "-t", "6", "-c:v", "libx264", "-preset", "ultrafast", "-g", "5", "-bf", "0",
         "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    return clip


def write_site(path: Path, clip: Path) -> Path:
    zones = "".join(
        f"  - {{id: {z}, camera: {CAMERA}, kind: restricted, dwell_s: 1, badge_window_s: {w},"
        f" polygon: {ZONE}}}\n"
        for z, w in WINDOWS.items()
    )
    path.write_text(
        "recording:\n  enabled: false\n"
        f"cameras:\n  - id: {CAMERA}\n    url: {clip}\n    detect_fps: 5\n"
        f"zones:\n{zones}"
    )
    return path


class Workers(BaseWorkers):
    """One-camera workers running the model (test_worker's run without one)."""

    def __init__(self, site: Path, data: Path, redis_url: str, logs: Path):
        super().__init__(site, data, redis_url, logs, capacity=1, model=str(MODEL), lease_s=LEASE_S)

    def owner(self) -> str | None:
        value = self.client.get(lease_key(CAMERA))
        return value.split("|")[0] if value else None

    def alive(self, worker: str) -> bool:
        return bool(self.client.exists(worker_key(worker)))


def test_person_inside_and_waiting_entries_survive_a_clean_handover_and_a_crash(
    tmp_path, still_clip, redis_server
):
    site = write_site(tmp_path / "site.yaml", still_clip)
    data = tmp_path / "data"
    workers = Workers(site, data, redis_server.url, tmp_path)
    store: AlertStore | None = None

    def entries() -> dict[str, list[tuple[float | None, str]]]:
        assert store is not None
        out: dict[str, list[tuple[float | None, str]]] = {z: [] for z in WINDOWS}
        for a in store.recent(types=["unauthorized_entry"]):
            out[a.zone or ""].append((a.ts, a.id))
        return out

    def logs() -> str:
        return "\n".join(f"--- {w}\n{workers.log(w)[-3000:]}" for w in sorted(workers.procs))

    try:
        for w in ("w1", "w2", "w3"):  # one owns the camera, two stand by
            workers.start(w)
        assert wait_for(lambda: all(workers.alive(w) for w in workers.procs), timeout_s=90), logs()
        first = wait_for(workers.owner, timeout_s=30)
        assert first, logs()
        store = AlertStore(f"sqlite:///{data.resolve()}/bondwatch.db")
        assert wait_for(lambda: entries()["now"], timeout_s=30), logs()
        got = entries()
        assert got["later"] == [] and got["last"] == [], f"the badge windows ran out already: {got}"

        # Clean handover: the owner stops, checkpoints the camera's rule state, lets it go.
        workers.procs[first].terminate()
        assert workers.procs[first].wait(30) == 0
        second = wait_for(lambda: (o := workers.owner()) not in (None, first) and o, timeout_s=LEASE_S * 3)
        assert second, logs()
        assert wait_for(lambda: "rule state taken over" in workers.log(second), timeout_s=5), logs()
        assert wait_for(lambda: entries()["later"], timeout_s=WINDOWS["later"] + 15), logs()
        assert entries()["last"] == [], "the last window ran out before the crash"

        # Crash: SIGKILL the second owner; the third takes the camera within about a lease, from
        # the second's last checkpoint.
        workers.procs[second].kill()
        third = wait_for(
            lambda: (o := workers.owner()) not in (None, first, second) and o, timeout_s=LEASE_S * 3
        )
        assert third, logs()
        assert wait_for(lambda: entries()["last"], timeout_s=WINDOWS["last"] + 15), logs()
        time.sleep(3.0)  # the third keeps seeing the person in all three zones
        assert workers.log(third).count("rule state taken over") == 1

        got = entries()
        assert {z: len(v) for z, v in got.items()} == {"now": 1, "later": 1, "last": 1}, (got, logs())
        entered = {ts for v in got.values() for ts, _ in v}
        assert len(entered) == 1, f"the three alerts are one entry's: {got}"
    finally:
        workers.stop_all()
        if store is not None:
            store.close()


def test_rule_state_is_written_only_by_the_camera_current_owner(redis_server):
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    states = RuleStates(client)
    a = Leases(client, "a", lease_s=1.0)
    b = Leases(client, "b", lease_s=10.0)
    old = a.acquire(CAMERA)
    assert old is not None
    assert states.save(old, '{"n": 1}') and states.load(CAMERA) == (old.token, '{"n": 1}')
    time.sleep(1.1)  # a's lease runs out (a paused process), b takes the camera
    new = b.acquire(CAMERA)
    assert new is not None and new.token > old.token
    assert not states.save(old, '{"n": 2}'), "a stale owner overwrote its successor's state"
    assert states.save(new, '{"n": 3}')
    assert states.load(CAMERA) == (new.token, '{"n": 3}')
    b.release(new)
    assert not states.save(new, '{"n": 4}'), "written after its lease was released"
    assert states.load("other") is None


def test_an_event_decided_by_two_owners_is_stored_and_queued_once(db_url):
    """The old owner stores an entry it decided after its last checkpoint; the new owner,
    restored from that checkpoint, decides it again: one alert row, one outbox row."""
    import json

    from sqlalchemy import func, select
    from sqlalchemy.orm import Session
    from test_handover_rules import CAGE_IN, CAGE_OUT, FPS, NEW_IDS, SITE, batch, person, seq

    site = parse_site(SITE.format(dwell=1, window=2))
    timeline = seq((5, person(CAGE_OUT)), (60, person(CAGE_IN)))
    old, new = RuleEngine(site), RuleEngine(site)
    stores = [AlertStore(db_url), AlertStore(db_url)]  # two workers, one database
    try:
        old_box = Outbox(stores[0], fence=lambda cam: WriteToken("w1", 5))
        new_box = Outbox(stores[1], fence=lambda cam: WriteToken("w2", 6))
        checkpoint = None
        stored = []
        for i, frame in enumerate(timeline[:30]):
            if i == 12:
                checkpoint = json.loads(json.dumps(old.export_state("cam")))
            stored += [old_box.emit(a) for a in old.process(batch(i, frame, i / FPS))]
        new.restore_state("cam", checkpoint)
        later = [batch(i, timeline[i], (i - 32) / FPS, NEW_IDS) for i in range(32, 65)]
        again = [a for b in later for a in new.process(b)]
        assert stored == [True] and len(again) == 1
        assert new_box.emit(again[0]) is False
        with Session(stores[0].engine) as s:
            assert s.scalar(select(func.count()).select_from(AlertRow)) == 1
            assert s.scalar(select(func.count()).select_from(OutboxRow)) == 1
    finally:
        for store in stores:
            store.close()
