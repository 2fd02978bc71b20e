"""The availability read model: latency (hit and miss), flash sales, freshness.

    .venv/bin/python bench/availability.py [--seconds 5] [--attempts 10000]

In one run, on bench catalogues of 10,000 and 1,000,000 SKUs (databases
`<BENCH_DATABASE_URL>_10k` and `<BENCH_DATABASE_URL>`, default `stockroom_bench`,
built once; `--catalogues 10000` for the small one only). Redis: BENCH_REDIS_URL
(default db 9; give it a db of your own), under a key prefix of this run's own,
whose keys it deletes by prefix between catalogues and at the end (never FLUSHDB).

* **server-side latency** of `selectors.availability_for_skus` (what the API
  views call) for one SKU and for a 100-SKU batch: cache hit, cache miss (the
  entry absent: one database query plus the fill), and the uncached database
  path, as p50/p99 in milliseconds;
* **flash sale**: several processes fire `--attempts` single-unit reservations at
  one SKU holding 100 units, with the sold-out gate on and off: reservations/s,
  refusals/s, and how many attempts reached the database;
* **freshness**: from the moment a stock change has committed to the moment the
  new value is readable from Redis, p50/p99 over 1,000 changes.

End-to-end HTTP figures for the same endpoints come from bench/http_throughput.py.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BENCH_DB,
    create_database,
    delete_bench_keys,
    ensure_catalogue,
    median,
    percentile,
    setup_django,
)

CATALOGUES = {
    10_000: BENCH_DB + "_10k",  # BENCH_DATABASE_URL names the pair (default stockroom_bench)
    1_000_000: BENCH_DB,
}


def timed(fn, seconds: float) -> list[float]:
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        fn()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def latency_rows(skus: int, seconds: float) -> list[tuple[str, list[float]]]:
    from django_redis import get_redis_connection

    from inventory import availability_cache, selectors

    rng = random.Random(7)
    names = [f"BENCH-{i:07d}" for i in range(skus)]
    hot = rng.sample(names, 1000)
    redis = get_redis_connection("default")
    rows = []
    selectors.availability_for_skus(hot)  # warm 1,000 SKUs
    selectors.active_warehouse_codes()
    rows.append(("1 SKU, cache hit", timed(lambda: selectors.availability_for_skus(
        [rng.choice(hot)]), seconds)))  # fmt: skip
    rows.append(("100 SKUs, cache hit", timed(lambda: selectors.availability_for_skus(
        rng.sample(hot, 100)), seconds)))  # fmt: skip

    def miss(count):
        batch = rng.sample(names, count)
        redis.delete(*[availability_cache._key(s) for s in batch])
        return lambda: selectors.availability_for_skus(batch)

    def timed_misses(count):
        latencies = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            call = miss(count)
            started = time.perf_counter()
            call()
            latencies.append((time.perf_counter() - started) * 1000)
        return latencies

    rows.append(("1 SKU, cache miss", timed_misses(1)))
    rows.append(("100 SKUs, cache miss", timed_misses(100)))
    rows.append(("1 SKU, database only", timed(lambda: selectors.availability_from_database(
        [rng.choice(names)]), seconds)))  # fmt: skip
    rows.append(("100 SKUs, database only", timed(lambda: selectors.availability_from_database(
        rng.sample(names, 100)), seconds)))  # fmt: skip
    return rows


def _flash_worker(args) -> tuple[int, int, int, float]:
    sku, attempts, gate, seed = args
    os.environ["STOCKROOM_SOLD_OUT_GATE"] = "true" if gate else "false"
    setup_django(os.environ.get("DATABASE_URL", BENCH_DB))  # the last catalogue measured
    from django.db import connection

    from inventory import errors, services
    from inventory.services import ReserveLine

    queries = {"n": 0}

    def count(execute, sql, params, many, context):
        # Stock work only: a gate refusal's one look-up of its own order id (is it
        # a retry of a placed order? services.reservation_exists) takes no lock.
        if not sql.startswith('SELECT %s AS "a" FROM "inventory_reservation" WHERE'):
            queries["n"] += 1
        return execute(sql, params, many, context)

    granted = refused = reached_db = 0
    started = time.perf_counter()
    with connection.execute_wrapper(count):
        for n in range(attempts):
            before = queries["n"]
            try:
                services.stock_reserve(
                    order_id=f"flash-{sku}-{seed}-{n}",
                    lines=[ReserveLine(sku, "BW01", 1)],
                    actor="system:bench",
                )
                granted += 1
            except errors.InsufficientStock:
                refused += 1
                reached_db += queries["n"] > before
    return granted, refused, reached_db, time.perf_counter() - started


def flash_sale(attempts: int, processes: int, gate: bool) -> dict:
    from inventory import availability_cache, services
    from inventory.models import Product

    sku = f"FLASH-{uuid.uuid4().hex[:10]}"
    Product.objects.create(sku=sku, name="Flash sale item", category="bench")
    services.stock_receive(sku=sku, warehouse="BW01", quantity=100, actor="system:bench")
    availability_cache.get_many([sku])
    ctx = mp.get_context("spawn")
    per = attempts // processes
    with ctx.Pool(processes) as pool:
        results = pool.map(_flash_worker, [(sku, per, gate, s) for s in range(processes)])
    elapsed = max(r[3] for r in results)
    granted = sum(r[0] for r in results)
    refused = sum(r[1] for r in results)
    reached = sum(r[2] for r in results)
    return {
        "granted": granted,
        "refused": refused,
        "reached_db": reached,
        "attempts_per_s": (granted + refused) / elapsed,
        "refusals_per_s": refused / elapsed,
        "elapsed": elapsed,
    }


def freshness(samples: int) -> list[float]:
    """Commit -> readable: the first after-commit listener marks the commit; then
    Redis is read until it holds that row version."""
    from inventory import availability_cache, services

    marks: dict[str, float] = {}

    def mark_commit(changes):
        marks["committed"] = time.perf_counter()
        marks["version"] = changes[0].version

    services.COMMITTED_CHANGE_LISTENERS.insert(0, mark_commit)
    try:
        rng = random.Random(11)
        lags = []
        for _ in range(samples):
            sku = f"BENCH-{rng.randrange(10_000):07d}"
            availability_cache.get_many([sku])
            services.stock_receive(sku=sku, warehouse="BW01", quantity=1, actor="system:bench")
            while True:
                snap = availability_cache.read_cached([sku]).get(sku)
                if snap is not None and snap.versions.get("BW01", -1) >= marks["version"]:
                    break
            lags.append((time.perf_counter() - marks["committed"]) * 1000)
        return lags
    finally:
        services.COMMITTED_CHANGE_LISTENERS.remove(mark_commit)


def main() -> None:
    try:
        run()
    finally:
        delete_bench_keys()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--attempts", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument(
        "--catalogues", default="10000,1000000", help="catalogue sizes to measure, a,b"
    )
    parser.add_argument(
        "--flash-rounds", type=int, default=1, help="flash sales per gate setting, alternating"
    )
    parser.add_argument("--flash-only", action="store_true", help="skip latency and freshness")
    args = parser.parse_args()

    print("| catalogue | call | p50 ms | p99 ms | calls |")
    print("|---:|---|---:|---:|---:|")
    for skus in [int(n) for n in args.catalogues.split(",")]:
        url = CATALOGUES[skus]
        create_database(url)
        os.environ["DATABASE_URL"] = url
        setup_django(url)
        from django.core.management import call_command
        from django.db import connections

        connections["default"].settings_dict["NAME"] = url.rsplit("/", 1)[1]
        connections["default"].close()
        call_command("migrate", verbosity=0)
        ensure_catalogue(skus, 1)
        # Both catalogues use the same SKU names: start each from an empty cache
        # (this run's keys only: the database may be shared).
        from inventory import availability_cache, selectors

        delete_bench_keys()
        availability_cache.reset_store()
        selectors.forget_active_warehouses()
        if args.flash_only:
            continue
        for label, latencies in latency_rows(skus, args.seconds):
            p50, p99 = median(latencies), percentile(latencies, 99)
            print(
                f"| {skus:,} | {label} | {p50:.2f} | {p99:.2f} | {len(latencies):,} |", flush=True
            )
        if skus == 10_000:
            lags = freshness(1000)
            fresh = (median(lags), percentile(lags, 99))
        connections["default"].close()
    if not args.flash_only:
        print()
        print(f"freshness (commit -> readable in Redis), 1,000 changes: p50 {fresh[0]:.3f} ms, "
              f"p99 {fresh[1]:.3f} ms")  # fmt: skip
    print()
    print("| flash sale: one SKU, 100 units | attempts | granted | refused | reached the database "
          "| attempts/s | refusals/s |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for gate in [True, False] * args.flash_rounds:
        r = flash_sale(args.attempts, args.processes, gate)
        print(f"| gate {'on' if gate else 'off'} | {r['granted'] + r['refused']:,} | "
              f"{r['granted']} | {r['refused']:,} | {r['reached_db']:,} | "
              f"{r['attempts_per_s']:,.0f} | {r['refusals_per_s']:,.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
