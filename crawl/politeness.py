"""Per-host politeness shared by every worker on every machine: slots, pauses and pacing in Redis.

- **Slots**: at most N requests at once to a host. A request takes a lease (a member of the host's
  sorted set, scored by the Redis time it expires) and gives it back when done. A thread in each
  process renews the leases it holds every third of SCENEIMG_FETCH_SLOT_LEASE, so a worker that dies
  (SIGKILL, lost machine) stops renewing and its slots come free when their leases run out.
- **Pauses**: a Retry-After or an anti-spider refusal pauses the host for everyone until a Redis time;
  new requests to it wait.
- **Turns**: requests to a paced host (Baidu's API) are spaced at least an interval apart.

Times are Redis's own (TIME), so machines with clocks apart agree. Every key expires on its own. If
Redis cannot be reached the limits hold per process only (a warning is logged) until it answers again.
"""
import logging
import os
import random
import threading
import time
import uuid
from urllib.parse import urlsplit

import redis
from django.conf import settings

log = logging.getLogger(__name__)

PREFIX = "sceneimg:host:"
RETRY_REDIS_AFTER = 30.0  # seconds a process works alone after Redis failed before asking it again

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# KEYS: slots, pause. ARGV: limit, token, lease ms, a pause end this caller already waited out.
# Returns 0 when the slot is taken, ms to wait while the host is paused, -1 when every slot is busy.
_ACQUIRE = _NOW_MS + """
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now and paused > tonumber(ARGV[4]) then return paused - now end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return -1 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 0
"""
# KEYS: the slots key of each lease. ARGV: lease ms, then one token per key. Returns the tokens not found.
_RENEW = _NOW_MS + """
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('ZADD', key, 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[i + 1]) == 0
      and not redis.call('ZSCORE', key, ARGV[i + 1]) then
    table.insert(lost, ARGV[i + 1])
  end
  redis.call('PEXPIRE', key, tonumber(ARGV[1]))
end
return lost
"""
# KEYS: pause. ARGV: ms. Returns the pause's end (ms, Redis time), never earlier than one already set.
_PAUSE = _NOW_MS + """
local ends = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= ends then return current end
redis.call('SET', KEYS[1], ends, 'PX', tonumber(ARGV[1]))
return ends
"""
# KEYS: turn. ARGV: interval ms. Returns ms to wait for this caller's turn.
_TURN = _NOW_MS + """
local turn = tonumber(redis.call('GET', KEYS[1]) or '0')
if turn < now then turn = now end
redis.call('SET', KEYS[1], turn + tonumber(ARGV[1]), 'PX', turn + tonumber(ARGV[1]) - now + 1000)
return turn - now
"""


class _Shared:
    """This process's Redis client and scripts, or None while Redis is switched off or unreachable."""

    def __init__(self):
        self.lock = threading.Lock()
        self.client = self.url = None
        self.scripts = {}
        self.down_until = 0.0

    def get(self):
        if not settings.SCENEIMG_FETCH_SHARED_LIMITS:
            return None
        with self.lock:
            if self.url != settings.REDIS_URL:
                self.url, self.down_until = settings.REDIS_URL, 0.0
                self.client = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
                self.scripts = {name: self.client.register_script(body) for name, body in
                                (("acquire", _ACQUIRE), ("renew", _RENEW), ("pause", _PAUSE), ("turn", _TURN))}
            return None if time.monotonic() < self.down_until else self

    def call(self, name, keys, args):
        return self.scripts[name](keys=keys, args=args)

    def failed(self, exc):
        self.down_until = time.monotonic() + RETRY_REDIS_AFTER
        log.warning("per-host limits: Redis at %s cannot be reached (%s); until it answers they hold in "
                    "this process only, and other workers may add to the load", self.url, exc)


_shared = _Shared()


class _Local:
    """What this process keeps for itself: a semaphore per host and limit (no process asks Redis for
    more slots than it may hold), and pauses while Redis is away."""

    def __init__(self):
        self.lock = threading.Lock()
        self.semaphores = {}
        self.pauses = {}

    def semaphore(self, key, limit):
        with self.lock:
            return self.semaphores.setdefault((key, limit), threading.BoundedSemaphore(limit))

    def pause(self, key, seconds):
        with self.lock:
            self.pauses[key] = max(self.pauses.get(key, 0.0), time.monotonic() + seconds)
            return self.pauses[key]

    def paused_for(self, key, waited_out):
        ends = self.pauses.get(key, 0.0)
        return 0.0 if ends <= waited_out else max(ends - time.monotonic(), 0.0)


_local = _Local()


class _Renewer:
    """One daemon thread per process that keeps this process's leases alive."""

    def __init__(self):
        self.lock = threading.Lock()
        self.held = {}
        self.thread = None

    def add(self, key, token):
        with self.lock:
            self.held[token] = key
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="host-lease-renewer", daemon=True)
                self.thread.start()

    def discard(self, token):
        with self.lock:
            self.held.pop(token, None)

    def _loop(self):
        while True:
            time.sleep(lease_seconds() / 3)
            with self.lock:
                held = dict(self.held)
            shared = _shared.get()
            if not held or shared is None:
                continue
            try:
                lost = shared.call("renew", list(held.values()), [lease_ms(), *held])
            except redis.RedisError as exc:
                shared.failed(exc)
                continue
            with self.lock:  # a lease released meanwhile is not lost
                lost = [t for t in lost if t.decode() in self.held]
            if lost:
                log.warning("per-host limits: %d lease(s) ran out before they were renewed", len(lost))


_renewer = _Renewer()


def _after_fork():
    # A forked child (an RQ work horse) holds none of its parent's slots and has no renewer thread.
    global _local, _renewer, _shared
    _local, _renewer, _shared = _Local(), _Renewer(), _Shared()


os.register_at_fork(after_in_child=_after_fork)


def lease_seconds():
    return max(float(settings.SCENEIMG_FETCH_SLOT_LEASE), 0.3)


def lease_ms():
    return int(lease_seconds() * 1000)


def host_key(hostname, port=None):
    """The host's name, with the port when the URL gives one (two servers on one machine differ)."""
    return f"{hostname.lower()}:{port}" if port else hostname.lower()


class Lease:
    """One slot on a host, held until released."""

    def __init__(self, key, semaphore, token):
        self.key, self.semaphore, self.token = key, semaphore, token

    def release(self):
        if self.token:
            _renewer.discard(self.token)
            shared = _shared.get()
            if shared is not None:
                try:
                    shared.client.zrem(PREFIX + self.key + ":slots", self.token)
                except redis.RedisError:
                    pass  # the lease runs out on its own
        self.semaphore.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class Pause:
    """A pause's end, as the caller that set it knows it: that caller waits it out on its own clock."""

    def __init__(self, shared, ends):
        self.shared, self.ends = shared, ends


def acquire(key, limit, *, wait_until, check=lambda: None, waited_out=None):
    """A Lease on one of `limit` slots of host `key`, or None when none comes free (or the host's
    pause does not end) before `wait_until` (time.monotonic()). `check` runs while waiting; what it
    raises (a run's Cancelled) ends the wait. `waited_out`: a Pause this caller already slept through."""
    semaphore = _local.semaphore(key, limit)
    while not semaphore.acquire(timeout=min(max(wait_until - time.monotonic(), 0.0), 1.0)):
        if time.monotonic() >= wait_until:
            return None
        check()  # at least once a second while this process's own slots are all busy
    try:
        token = _shared_slot(key, limit, wait_until, check, waited_out)
    except BaseException:
        semaphore.release()
        raise
    if token is None:
        semaphore.release()
        return None
    return Lease(key, semaphore, token)


def _shared_slot(key, limit, wait_until, check, waited_out):
    """The lease token ("" when Redis is away), or None at wait_until."""
    token, poll = uuid.uuid4().hex, 0.02
    while True:
        shared = _shared.get()
        if shared is None:
            own = waited_out.ends if waited_out is not None and not waited_out.shared else 0.0
            wait = _local.paused_for(key, own)
            if wait <= 0:
                return ""
        else:
            own = waited_out.ends if waited_out is not None and waited_out.shared else 0
            try:
                answer = shared.call("acquire", [PREFIX + key + ":slots", PREFIX + key + ":pause"],
                                     [limit, token, lease_ms(), own])
            except redis.RedisError as exc:
                shared.failed(exc)
                continue
            if answer == 0:
                _renewer.add(PREFIX + key + ":slots", token)
                return token
            wait = answer / 1000 if answer > 0 else poll * (0.5 + random.random())
            poll = min(poll * 1.5, 0.25)
        left = wait_until - time.monotonic()
        if wait > left:
            return None
        check()
        time.sleep(min(wait, 1.0))  # at least once a second `check` sees a cancel


def pause(key, seconds):
    """Pause host `key` for every worker for `seconds` (a pause never shortens one already set)."""
    shared = _shared.get()
    if shared is not None and seconds > 0:
        try:
            ends = shared.call("pause", [PREFIX + key + ":pause"], [max(int(seconds * 1000), 1)])
            return Pause(True, int(ends))
        except redis.RedisError as exc:
            shared.failed(exc)
    return Pause(False, _local.pause(key, max(seconds, 0.0)))


def turn(key, interval):
    """Seconds this caller waits so that requests to `key` are `interval` apart across all workers,
    or None while Redis is away (the caller paces by itself)."""
    shared = _shared.get()
    if shared is None:
        return None
    try:
        return shared.call("turn", [PREFIX + key + ":turn"], [max(int(interval * 1000), 1)]) / 1000
    except redis.RedisError as exc:
        shared.failed(exc)
        return None


def held(key):
    """Leases on host `key` not yet expired, all workers together; None while Redis is away."""
    shared = _shared.get()
    if shared is None:
        return None
    seconds, micros = shared.client.time()
    return shared.client.zcount(PREFIX + key + ":slots", seconds * 1000 + micros // 1000, "+inf")


def paused_for(key):
    """Seconds left of host `key`'s shared pause (0 when none); None while Redis is away."""
    shared = _shared.get()
    if shared is None:
        return None
    return max(shared.client.pttl(PREFIX + key + ":pause"), 0) / 1000


def url_key(url):
    """host_key for a URL."""
    parts = urlsplit(url)
    return host_key(parts.hostname or "", parts.port)
