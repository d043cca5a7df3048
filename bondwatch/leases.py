"""Camera ownership across worker processes: leases in Redis, fencing tokens, a balanced plan.

One key per camera names its owner for `lease_s` and is renewed by that owner only (a Lua
compare-and-set on the owner's token), so a worker that dies or loses Redis loses its cameras
within one lease time and another takes them. Each acquisition also draws the next number of
the camera's fencing counter: a write carries that token, and a store refuses a token older
than one it has already seen, so a worker that wakes from a pause or a partition cannot write
over its successor even in the moment before it notices (see docs/scaling.md).

Workers announce themselves with a heartbeat key that expires like a lease; the assignment
(`assign`) is a pure function of the live workers, their capacities and the current owners,
which every worker computes the same way from the same Redis state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

PREFIX = "bondwatch"
WORKERS_KEY = f"{PREFIX}:workers"  # set of worker ids that announced themselves
# The part of a lease this process counts on: the rest absorbs a clock running at another rate
# than Redis's and the time a renewal reply spends on the way back.
SAFETY = 0.9
TOKEN_EPOCH = 1577836800  # 2020-01-01T00:00:00Z

# KEYS[1] lease, KEYS[2] fencing counter; ARGV[1] owner, ARGV[2] lease ms. The new token, or nil.
# A token is at least Redis's clock in seconds since TOKEN_EPOCH, so tokens keep growing even
# after Redis lost its data (a restart without persistence, a failover): the stores refuse any
# token older than one they hold, and a counter starting over at 1 would lock every writer out
# for good. Counted from 2020 a token fits a 32-bit column until 2088.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return nil end
local floor = tonumber(redis.call('TIME')[1]) - tonumber(ARGV[3])
local token = redis.call('INCR', KEYS[2])
if token < floor then
  token = floor
  redis.call('SET', KEYS[2], token)
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
"""
# KEYS: leases; ARGV[1] lease ms, ARGV[2..] the value each lease must still hold. 1 renewed, 0 lost.
_RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""
# KEYS[1] lease; ARGV[1] the value it must hold. 1 released, 0 it was no longer ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# KEYS[1] lease, KEYS[2] rule state; ARGV[1] the value the lease must hold, ARGV[2] its token,
# ARGV[3] the state, ARGV[4] how long to keep it (ms). 1 written, 0 refused: the lease is no
# longer ours, or a newer token has written the state already.
_SAVE_STATE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local held = tonumber(redis.call('HGET', KEYS[2], 'token') or '0')
if held > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], 'token', ARGV[2], 'state', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"""


def lease_key(camera: str) -> str:
    return f"{PREFIX}:lease:{camera}"


def token_key(camera: str) -> str:
    return f"{PREFIX}:fence:{camera}"


def worker_key(worker: str) -> str:
    return f"{PREFIX}:worker:{worker}"


def state_key(camera: str) -> str:
    return f"{PREFIX}:rulestate:{camera}"


@dataclass(frozen=True)
class WriteToken:
    """Who writes for a camera, and with which fencing token; stores keep both with each row."""

    owner: str
    token: int


# Given a camera, the writer's token while it may still write for it, else None. Stores call it
# right before a write and also refuse a token older than the newest they have stored.
FenceCheck = Callable[[str], WriteToken | None]


@dataclass(frozen=True)
class Lease:
    """This worker owns `camera` with fencing `token` until `valid_until` (time.monotonic())."""

    camera: str
    owner: str
    token: int
    valid_until: float

    @property
    def value(self) -> str:
        """What the lease key holds: the owner and its token, so a renewal matches both."""
        return f"{self.owner}|{self.token}"

    def write_token(self) -> WriteToken:
        return WriteToken(self.owner, self.token)


def connect(url: str, timeout_s: float) -> redis.Redis:
    """A client whose every call gives up after `timeout_s`, without retries.

    A lease keeper must learn within a fraction of a lease that Redis is gone; redis-py's
    default retries with backoff would hide that past the lease's end.
    """
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


class Leases:
    """The lease operations of one worker (`owner`) on Redis."""

    def __init__(self, client: redis.Redis, owner: str, lease_s: float):
        if "|" in owner:
            raise ValueError(f"worker id {owner!r} must not contain '|'")
        self.client = client
        self.owner = owner
        self.lease_s = lease_s
        self._ms = max(1, round(lease_s * 1000))
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def acquire(self, camera: str) -> Lease | None:
        """Take `camera` if nobody holds it; the lease with its new fencing token, else None."""
        sent = time.monotonic()
        keys = [lease_key(camera), token_key(camera)]
        token = self._acquire(keys=keys, args=[self.owner, self._ms, TOKEN_EPOCH])
        if token is None:
            return None
        return Lease(camera, self.owner, int(token), sent + self.lease_s * SAFETY)

    def renew(self, leases: Sequence[Lease]) -> list[Lease]:
        """Extend `leases` in one round trip; those still ours, with their new `valid_until`.

        The validity counts from before the request was sent, never from the reply, so it ends
        no later than the key does in Redis.
        """
        if not leases:
            return []
        sent = time.monotonic()
        kept = self._renew(
            keys=[lease_key(x.camera) for x in leases], args=[self._ms, *(x.value for x in leases)]
        )
        until = sent + self.lease_s * SAFETY
        return [replace(x, valid_until=until) for x, ok in zip(leases, kept, strict=True) if ok]

    def release(self, lease: Lease) -> bool:
        """Give `camera` up at once (a clean stop or a handover); False if it was no longer ours."""
        return bool(self._release(keys=[lease_key(lease.camera)], args=[lease.value]))

    def holds(self, lease: Lease) -> bool:
        """Whether Redis still names this lease, owner and token, as the camera's owner."""
        return self.client.get(lease_key(lease.camera)) == lease.value

    def owners(self, cameras: Sequence[str]) -> dict[str, str]:
        """The current owner of each owned camera among `cameras`."""
        if not cameras:
            return {}
        values = self.client.mget([lease_key(c) for c in cameras])
        return {c: v.split("|", 1)[0] for c, v in zip(cameras, values, strict=True) if v}


class RuleStates:
    """A camera's rule state, checkpointed by its owner for the next one (docs/scaling.md).

    A write is fenced like a lease renewal, in one Lua call: Redis must still name the writer's
    lease, and no newer token may have written the state before, so a stale owner that wakes
    from a pause never overwrites its successor's checkpoint.
    """

    def __init__(self, client: redis.Redis, keep_s: float = 86400.0):
        self.client = client
        self._ms = max(1, round(keep_s * 1000))
        self._save = client.register_script(_SAVE_STATE)

    def save(self, lease: Lease, state: str) -> bool:
        """Write `state` (JSON) for `lease.camera`; False if refused by the fence."""
        keys = [lease_key(lease.camera), state_key(lease.camera)]
        return bool(self._save(keys=keys, args=[lease.value, lease.token, state, self._ms]))

    def load(self, camera: str) -> tuple[int, str] | None:
        """The newest state written for `camera` with its writer's token, or None."""
        token, state = self.client.hmget(state_key(camera), ["token", "state"])
        return None if token is None or state is None else (int(token), state)


class Registry:
    """Live workers and their capacities: a key per worker that expires unless heartbeaten."""

    def __init__(self, client: redis.Redis, ttl_s: float):
        self.client = client
        self._ms = max(1, round(ttl_s * 1000))

    def heartbeat(self, worker: str, capacity: int) -> None:
        pipe = self.client.pipeline()
        pipe.set(worker_key(worker), capacity, px=self._ms)
        pipe.sadd(WORKERS_KEY, worker)
        pipe.execute()

    def leave(self, worker: str) -> None:
        pipe = self.client.pipeline()
        pipe.delete(worker_key(worker))
        pipe.srem(WORKERS_KEY, worker)
        pipe.execute()

    def alive(self) -> dict[str, int]:
        """Worker id -> capacity of every worker whose heartbeat has not expired."""
        ids = sorted(self.client.smembers(WORKERS_KEY))
        if not ids:
            return {}
        caps = self.client.mget([worker_key(w) for w in ids])
        if gone := [w for w, cap in zip(ids, caps, strict=True) if cap is None]:
            self.client.srem(WORKERS_KEY, *gone)
        return {w: int(cap) for w, cap in zip(ids, caps, strict=True) if cap is not None}


def quotas(capacities: Mapping[str, int], cameras: int, owned: Mapping[str, int]) -> dict[str, int]:
    """How many cameras each worker should run: as even as capacities allow.

    Every worker gets min(capacity, level) for the highest level that fits; the cameras left
    over (fewer than the workers with room) go one each to the workers that own the most now,
    so a balanced plan stays put instead of trading cameras back and forth.
    """
    total = min(cameras, sum(max(0, c) for c in capacities.values()))
    level = 0
    while sum(min(c, level + 1) for c in capacities.values()) <= total and level < total:
        level += 1
    share = {w: min(max(0, c), level) for w, c in capacities.items()}
    left = total - sum(share.values())
    room = sorted((w for w, c in capacities.items() if c > level), key=lambda w: (-owned.get(w, 0), w))
    for w in room[:left]:
        share[w] += 1
    return share


def assign(
    capacities: Mapping[str, int], cameras: Iterable[str], owners: Mapping[str, str]
) -> dict[str, str | None]:
    """Camera -> the worker that should own it (None: no capacity left anywhere).

    Pure and deterministic, so every worker computes the same plan from the same state.
    A live owner keeps its cameras up to its quota (the first ones by id); only the surplus and
    the cameras without a live owner move, each to the worker with the most room left. This is
    the fewest moves that reach the balanced quotas.
    """
    cams = sorted(set(cameras))
    live = {c: w for c, w in owners.items() if w in capacities and c in cams}
    owned: dict[str, int] = {}
    for w in live.values():
        owned[w] = owned.get(w, 0) + 1
    share = quotas(capacities, len(cams), owned)
    plan: dict[str, str | None] = {}
    load = dict.fromkeys(capacities, 0)
    for c in cams:
        w = live.get(c)
        if w is not None and load[w] < share[w]:
            plan[c] = w
            load[w] += 1
    for c in cams:
        if c in plan:
            continue
        best = min(capacities, key=lambda w: (load[w] - share[w], w), default=None)
        if best is None or load[best] >= share[best]:
            plan[c] = None
            continue
        plan[c] = best
        load[best] += 1
    return plan


class LeaseKeeper(threading.Thread):
    """Holds this worker's leases: renews them every third of a lease and, the moment one can
    no longer be confirmed before it would expire (Redis gone, a partition, this process
    paused), drops it and calls `on_lost(camera)` so the worker stops acting on that camera.

    `fence` is the write check the stores call: a local validity check first (free, and right
    even when this process was just paused), then Redis must still name this lease.
    """

    def __init__(self, leases: Leases, on_lost: Callable[[str], None]):
        super().__init__(name="lease-keeper", daemon=True)
        self.leases = leases
        self.on_lost = on_lost
        self.every_s = leases.lease_s / 3
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._held: dict[str, Lease] = {}
        self._lock = threading.Lock()

    def add(self, lease: Lease) -> None:
        with self._lock:
            self._held[lease.camera] = lease
        self._wake.set()  # its deadline may be the nearest now

    def remove(self, camera: str) -> Lease | None:
        """Stop renewing `camera` (before a release): its lease, if it was still held."""
        with self._lock:
            return self._held.pop(camera, None)

    def held(self) -> dict[str, Lease]:
        with self._lock:
            return dict(self._held)

    def fence(self, camera: str) -> WriteToken | None:
        with self._lock:
            lease = self._held.get(camera)
        if lease is None or time.monotonic() >= lease.valid_until:
            return None
        try:
            if self.leases.holds(lease):
                return lease.write_token()
        except redis.RedisError as e:
            logger.warning("camera %s: cannot confirm the lease, write refused: %s", camera, e)
            return None
        logger.warning("camera %s: lease %d is no longer ours, write refused", camera, lease.token)
        return None

    def run(self) -> None:
        next_renew = time.monotonic() + self.every_s
        while not self.stopping.is_set():
            self._drop_expired()
            now = time.monotonic()
            if now >= next_renew:
                next_renew = now + self.every_s
                self._renew()
                self._drop_expired()
            with self._lock:
                deadlines = [x.valid_until for x in self._held.values()]
            wait = min([next_renew, *deadlines]) - time.monotonic()
            self._wake.wait(max(0.0, wait))
            self._wake.clear()

    def _renew(self) -> None:
        held = list(self.held().values())
        try:
            kept = {x.camera: x for x in self.leases.renew(held)}
        except redis.RedisError as e:
            logger.warning("cannot renew %d lease(s): %s", len(held), e)
            return
        lost = []
        with self._lock:
            for x in held:
                if x.camera in kept:
                    if x.camera in self._held:  # not released meanwhile
                        self._held[x.camera] = kept[x.camera]
                elif self._held.get(x.camera) == x:
                    del self._held[x.camera]
                    lost.append(x)
        for x in lost:
            self._lost(x, "taken over")

    def _drop_expired(self) -> None:
        now = time.monotonic()
        with self._lock:
            expired = [x for x in self._held.values() if now >= x.valid_until]
            for x in expired:
                del self._held[x.camera]
        for x in expired:
            self._lost(x, "not renewed in time")

    def _lost(self, lease: Lease, why: str) -> None:
        logger.warning("camera %s: lease %d lost (%s): stop acting on it", lease.camera, lease.token, why)
        try:
            self.on_lost(lease.camera)
        except Exception:
            logger.exception("camera %s: the on_lost callback failed", lease.camera)

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        self._wake.set()
        self.join(timeout_s)
