"""Per-client throttling; the rate is `STOCKROOM_API_THROTTLE_RATE` (e.g. "1200/min").

The budget is a generic cell rate algorithm (GCRA: a token bucket kept as one
number, the "theoretical arrival time"): N requests per period, at most N in a
burst, each request spends 1/N of the period. One key per client holds that one
number, so a check costs one Redis round trip of a few bytes (a Lua script that
reads, decides and writes atomically, on Redis' own clock, so every worker and
host agrees), whatever the rate.

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
import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)

# KEYS[1]: the client's key. ARGV: interval (µs per request), period (µs).
# Returns 0 (allowed) or the microseconds until the next request would be allowed.
GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - now - period
if wait > 0 then return wait end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil(period / 1000) + 1000)
return 0
"""


def parse_rate(rate: str) -> tuple[int, int]:
    """'1200/min' -> (1200 requests, 60 seconds), as DRF reads rates."""
    count, period = rate.split("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]
    return int(count), seconds


class _RedisGcra:
    """The script, registered once per process (EVALSHA: one round trip)."""

    script = None

    @classmethod
    def wait_us(cls, key: str, interval_us: int, period_us: int) -> int:
        if cls.script is None:
            from django_redis import get_redis_connection

            cls.script = get_redis_connection("default").register_script(GCRA_LUA)
        return int(cls.script(keys=[key], args=[interval_us, period_us]))


def _uses_redis() -> bool:
    return settings.CACHES["default"]["BACKEND"].startswith("django_redis.")


class ClientRateThrottle(BaseThrottle):
    scope = "client"

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
        count, seconds = parse_rate(self.get_rate())
        period_us = seconds * 1_000_000
        interval_us = period_us // max(count, 1)
        if _uses_redis():
            try:
                wait_us = _RedisGcra.wait_us(key, interval_us, period_us)
            except (RedisError, OSError):  # Redis down: let the request through, say so
                logger.warning("throttle check failed; request allowed", exc_info=True)
                return True
        else:
            wait_us = _cache_gcra(key, interval_us, period_us)
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
