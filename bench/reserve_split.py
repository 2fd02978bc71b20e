"""Where one single-line reservation spends its time, sequentially, in one process.

    DATABASE_URL=<a bench database> REDIS_URL=redis://127.0.0.1:6379/<your db> \\
        .venv/bin/python bench/reserve_split.py

On a bench catalogue (bench/reservations.py builds it): 600 `stock_reserve` calls
on random SKUs; prints calls/s and, per call, web-process CPU, the reserve
statement and the after-commit Redis write. The split barely depends on the
machine's load, which makes it useful on a shared machine.
"""

import os
import random
import sys
import time

import django

sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventory_site.settings.base")
os.environ["DJANGO_DEBUG"] = "false"
django.setup()

from inventory import availability_cache, services  # noqa: E402
from inventory.services import ReserveLine, reserve_sql  # noqa: E402

CALLS = 600
spent = {"sql": 0.0, "cache": 0.0}
original_call = reserve_sql.call_stock_function
original_apply = availability_cache.apply_committed_changes


def timed_call(sql, params):
    started = time.perf_counter()
    try:
        return original_call(sql, params)
    finally:
        spent["sql"] += time.perf_counter() - started


def timed_apply(changes):
    started = time.perf_counter()
    original_apply(changes)
    spent["cache"] += time.perf_counter() - started


def main() -> None:
    reserve_sql.call_stock_function = timed_call
    listeners = services.COMMITTED_CHANGE_LISTENERS
    listeners[:] = [timed_apply if f is original_apply else f for f in listeners]
    rng = random.Random(3)
    tag = os.urandom(3).hex()
    started, cpu = time.perf_counter(), time.process_time()
    for n in range(CALLS):
        sku = f"BENCH-{rng.randrange(100_000):07d}"
        services.stock_reserve(
            order_id=f"split-{tag}-{n}", lines=[ReserveLine(sku, "BW01", 1)], actor="system:bench"
        )
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    per = 1000 / CALLS
    print(
        f"{CALLS / wall:.0f} calls/s, per call {wall * per:.2f} ms: web CPU {cpu * per:.2f} ms, "
        f"reserve statement {spent['sql'] * per:.2f} ms, cache write {spent['cache'] * per:.2f} ms"
    )


if __name__ == "__main__":
    main()
