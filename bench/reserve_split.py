"""Where one single-line reservation spends its time, sequentially, in one process.

    DATABASE_URL=<a bench database> REDIS_URL=redis://127.0.0.1:6379/<your db> \
        .venv/bin/python bench/reserve_split.py

On a bench catalogue (bench/reservations.py builds it): 600 `stock_reserve` calls
on random SKUs; prints calls/s and, per call, web-process CPU, the reserve
statement and the after-commit Redis write. Load on the machine barely matters
to the split, which is what makes it useful on a shared machine.
"""

import os
import random
import sys
import time

sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventory_site.settings.base")
os.environ["DJANGO_DEBUG"] = "false"
import django

django.setup()
from inventory import availability_cache, services
from inventory.services import ReserveLine, stock

t = {"sql": 0.0, "cache": 0.0}
orig_call = stock._call_stock_function


def call(sql, params):
    s = time.perf_counter()
    r = orig_call(sql, params)
    t["sql"] += time.perf_counter() - s
    return r


stock._call_stock_function = call
orig_apply = availability_cache.apply_committed_changes


def apply(ch):
    s = time.perf_counter()
    orig_apply(ch)
    t["cache"] += time.perf_counter() - s


services.COMMITTED_CHANGE_LISTENERS[:] = [
    apply if f is orig_apply else f for f in services.COMMITTED_CHANGE_LISTENERS
]
rng = random.Random(3)
tag = os.urandom(3).hex()
N = 600
start = time.perf_counter()
cpu = time.process_time()
for n in range(N):
    services.stock_reserve(
        order_id=f"micro-{tag}-{n}",
        lines=[ReserveLine(f"BENCH-{rng.randrange(100000):07d}", "BW01", 1)],
        actor="system:bench",
    )
wall = time.perf_counter() - start
cpu = time.process_time() - cpu
print(
    f"{os.getcwd().split('/')[-1]}: {N / wall:.0f}/s, per call {wall / N * 1000:.2f} ms (python cpu {cpu / N * 1000:.2f} ms, sql {t['sql'] / N * 1000:.2f} ms, cache write {t['cache'] / N * 1000:.2f} ms)"
)
