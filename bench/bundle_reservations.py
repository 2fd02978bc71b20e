"""Reserving a 3-component bundle vs the same three SKUs as single lines (issue #16, item 5).

    .venv/bin/python bench/bundle_reservations.py [--rounds 300] [--batch 50] [--engine sql]

Builds (once) a small catalogue in its own database (`<BENCH_DATABASE_URL>_bundle_res`,
default `stockroom_bench_bundle_res`): 300 plain SKUs in one warehouse (1,000,000
on hand each) and 100 bundles of 3 distinct components each (one of each per
bundle unit). Redis: REDIS_URL (default db 9) under a key prefix of its own,
whose keys it deletes at the end (it never flushes a database).

Measures, in one run and interleaved round by round (so load changes hit every
case alike), the latency of the service calls on one connection:

* **3 single lines**: `stock_reserve` of one order with the components of a
  random bundle as three lines (the baseline);
* **1 bundle line**: `stock_reserve` of one order with that bundle (expanded
  into the same three rows). The process remembers compositions
  (`bundle_lines.remembered_bundles`, warmed for all 100 bundles before the
  rounds, as a process that has served each once): on the SQL engine one
  statement. (Before the memory: the first statement found no row for the
  bundle SKU, the composition was read, and the order reserved: three.)
* **batch of N x 3 single lines** / **batch of N x 1 bundle line**:
  `stock_reserve_batch` of N such orders (N = --batch).

Reports p50/p99 in ms, orders/s, and the ratio of each bundle case to the
plain case of the same shape, plus the statements per call (counted after the
rounds). Figures go into
docs/PERFORMANCE.md ("Reserving bundles") with this command.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DB, create_database, median, percentile, setup_django

DB = BENCH_DB + "_bundle_res"
PLAIN, BUNDLES, CODE = 300, 100, "BRW0"


def build() -> None:
    from django.db import transaction

    from inventory import services
    from inventory.models import BundleComponent, Product

    if Product.objects.filter(sku__startswith="BR-").count() == PLAIN + BUNDLES:
        return
    with transaction.atomic():
        services.warehouse_create(code=CODE, name="Bundle reservation bench")
        for i in range(PLAIN):
            services.product_create(sku=f"BR-P{i:04d}", name=f"plain {i}")
            services.stock_receive(
                sku=f"BR-P{i:04d}", warehouse=CODE, quantity=1_000_000, actor="user:bench"
            )
        for b in range(BUNDLES):
            bundle = Product.objects.create(sku=f"BR-B{b:04d}", name=f"bundle {b}", is_bundle=True)
            BundleComponent.objects.bulk_create(
                BundleComponent(
                    bundle=bundle,
                    component=Product.objects.get(sku=f"BR-P{3 * b + k:04d}"),
                    quantity=1,
                )
                for k in range(3)
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--engine", choices=["sql", "python"], default="sql")
    args = parser.parse_args()
    prefix = f"bench-bundle-res-{os.getpid()}"
    os.environ["STOCKROOM_AVAILABILITY_KEY_PREFIX"] = prefix
    os.environ["STOCKROOM_RESERVE_ENGINE"] = args.engine
    create_database(DB)
    setup_django(DB)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    build()

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django_redis import get_redis_connection

    from inventory import services
    from inventory.services import OrderRequest, ReserveLine

    rng = random.Random(16)
    run = uuid.uuid4().hex[:8]
    counter = iter(range(10**9))

    def plain_lines(b: int) -> list[ReserveLine]:
        return [ReserveLine(f"BR-P{3 * b + k:04d}", CODE, 1) for k in range(3)]

    def bundle_lines(b: int) -> list[ReserveLine]:
        return [ReserveLine(f"BR-B{b:04d}", CODE, 1)]

    def one(make):
        return lambda: services.stock_reserve(
            order_id=f"br-{run}-{next(counter)}",
            lines=make(rng.randrange(BUNDLES)),
            actor="system:bench",
        )

    def batch(make):
        def call():
            outcomes = services.stock_reserve_batch(
                orders=[
                    OrderRequest(f"br-{run}-{next(counter)}", make(rng.randrange(BUNDLES)))
                    for _ in range(args.batch)
                ],
                actor="system:bench",
            )
            assert all(o.error is None for o in outcomes), outcomes

        return call

    cases = {
        "3 single lines": (one(plain_lines), 1),
        "1 bundle line (3 components)": (one(bundle_lines), 1),
        f"batch of {args.batch} x 3 single lines": (batch(plain_lines), args.batch),
        f"batch of {args.batch} x 1 bundle line": (batch(bundle_lines), args.batch),
    }
    names = list(cases)
    from inventory.services import bundle_lines

    # A process that has served every bundle once remembers its composition.
    bundle_lines.bundle_compositions(f"BR-B{b:04d}" for b in range(BUNDLES))
    for fn, _ in cases.values():  # warm
        fn()
    latencies: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            fn, _ = cases[name]
            started = time.perf_counter()
            fn()
            latencies[name].append((time.perf_counter() - started) * 1000)
    statements = {}
    for name, (fn, _) in cases.items():
        with CaptureQueriesContext(connection) as queries:
            fn()
        statements[name] = len(queries)
    load = os.getloadavg()
    print(
        f"engine: {args.engine}; rounds: {args.rounds}; load average (1, 5, 15 min): "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cores: {os.cpu_count()}"
    )
    print(
        "| case | p50 ms | p99 ms | orders/s | p50 ratio | p99 ratio | statements/call |\n"
        "|---|---:|---:|---:|---:|---:|---:|"
    )
    for i, name in enumerate(names):
        values = latencies[name]
        base = latencies[names[i - i % 2]]  # a bundle case against the plain case of its shape
        per_call = cases[name][1]
        print(
            f"| {name} | {median(values):.2f} | {percentile(values, 99):.2f} | "
            f"{per_call * 1000 / median(values):.0f} | {median(values) / median(base):.2f} | "
            f"{percentile(values, 99) / percentile(base, 99):.2f} | {statements[name]} |"
        )
    client = get_redis_connection("default")
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


if __name__ == "__main__":
    main()
