"""Per-client throttling; the rate is `STOCKROOM_API_THROTTLE_RATE` (e.g. "1200/min").

The budget is a generic cell rate algorithm (GCRA: a token bucket kept as one
number, the "theoretical arrival time"): N requests per period, at most N in a
burst, each request spends 1/N of the period. One key per client holds that one
number; a Lua script reads, decides and writes it atomically on Redis' own
clock, so every worker and host agrees, whatever the rate. A busy worker takes
several requests at once from the budget (a lease, see `_Leases`), so a busy
client costs one Redis call per lease, not per request; a quiet one costs one
call per request and is counted exactly.

DRF's `SimpleRateThrottle` kept the timestamp of every request of the last
period in one cache value, read and written back on every request (two round
trips, and at 100,000/min a pickled list of 100,000 floats each way): the
largest part of a ping's cost (docs/PERFORMANCE.md, "Fixed cost per request").

Without Redis (the embedded default's in-process cache) the same arithmetic runs
over the Django cache (per process, as that cache is). A Redis error lets the
request through (Redis is optional at run time; the cache's IGNORE_EXCEPTIONS
rule), and is logged.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)

# KEYS[1]: the client's key. ARGV: interval (µs per request), period (µs), wanted.
# Grants up to `wanted` requests at once (a lease); returns {granted, wait µs}.
GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local fits = math.floor((now + period - tat) / interval)
if fits < 1 then return {0, tat + interval - now - period} end
local granted = math.min(wanted, fits)
redis.call('SET', KEYS[1], string.format('%d', tat + granted * interval),
           'PX', math.ceil(period / 1000) + 1000)
return {granted, 0}
"""

# A worker takes requests from the shared budget in leases, so a busy client
# costs one Redis call per lease instead of one per request. A lease is spent
# from the budget when taken (the budget is never exceeded); what a worker
# leased and did not use within LEASE_SECONDS is lost, so leases grow only with
# the worker's own demand (doubling while each is used up, back to what was used
# otherwise) and never beyond 1/20 of the budget or LEASE_MAX. A client that
# sends a request now and then always leases 1: exact, one call per request.
# A refusal is remembered until the wait it named has passed (the budget only
# refills with time), so a client hammering past its budget costs no calls either.
LEASE_SECONDS = 0.5
REDIS_RETRY_SECONDS = 1.0
LEASE_MAX = 64
# Past this many (client, rate) entries, a new client's first request first drops
# the entries that hold nothing any more (lease expired, no refusal pending): a
# lease-less entry carries only its last size, so forgetting it costs that client
# one exact call. Bounds the process's memory whatever the number of clients.
HELD_MAX = 10_000


def parse_rate(rate: str) -> tuple[int, int]:
    """'1200/min' -> (1200 requests, 60 seconds), as DRF reads rates."""
    count, period = rate.split("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]
    return int(count), seconds


@dataclass
class _Lease:
    left: int = 0
    size: int = 0
    expires: float = 0.0
    refused_until: float = 0.0  # the budget holds nothing before then (it only refills)


class _Leases:
    """This process's leases, per client key and rate, and the script (EVALSHA)."""

    script = None
    lock = threading.Lock()
    held: dict[tuple[str, str], _Lease] = {}
    round_trips = 0  # Redis calls made (benchmarks and tests read it)

    @classmethod
    def take(cls, key: str, rate: str) -> int:
        """0 if a request may go now, else the microseconds to wait."""
        count, seconds = parse_rate(rate)
        period_us = seconds * 1_000_000
        interval_us = period_us // max(count, 1)
        cap = max(1, min(LEASE_MAX, count // 20))
        with cls.lock:
            now = time.monotonic()
            lease = cls.held.get((key, rate))
            if lease is None:
                if len(cls.held) >= HELD_MAX:
                    cls._prune(now)
                lease = cls.held[(key, rate)] = _Lease()
            if lease.left > 0 and now < lease.expires:
                lease.left -= 1
                return 0
            if now < lease.refused_until:
                return max(int((lease.refused_until - now) * 1_000_000), 1)
            used_up = lease.left == 0 and lease.size > 0
            wanted = min(cap, lease.size * 2 if used_up else max(1, lease.size - lease.left))
        # The Redis call holds no lock: other threads (gthread workers) go on serving
        # other clients meanwhile. Two threads of one client may both lease; the
        # budget stays exact (each lease is spent from it), the leases add up.
        granted, wait_us = cls._call(key, interval_us, period_us, wanted)
        with cls.lock:
            if granted < 1:
                lease.left, lease.size = 0, 0
                lease.refused_until = now + wait_us / 1_000_000
                return max(int(wait_us), 1)
            fresh = now < lease.expires
            lease.left = (lease.left if fresh else 0) + granted - 1
            lease.size, lease.expires = granted, now + LEASE_SECONDS
            return 0

    @classmethod
    def _prune(cls, now: float) -> None:
        """Drop the entries that hold nothing now (called with the lock held)."""
        for held_key, lease in list(cls.held.items()):
            if now >= lease.expires and now >= lease.refused_until:
                del cls.held[held_key]

    @classmethod
    def _call(cls, key: str, interval_us: int, period_us: int, wanted: int) -> tuple[int, int]:
        if cls.script is None:
            from django_redis import get_redis_connection

            cls.script = get_redis_connection("default").register_script(GCRA_LUA)
        cls.round_trips += 1
        granted, wait_us = cls.script(keys=[key], args=[interval_us, period_us, wanted])
        return int(granted), int(wait_us)

    @classmethod
    def forget(cls) -> None:
        with cls.lock:
            cls.held.clear()
            cls.script = None


@receiver(setting_changed)
def _forget_leases(*, setting: str, **kwargs) -> None:
    # A test (or a reloaded deployment) that changes the cache or the rate starts afresh.
    if setting in ("CACHES", "STOCKROOM_API_THROTTLE_RATE"):
        _Leases.forget()


def _uses_redis() -> bool:
    return settings.CACHES["default"]["BACKEND"].startswith("django_redis.")


class ClientRateThrottle(BaseThrottle):
    scope = "client"
    # After a Redis error this process lets requests through unchecked for
    # REDIS_RETRY_SECONDS instead of paying the connect timeout on every request.
    redis_down_until = 0.0

    def __init__(self) -> None:
        self._wait = 0.0

    def get_rate(self) -> str:
        # Read at request time (not import time) so deployments and tests can change it.
        return settings.STOCKROOM_API_THROTTLE_RATE

    def get_cache_key(self, request, view) -> str | None:
        client = request.user
        if not getattr(client, "is_authenticated", False):
            return None  # unauthenticated requests are refused before throttling matters
        return f"{settings.STOCKROOM_AVAILABILITY_KEY_PREFIX}:throttle:v2:{client.pk}"

    def allow_request(self, request, view) -> bool:
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        rate = self.get_rate()
        if _uses_redis():
            if time.monotonic() < ClientRateThrottle.redis_down_until:
                return True  # failed a moment ago: fail open without another timeout
            try:
                wait_us = _Leases.take(key, rate)
            except (RedisError, OSError):  # Redis down: let the request through, say so
                ClientRateThrottle.redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
                logger.warning("throttle check failed; requests allowed", exc_info=True)
                return True
        else:
            count, seconds = parse_rate(rate)
            wait_us = _cache_gcra(key, seconds * 1_000_000 // max(count, 1), seconds * 1_000_000)
        self._wait = wait_us / 1_000_000
        return wait_us <= 0

    def wait(self) -> float:
        return self._wait


def _cache_gcra(key: str, interval_us: int, period_us: int) -> int:
    """The same arithmetic over the Django cache (no Redis: per process)."""
    now = int(time.time() * 1_000_000)
    tat = max(int(cache.get(key) or now), now)
    new_tat = tat + interval_us
    wait = new_tat - now - period_us
    if wait > 0:
        return wait
    cache.set(key, new_tat, timeout=period_us // 1_000_000 + 1)
    return 0
