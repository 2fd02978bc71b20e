"""CPU per reservation, in the web process and in its PostgreSQL backend: a
measure that a loaded machine does not distort (issue #18, goals 2 and 3).

    BENCH_DATABASE_URL=… BENCH_REDIS_URL=… python bench/reserve_cpu.py \\
        [--before /tmp/before] [--rounds 3] [--single 600] [--batches 20]

Throughput on a busy box is mostly a measure of the others' load; CPU time is
not. For each tree (this one, and `--before`'s in alternating order per round)
a child process makes `--single` one-line `stock_reserve` calls (random SKUs of
the bench catalogue, sold-out gate on as in production) and `--batches`
500-order `stock_reserve_batch` calls, one at a time, and reports per call:

* **web CPU**: the child's own CPU time (every thread: the read model's
  write-behind thread included);
* **database CPU**: its PostgreSQL backend's CPU time (/proc/<pid>/stat, so
  PostgreSQL must run on this host): the reserve function, its commit, and
  whatever else the service asks;
* **share**: database / (database + web). With the machine's cores all busy,
  throughput is inversely proportional to the CPU each reservation takes, and
  pgbench's own client costs next to nothing, so this share is what the
  service-level throughput can reach of the function's (Redis's own CPU is
  not counted: shared with others here; the new code makes fewer Redis calls).

Prints medians per tree and the after/before ratio of each, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ.setdefault("STOCKROOM_AVAILABILITY_KEY_PREFIX", f"bench-cpu-{secrets.token_hex(4)}")
sys.path.insert(0, str(HERE))
from common import BENCH_DB, bench_redis_env, delete_bench_keys, run_child_in_tree  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
# Picks start past the sold-out SKU that bench/reservations.py leaves (BENCH-0000003)
# and its hot one: a batch of 500 on a 20,000-SKU catalogue met the sold-out row
# one time in forty and failed its check.
FIRST_UNIFORM = 10


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def child(single: int, batches: int) -> None:
    """In the tree under test: the calls, one at a time; prints one JSON line."""
    os.environ["STOCKROOM_SOLD_OUT_GATE"] = "true"
    for name, value in bench_redis_env().items():
        os.environ.setdefault(name, value)
    os.environ.update(
        DATABASE_URL=BENCH_DB,
        DJANGO_SETTINGS_MODULE="inventory_site.settings.base",
        DJANGO_DEBUG="false",
    )
    sys.path.insert(0, os.getcwd())  # the tree under test, not this script's
    import random

    import django

    django.setup()

    from django.db import connection

    from inventory import services
    from inventory.services import OrderRequest, ReserveLine

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), count(*) FROM inventory_product")
        pid, skus = cursor.fetchone()
    rng, tag = random.Random(), secrets.token_hex(4)
    out = {}
    for name, calls in (("single", single), ("batch", batches)):

        def call(n, name=name):
            if name == "single":
                sku = f"BENCH-{rng.randrange(FIRST_UNIFORM, skus):07d}"
                services.stock_reserve(
                    order_id=f"cpu-{tag}-{n}", lines=[ReserveLine(sku, "BW01", 1)], actor="c"
                )
            else:
                orders = [
                    OrderRequest(
                        f"cpu-{tag}-b{n}-{k}",
                        [ReserveLine(f"BENCH-{rng.randrange(FIRST_UNIFORM, skus):07d}", "BW01", 1)],
                    )
                    for k in range(500)
                ]
                outcomes = services.stock_reserve_batch(orders=orders, actor="c")
                assert all(o.error is None for o in outcomes)

        for n in range(5):
            call(-1 - n)  # warm: connection, prepared statement, imports
        db0, web0, wall0 = backend_cpu(pid), time.process_time(), time.perf_counter()
        for n in range(calls):
            call(n)
        from inventory import availability_cache

        if hasattr(availability_cache, "flush_writes"):
            availability_cache.flush_writes()  # the queued writes' CPU counts too
        out[name] = {
            "web_ms": (time.process_time() - web0) / calls * 1000,
            "db_ms": (backend_cpu(pid) - db0) / calls * 1000,
            "wall_ms": (time.perf_counter() - wall0) / calls * 1000,
        }
    print(json.dumps(out))


def measure(tree: Path, single: int, batches: int) -> dict:
    return run_child_in_tree(HERE / "reserve_cpu.py", tree, single, batches)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="the old tree (git archive of main)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--single", type=int, default=600)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    trees = {"after": HERE.parent}
    if args.before:
        trees = {"before": args.before.resolve(), **trees}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    loads = [os.getloadavg()[0]]
    try:
        for n in range(args.rounds):
            for name in list(trees) if n % 2 == 0 else list(trees)[::-1]:
                runs[name].append(measure(trees[name], args.single, args.batches))
                print(f"# round {n + 1} {name}: {json.dumps(runs[name][-1])}", flush=True)
            loads.append(os.getloadavg()[0])
    finally:
        delete_bench_keys()
    print()
    print(f"bench database {BENCH_DB.rsplit('/', 1)[1]}; {args.rounds} rounds of {args.single} "
          f"single and {args.batches} 500-order calls per tree, trees alternating; load average "
          f"(1 min) at start and after each round: {', '.join(f'{x:.1f}' for x in loads)} "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    print()
    print("| call | tree | web CPU ms | database CPU ms | database share | wall ms |")
    print("|---|---|---:|---:|---:|---:|")
    med: dict[tuple[str, str, str], float] = {}
    for shape in ("single", "batch"):
        for name in trees:
            for key in ("web_ms", "db_ms", "wall_ms"):
                med[(shape, name, key)] = statistics.median(r[shape][key] for r in runs[name])
            web, db = med[(shape, name, "web_ms")], med[(shape, name, "db_ms")]
            print(f"| {shape} | {name} | {web:.3f} | {db:.3f} | {db / (db + web):.0%} "
                  f"| {med[(shape, name, 'wall_ms')]:.2f} |")  # fmt: skip
    if args.before:
        print()
        for shape in ("single", "batch"):
            before = med[(shape, "before", "web_ms")] + med[(shape, "before", "db_ms")]
            after = med[(shape, "after", "web_ms")] + med[(shape, "after", "db_ms")]
            web = med[(shape, "after", "web_ms")] / med[(shape, "before", "web_ms")]
            db = med[(shape, "after", "db_ms")] / med[(shape, "before", "db_ms")]
            print(f"{shape}: CPU per call after / before = {after / before:.2f} "
                  f"(web {web:.2f}, database {db:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
