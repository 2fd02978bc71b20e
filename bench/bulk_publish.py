"""bulk_receive's after-commit publishing alone: listeners on a worker thread
(`bulk._publish_applied`) against the same batches handed over in turn.

    BENCH_REDIS_URL=redis://127.0.0.1:6379/N python bench/bulk_publish.py [ROWS] [ROUNDS]

Fills a session temp table shaped like the apply's applied-rows table with ROWS
synthetic committed rows (default 200,000), then publishes them to the
registered listeners (the availability read model's Redis write-through, the
reorder listener) both ways, sides alternating, each with newer versions so
every write applies. Prints seconds per side and round with the load average;
deletes this run's Redis keys (its own key prefix) at the end. Needs PostgreSQL
(any database: only a temp table is used) and Redis.
"""

from __future__ import annotations

import os
import sys
import time

import common

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3


def main() -> None:
    common.setup_django()
    from django.db import connection

    from inventory.services import bulk

    def in_turn(applied: str, lo: int, hi: int) -> None:
        for changes in bulk._applied_batches(applied, lo, hi):
            bulk._publish_batch(changes)

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE publish_applied (line integer PRIMARY KEY, inventory_id uuid, "
            "product_id uuid, warehouse_id uuid, on_hand bigint, reserved bigint, "
            "version bigint, unsellable bigint, sku text, warehouse_code text)"
        )
        cursor.execute(
            "INSERT INTO publish_applied SELECT g, gen_random_uuid(), gen_random_uuid(), "
            "gen_random_uuid(), 1000 + g, 0, 2, 0, 'BENCH-' || lpad(g::text, 7, '0'), 'BW01' "
            "FROM generate_series(1, %s) g",
            [ROWS],
        )
    sides = [("worker thread", bulk._publish_applied), ("in turn", in_turn)]
    print(f"# {ROWS:,} rows, batches of {bulk.PUBLISH_BATCH:,}; {os.cpu_count()} CPUs")
    print("| round | publishing | seconds | load (1 min) |\n|---:|---|---:|---|")
    for n in range(1, ROUNDS + 1):
        for name, publish in sides if n % 2 else sides[::-1]:
            with connection.cursor() as cursor:
                cursor.execute("UPDATE publish_applied SET version = version + 1")
            load = os.getloadavg()[0]
            started = time.perf_counter()
            publish("publish_applied", 1, ROWS)
            seconds = time.perf_counter() - started
            print(f"| {n} | {name} | {seconds:.2f} | {load:.1f} |", flush=True)
    print(f"# deleted {common.delete_bench_keys():,} Redis keys of this run")


if __name__ == "__main__":
    main()
