"""Camera leases, fencing and the balanced assignment, against a real redis-server."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import wait_for

from alerts.outbox import AlertWriterRow, Outbox
from alerts.store import AlertStore
from alerts.types import Alert
from bondwatch.leases import (
    LeaseKeeper,
    Leases,
    Registry,
    WriteToken,
    assign,
    connect,
    lease_key,
    quotas,
)
from streams.recordings import NewSegment, RecordingStore


def cams(n: int) -> list[str]:
    return [f"c{i:02d}" for i in range(n)]


def owned_by(spec: dict[str, int]) -> dict[str, str]:
    """{"a": 4, "b": 4} -> c00..c03 owned by a, c04..c07 by b (in the order given)."""
    owners, i = {}, 0
    for worker, n in spec.items():
        for _ in range(n):
            owners[f"c{i:02d}"] = worker
            i += 1
    return owners


def loads(plan: dict[str, str | None]) -> dict[str | None, int]:
    out: dict[str | None, int] = {}
    for w in plan.values():
        out[w] = out.get(w, 0) + 1
    return out


def moves(plan: dict[str, str | None], owners: dict[str, str]) -> int:
    return sum(1 for c, w in owners.items() if plan.get(c) != w)


@pytest.mark.parametrize(
    ("case", "capacities", "n", "owners", "want_loads", "want_moves"),
    [
        ("first start", {"a": 8, "b": 8, "c": 8}, 12, {}, {"a": 4, "b": 4, "c": 4}, 0),
        ("a fourth joins", {"a": 8, "b": 8, "c": 8, "d": 8}, 12, owned_by({"a": 4, "b": 4, "c": 4}),
         {"a": 3, "b": 3, "c": 3, "d": 3}, 3),
        ("one leaves", {"a": 8, "b": 8, "c": 8}, 12, owned_by({"a": 3, "b": 3, "c": 3, "d": 3}),
         {"a": 4, "b": 4, "c": 4}, 3),
        ("balanced stays put", {"a": 8, "b": 8, "c": 8}, 13, owned_by({"c": 5, "a": 4, "b": 4}),
         {"a": 4, "b": 4, "c": 5}, 0),
        ("capacity caps the share", {"a": 2, "b": 10}, 6, {}, {"a": 2, "b": 4}, 0),
        ("an owner over a lowered capacity", {"a": 1, "b": 8}, 4, owned_by({"a": 3, "b": 1}),
         {"a": 1, "b": 3}, 2),
        ("more cameras than capacity", {"a": 2, "b": 2}, 6, {}, {"a": 2, "b": 2, None: 2}, 0),
        ("no workers", {}, 3, owned_by({"gone": 3}), {None: 3}, 3),
        ("unbalanced: the surplus moves", {"a": 8, "b": 8}, 8, owned_by({"a": 8}), {"a": 4, "b": 4}, 4),
    ],
)  # fmt: skip
def test_assign(case, capacities, n, owners, want_loads, want_moves):
    plan = assign(capacities, cams(n), owners)
    assert sorted(plan) == cams(n), case
    assert loads(plan) == want_loads, case
    assert moves(plan, owners) == want_moves, case
    assert plan == assign(capacities, reversed(cams(n)), dict(reversed(owners.items()))), case


def test_assign_never_exceeds_capacity_and_moves_only_the_surplus():
    """Workers come and go in a fixed pseudo-random order; each plan respects every capacity
    and moves exactly the cameras of gone workers, the unowned ones and the owners' surplus."""
    import random

    rng = random.Random(8)
    owners: dict[str, str] = {}
    workers: dict[str, int] = {}
    for step in range(200):
        if workers and rng.random() < 0.4:
            del workers[rng.choice(sorted(workers))]
        else:
            workers[f"w{step}"] = rng.randint(1, 9)
        cameras = cams(rng.randint(5, 30))
        plan = assign(workers, cameras, owners)
        load = loads(plan)
        assert all(load.get(w, 0) <= cap for w, cap in workers.items())
        live = {c: w for c, w in owners.items() if w in workers and c in cameras}
        held = loads(dict(live))
        share = quotas(workers, len(cameras), held)
        surplus = sum(max(0, held.get(w, 0) - share[w]) for w in workers)
        assert moves(plan, live) == surplus
        assert load.get(None, 0) == len(cameras) - min(len(cameras), sum(workers.values()))
        owners = {c: w for c, w in plan.items() if w is not None}


def test_acquire_is_exclusive_and_each_takeover_draws_a_newer_token(redis_server):
    client = connect(redis_server.url, 1.0)
    a, b = Leases(client, "a", 5.0), Leases(client, "b", 5.0)
    first = a.acquire("cam1")
    assert first is not None
    assert b.acquire("cam1") is None
    assert a.owners(["cam1", "cam2"]) == {"cam1": "a"}
    assert a.release(first)
    second = b.acquire("cam1")
    assert second is not None and second.token > first.token
    assert not a.release(first), "a stale lease must not release its successor's"
    assert a.renew([first]) == []
    assert [x.token for x in b.renew([second])] == [second.token]
    assert b.holds(second) and not a.holds(first)
    assert client.get(lease_key("cam1")) == f"b|{second.token}"


def test_tokens_keep_growing_after_redis_lost_its_data(redis_server):
    """A Redis restarted empty must not hand out a token the stores already hold: they would
    refuse every writer of that camera from then on."""
    before = Leases(connect(redis_server.url, 1.0), "a", 5.0).acquire("cam1")
    assert before is not None
    redis_server.kill()
    time.sleep(1.0)  # the floor counts seconds; no real Redis comes back empty faster
    redis_server.start()
    after = Leases(connect(redis_server.url, 1.0), "b", 5.0).acquire("cam1")
    assert after is not None and after.token > before.token


def test_registry_forgets_a_worker_whose_heartbeat_ran_out(redis_server):
    client = connect(redis_server.url, 1.0)
    registry = Registry(client, ttl_s=0.3)
    registry.heartbeat("a", 4)
    Registry(client, ttl_s=30).heartbeat("b", 2)
    assert registry.alive() == {"a": 4, "b": 2}
    assert wait_for(lambda: registry.alive() == {"b": 2}, timeout_s=3.0)
    registry.leave("b")
    assert registry.alive() == {}


def test_keeper_renews_past_the_lease_then_reports_loss_within_a_lease_when_redis_stops(redis_server):
    lease_s = 1.2
    leases = Leases(connect(redis_server.url, lease_s / 6), "a", lease_s)
    lost: list[tuple[str, float]] = []
    keeper = LeaseKeeper(leases, lambda cam: lost.append((cam, time.monotonic())))
    lease = leases.acquire("cam1")
    assert lease is not None
    keeper.add(lease)
    keeper.start()
    try:
        time.sleep(lease_s * 2)  # two lease times: only renewals keep it
        assert not lost and keeper.fence("cam1") == WriteToken("a", lease.token)
        assert redis_server.proc is not None
        redis_server.kill()
        killed = time.monotonic()
        assert wait_for(lambda: lost, timeout_s=lease_s * 2)
        assert lost[0][0] == "cam1"
        assert lost[0][1] - killed <= lease_s, "the keeper must give the camera up within a lease"
        assert keeper.fence("cam1") is None and keeper.held() == {}
    finally:
        keeper.stop()


def test_keeper_reports_a_lease_taken_over_after_a_pause(redis_server):
    """A keeper that could not renew in time (here: not started, as if paused) loses the
    camera to the next owner; its fence refuses from then on, locally and in Redis."""
    client = connect(redis_server.url, 0.5)
    a = Leases(client, "a", 0.8)
    lost: list[str] = []
    keeper = LeaseKeeper(a, lost.append)
    lease = a.acquire("cam1")
    assert lease is not None
    keeper.add(lease)
    assert keeper.fence("cam1") == WriteToken("a", lease.token)
    b = Leases(client, "b", 5.0)
    taken = wait_for(lambda: b.acquire("cam1"), timeout_s=3.0)
    assert taken is not None and taken.token > lease.token
    assert keeper.fence("cam1") is None
    keeper.start()
    try:
        assert wait_for(lambda: lost == ["cam1"], timeout_s=2.0)
    finally:
        keeper.stop()
    assert client.get(lease_key("cam1")) == f"b|{taken.token}"


class StaleFence:
    """A fence whose answer was right when it was asked, before a pause: the store's own
    check against newer tokens is what must refuse it."""

    def __init__(self, writer: WriteToken):
        self.writer = writer

    def __call__(self, camera: str) -> WriteToken:
        return self.writer


def _segment(tmp_path: Path, store: RecordingStore, camera: str, start_ts: float) -> tuple[NewSegment, Path]:
    part = tmp_path / f"{camera}-{start_ts}.mp4.part"
    part.write_bytes(b"segment bytes %f" % start_ts)
    final = store.root / camera / f"{camera}-{start_ts}.mp4"
    final.parent.mkdir(parents=True, exist_ok=True)
    return NewSegment(camera, part, start_ts, 0.0, 2.0, 10), final


def test_recording_refuses_a_writer_whose_lease_is_gone_or_whose_token_is_older(redis_server, tmp_path):
    client = connect(redis_server.url, 0.5)
    url = f"sqlite:///{tmp_path}/db.sqlite"
    a = Leases(client, "a", 0.6)
    keeper_a = LeaseKeeper(a, lambda cam: None)
    store_a = RecordingStore(url, tmp_path / "rec", fence=keeper_a.fence)
    lease_a = a.acquire("cam1")
    assert lease_a is not None
    keeper_a.add(lease_a)
    keeper_a.start()
    time.sleep(1.0)  # past the first lease time: renewed
    assert store_a.add_segment(*_segment(tmp_path, store_a, "cam1", 100.0)) is not None
    keeper_a.stop()  # as if the process were paused: no renewal any more

    b = Leases(client, "b", 30.0)
    lease_b = wait_for(lambda: b.acquire("cam1"), timeout_s=3.0)
    assert lease_b is not None
    new, final = _segment(tmp_path, store_a, "cam1", 102.0)
    assert store_a.add_segment(new, final) is None, "a lost the lease: its segment is refused"
    assert not new.path.exists() and not final.exists()
    store_a.note_outage("cam1", "a stops")
    assert store_a.gaps("cam1") == []

    store_b = RecordingStore(url, tmp_path / "rec", fence=StaleFence(lease_b.write_token()))
    assert store_b.add_segment(*_segment(tmp_path, store_b, "cam1", 102.0)) is not None
    paused_a = RecordingStore(url, tmp_path / "rec", fence=StaleFence(lease_a.write_token()))
    assert paused_a.add_segment(*_segment(tmp_path, paused_a, "cam1", 104.0)) is None
    paused_a.note_outage("cam1", "a wakes up")
    assert paused_a.gaps("cam1") == []
    assert store_b.writers("cam1") == [("cam1", 1, "a", lease_a.token), ("cam1", 2, "b", lease_b.token)]
    assert [s.seq for s in store_b.segments("cam1")] == [1, 2]
    assert store_b.verify("cam1") == []


def test_unfenced_recording_store_writes_as_before(tmp_path):
    store = RecordingStore(f"sqlite:///{tmp_path}/db.sqlite", tmp_path / "rec")
    assert store.add_segment(*_segment(tmp_path, store, "cam1", 100.0)) is not None
    assert store.writers() == []


def test_alerts_refused_for_a_lost_camera_and_for_an_older_token(redis_server, tmp_path):
    client = connect(redis_server.url, 0.5)
    store = AlertStore(f"sqlite:///{tmp_path}/db.sqlite")
    a = Leases(client, "a", 0.6)
    keeper_a = LeaseKeeper(a, lambda cam: None)
    outbox_a = Outbox(store, fence=keeper_a.fence)
    lease_a = a.acquire("cam1")
    assert lease_a is not None
    keeper_a.add(lease_a)
    keeper_a.start()
    time.sleep(1.0)  # past the first lease time: renewed
    first = Alert(type="unauthorized_entry", camera="cam1", t=1.0, ts=time.time(), zone="z")
    assert outbox_a.emit(first)
    assert not outbox_a.emit(Alert(type="camera_tamper", camera="cam2", t=1.0)), "never leased"
    keeper_a.stop()  # as if the process were paused: no renewal any more

    lease_b = wait_for(lambda: Leases(client, "b", 30.0).acquire("cam1"), timeout_s=3.0)
    assert lease_b is not None
    late = Alert(type="unauthorized_entry", camera="cam1", t=2.0, ts=time.time(), zone="z")
    assert not outbox_a.emit(late)
    by_b = Alert(type="unauthorized_entry", camera="cam1", t=3.0, ts=time.time(), zone="z")
    assert Outbox(store, fence=StaleFence(lease_b.write_token())).emit(by_b)
    paused = Alert(type="unauthorized_entry", camera="cam1", t=4.0, ts=time.time(), zone="z")
    assert not Outbox(store, fence=StaleFence(lease_a.write_token())).emit(paused)

    stored = {x.id for x in store.recent()}
    assert stored == {first.id, by_b.id}
    assert [r.alert_id for r in Outbox(store).pending()] == [first.id, by_b.id]
    with store.transaction() as s:
        rows = {(r.alert_id, r.owner, r.token) for r in s.query(AlertWriterRow)}
    assert rows == {(first.id, "a", lease_a.token), (by_b.id, "b", lease_b.token)}


def test_keeper_handles_leases_added_and_removed_from_other_threads(redis_server):
    leases = Leases(connect(redis_server.url, 0.2), "a", 0.6)
    keeper = LeaseKeeper(leases, lambda cam: None)
    keeper.start()
    try:
        taken = [leases.acquire(f"cam{i}") for i in range(6)]
        adders = [threading.Thread(target=keeper.add, args=(x,)) for x in taken if x is not None]
        for t in adders:
            t.start()
        for t in adders:
            t.join()
        time.sleep(1.5)  # more than two lease times
        assert sorted(keeper.held()) == [f"cam{i}" for i in range(6)]
        released = keeper.remove("cam0")
        assert released is not None and leases.release(released)
        assert leases.owners([f"cam{i}" for i in range(6)]) == {f"cam{i}": "a" for i in range(1, 6)}
    finally:
        keeper.stop()
