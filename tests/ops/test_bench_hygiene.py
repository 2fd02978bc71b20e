"""Benchmarks share a machine and a Redis server with everyone's work (issue #18,
goal 6): no bench flushes a Redis database, and the cleanup they use instead
deletes exactly its own run's keys."""

import importlib
import re
import sys
from pathlib import Path

import redis
from django.conf import settings

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_no_bench_flushes_a_redis_database():
    offenders = [
        path.name
        for path in sorted([*BENCH.glob("*.py"), *BENCH.glob("*.sh")])
        # A call (`.flushdb(`) or a redis-cli command; prose saying "never FLUSHDB" is fine.
        if re.search(r"\.flush(db|all)\s*\(|redis-cli[^\n]*flush(db|all)", path.read_text(), re.I)
    ]
    assert offenders == []


def test_bench_cleanup_deletes_only_its_own_prefix(monkeypatch):
    url = settings.CACHES["default"].get("LOCATION") or "redis://127.0.0.1:6379/15"
    monkeypatch.setenv("BENCH_REDIS_URL", url)
    # Importing bench/common.py sets the run's prefix in the environment: keep it local.
    monkeypatch.setenv("STOCKROOM_AVAILABILITY_KEY_PREFIX", "bench-test-a")
    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop("common", None)
    common = importlib.import_module("common")
    client = redis.Redis.from_url(url)
    try:
        mine = [f"bench-test-a:avail:{n}" for n in range(12_000)]
        theirs = ["bench-test-b:avail:1", "bench-test-a-other:x", "stockroom:avail:1"]
        with client.pipeline(transaction=False) as pipe:
            for key in mine + theirs:
                pipe.set(key, "1")
            pipe.execute()
        assert common.delete_bench_keys("bench-test-a") == len(mine)
        assert client.exists(*mine) == 0
        assert client.exists(*theirs) == len(theirs)
    finally:
        client.delete(*theirs)
        client.close()
        sys.modules.pop("common", None)
