"""CPU per availability read, hit and miss, in the web process and its PostgreSQL
backend (issue #18, goal 4): what a read-model miss costs against a hit.

    BENCH_DATABASE_URL=… BENCH_REDIS_URL=… python bench/read_miss.py \\
        [--before /tmp/before] [--rounds 3] [--calls 1000]

On the bench catalogue (the one `bench/openloop.py` builds: SKUs `BENCH-nnnnnnn`
x 1 warehouse), a child process per tree (this one, and `--before`'s, alternating
per round) reads one SKU at a time through `selectors.availability_for_skus`:
`--calls` misses (the SKU's entry deleted from the read model first, so the read
loads it from the database and fills it) and as many hits (the same SKUs again).
Per call: the child's CPU time (web), its backend's (/proc/<pid>/stat, so
PostgreSQL must run on this host) and wall time. CPU time is what a loaded
machine distorts least. Prints medians per tree and the after/before ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import BENCH_DB, bench_redis_env, delete_bench_keys, run_child_in_tree  # noqa: E402
from reserve_cpu import backend_cpu  # noqa: E402


def child(calls: int, seed: int) -> None:
    """In the tree under test: the reads, one at a time; prints one JSON line."""
    os.environ.update(
        bench_redis_env(),
        DATABASE_URL=BENCH_DB,
        DJANGO_SETTINGS_MODULE="inventory_site.settings.base",
        DJANGO_DEBUG="false",
    )
    sys.path.insert(0, os.getcwd())  # the tree under test, not this script's
    import random

    import django

    django.setup()
    import redis
    from django.db import connection

    from inventory import availability_cache, selectors

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), count(*) FROM inventory_product")
        pid, count = cursor.fetchone()
    rng = random.Random(seed)
    skus = [f"BENCH-{n:07d}" for n in rng.sample(range(count), calls + 5)]
    for sku in skus[:5]:  # warm: connection, prepared statements, imports
        selectors.availability_for_skus([sku])
    skus = skus[5:]
    out = {}
    for name in ("miss", "hit"):
        if name == "miss":
            client.delete(*[availability_cache._key(sku) for sku in skus])
        db0, web0, wall0 = backend_cpu(pid), time.process_time(), time.perf_counter()
        for sku in skus:
            selectors.availability_for_skus([sku])
        out[name] = {
            "web_ms": (time.process_time() - web0) / calls * 1000,
            "db_ms": (backend_cpu(pid) - db0) / calls * 1000,
            "wall_ms": (time.perf_counter() - wall0) / calls * 1000,
        }
    client.delete(*[availability_cache._key(sku) for sku in skus])
    print(json.dumps(out))


def measure(tree: Path, calls: int, seed: int) -> dict:
    return run_child_in_tree(HERE / "read_miss.py", tree, calls, seed)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="the old tree (git archive of main)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    trees = {"after": HERE.parent}
    if args.before:
        trees = {"before": args.before.resolve(), **trees}
    runs: dict[tuple[str, str, str], list[float]] = {}
    try:
        for r in range(args.rounds):
            order = list(trees.items()) if r % 2 == 0 else list(reversed(trees.items()))
            for label, tree in order:
                result = measure(tree, args.calls, seed=r)
                for case, figures in result.items():
                    for metric, value in figures.items():
                        runs.setdefault((case, label, metric), []).append(value)
                print(f"round {r + 1} {label}: {json.dumps(result)} "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    finally:
        delete_bench_keys()  # the children's keys (the stamp sequence, any fill left)
    med = {key: statistics.median(values) for key, values in runs.items()}
    print()
    print("| read | tree | web CPU ms | database CPU ms | wall ms |")
    print("|---|---|---:|---:|---:|")
    for case in ("miss", "hit"):
        for label in trees:
            web, db, wall = (med[(case, label, m)] for m in ("web_ms", "db_ms", "wall_ms"))
            print(f"| {case} | {label} | {web:.3f} | {db:.3f} | {wall:.3f} |")
    if args.before:
        for case in ("miss", "hit"):
            after = med[(case, "after", "web_ms")] + med[(case, "after", "db_ms")]
            before = med[(case, "before", "web_ms")] + med[(case, "before", "db_ms")]
            print(f"{case}: CPU per read after / before = {after / before:.2f}")
    print(f"load average {os.getloadavg()}; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
