"""The ledger partitioned with pg_partman (issue #21), rehearsed at a few million rows.

    .venv/bin/python bench/partition_ledger.py [--rows 3000000] [--days 30] [--duration 10]

In one run, on its own freshly built database (default `stockroom_partition_bench`,
override with PARTITION_BENCH_DATABASE_URL; dropped and rebuilt every run so the
ledger starts unpartitioned):

1. a bench catalogue (2,000 SKUs x 2 warehouses) and `--rows` ledger rows spread
   over the last `--days` days (balanced pairs, time-ordered UUIDv7 ids);
2. **before**: `reconcile` over the whole plain ledger; reservation throughput
   (`stock_reserve_batch`, 100 orders per call, SQL engine, one process,
   `--repeats` windows of `--duration` s, median);
3. **conversion** (`ledger_partition_convert`) while a writer thread keeps
   reserving (10-order batches): copy time, the write pause (the swap's ACCESS
   EXCLUSIVE part) and the writer's slowest call during the conversion;
4. **after**: reconcile over the whole partitioned ledger; a first balance
   checkpoint; reconcile from the checkpoint (reads only the ledger since it);
   reservation throughput again;

reconcile is timed whole and its ledger part alone (the sums query), each after
a VACUUM ANALYZE of the ledger, stock rows and order lines (the throughput
windows update the same 4,000 stock rows ~100,000 times: without it the
stock-row scan, not the ledger, dominates);

and prints one markdown table with the load average before and after (the
machine is shared: compare the ratios, both sides measured in the same run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ensure_catalogue, setup_django

DB = os.environ.get(
    "PARTITION_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stockroom_partition_bench"
)
SKUS, WAREHOUSES = 2_000, 2


def rebuild_database() -> None:
    name = DB.rsplit("/", 1)[1]
    for cmd in (["dropdb", "--if-exists", "--force"], ["createdb"]):
        subprocess.run([*cmd, "-h", "127.0.0.1", "-U", "postgres", name], check=True)


def seed_ledger(rows: int, days: int) -> float:
    """`rows` ledger rows (ADJUST +1 / -1 pairs on random stock rows) over `days`
    days, ids time-ordered from their created_at; foreign keys re-checked once."""
    from django.db import connection, transaction

    from inventory.demo import drop_stock_foreign_keys, restore_stock_foreign_keys

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        dropped = drop_stock_foreign_keys()
        cursor.execute("ALTER TABLE inventory_inventorytransaction DISABLE TRIGGER events_stock")
        cursor.execute(
            """
            WITH rows AS (SELECT id, product_id, warehouse_id,
                                 row_number() OVER (ORDER BY id) - 1 AS k
                          FROM inventory_inventory),
            g AS (
                SELECT g, now() - (%(days)s * interval '1 day') * (1 - g::float / %(n)s) AS at,
                       md5(g::text) AS h
                FROM generate_series(0, %(n)s - 1) g
            )
            INSERT INTO inventory_inventorytransaction
                (id, product_id, warehouse_id, type, on_hand_delta, reserved_delta,
                 on_hand_after, reserved_after, reference_type, reference_id, reason,
                 created_at, created_by, request_id)
            SELECT (lpad(to_hex(floor(extract(epoch FROM g.at) * 1000)::bigint), 12, '0')
                    || '7' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid,
                   r.product_id, r.warehouse_id, 'ADJUST',
                   CASE WHEN g.g %% 2 = 0 THEN 1 ELSE -1 END, 0, 0, 0,
                   'manual', 'bench-history', 'bench history', g.at, 'system:bench', ''
            FROM g JOIN rows r ON r.k = (g.g / 2) %% %(stock_rows)s
            """,
            {"n": rows - rows % 2, "days": days, "stock_rows": SKUS * WAREHOUSES},
        )
        cursor.execute("ALTER TABLE inventory_inventorytransaction ENABLE TRIGGER events_stock")
        restore_stock_foreign_keys(dropped)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE inventory_inventorytransaction")
    return time.perf_counter() - started


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE inventory_inventorytransaction")
        cursor.execute("VACUUM ANALYZE inventory_inventory")
        cursor.execute("VACUUM ANALYZE inventory_reservationline")


def time_ledger_sums(checkpoint) -> float:
    """Reconcile's ledger part alone: what the ledger says every stock row holds."""
    from django.db import connection

    from inventory.services.checkpoints import ledger_sums_sql

    sql, params = ledger_sums_sql(checkpoint)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM ({sql}) s", params)
    return time.perf_counter() - started


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def reserve_batch(prefix: str, n: int, size: int) -> int:
    import random

    from inventory import services
    from inventory.services import OrderRequest, ReserveLine

    rng = random.Random(n)
    orders = [
        OrderRequest(
            f"{prefix}-{n}-{k}",
            [ReserveLine(f"BENCH-{rng.randrange(SKUS):07d}", "BW01", 1)],
        )
        for k in range(size)
    ]
    outcomes = services.stock_reserve_batch(orders=orders, actor="system:bench")
    return sum(o.result is not None for o in outcomes)


def throughput(label: str, duration: float, repeats: int) -> list[float]:
    rates = []
    for r in range(repeats):
        prefix, done, n = f"{label}-{r}-{uuid.uuid4().hex[:6]}", 0, 0
        deadline = time.perf_counter() + duration
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            done += reserve_batch(prefix, n, 100)
            n += 1
        rates.append(done / (time.perf_counter() - started))
    return rates


class Writer(threading.Thread):
    """Reserves 10-order batches until stopped; keeps each call's latency."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        from django.db import connection

        n = 0
        try:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    reserve_batch("during", n, 10)
                except Exception as exc:  # reported, not hidden
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                self.latencies.append(time.perf_counter() - started)
                n += 1
        finally:
            connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    os.environ.setdefault("STOCKROOM_SOLD_OUT_GATE", "false")
    os.environ.setdefault("STOCKROOM_RESERVE_ENGINE", "sql")
    os.environ.setdefault("STOCKROOM_LEDGER_CHECKPOINT_LAG_SECONDS", "0")
    rebuild_database()
    setup_django(DB)
    from django.core.management import call_command
    from django.db import connection

    from inventory import services

    load_before = os.getloadavg()
    call_command("migrate", verbosity=0)
    ensure_catalogue(SKUS, WAREHOUSES)
    seeded = seed_ledger(args.rows, args.days)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM inventory_inventorytransaction), "
            "pg_total_relation_size('inventory_inventorytransaction'), "
            "pg_relation_size('inventory_inventorytransaction'), "
            "pg_indexes_size('inventory_inventorytransaction')"
        )
        ledger_rows, ledger_bytes, heap_bytes, index_bytes = cursor.fetchone()
    print(f"# seeded {ledger_rows:,} ledger rows ({ledger_bytes / 2**20:.0f} MB) in {seeded:.0f}s")

    vacuum()
    t_reconcile_before, r = timed(services.inventory_reconcile)
    assert r.clean, r.discrepancies[:3]
    t_sums_before = time_ledger_sums(None)
    rate_before = throughput("before", args.duration, args.repeats)

    writer = Writer()
    writer.start()
    conversion = services.ledger_partition_convert()
    writer.stop.set()
    writer.join()

    vacuum()  # as autovacuum would after 3 million inserts (and as after the seeding)
    t_reconcile_after, r = timed(services.inventory_reconcile)
    assert r.clean, r.discrepancies[:3]
    t_sums_after = time_ledger_sums(None)
    t_checkpoint, taken = timed(services.ledger_checkpoint_take)
    t_reconcile_cp, r = timed(services.inventory_reconcile)
    assert r.clean and r.checkpoint is not None
    t_sums_cp = time_ledger_sums(taken.checkpoint)
    rate_after = throughput("after", args.duration, args.repeats)
    load_after = os.getloadavg()

    before, after = statistics.median(rate_before), statistics.median(rate_after)
    worst = max(writer.latencies) if writer.latencies else float("nan")
    typical = statistics.median(writer.latencies) if writer.latencies else float("nan")
    print()
    print(f"ledger: {ledger_rows:,} rows over {args.days} days, {ledger_bytes / 2**20:.0f} MB; "
          f"{conversion.partitions} daily partitions after conversion")  # fmt: skip
    print(f"load average (1/5/15 min): before {load_before}, after {load_after}")
    print()
    print("| what | figure |")
    print("|---|---:|")
    print(f"| plain ledger: heap / indexes / bytes per row (all) "
          f"| {heap_bytes / 2**20:.0f} MB / {index_bytes / 2**20:.0f} MB / "
          f"{ledger_bytes / ledger_rows:.0f} B |")  # fmt: skip
    print(f"| reconcile, plain ledger (whole) | {t_reconcile_before:.2f} s |")
    print(f"| of which the ledger sums, whole plain ledger | {t_sums_before:.2f} s |")
    print(f"| conversion total (copy + swap) | {conversion.seconds_total:.1f} s |")
    print(f"| of which the copy ({conversion.rows:,} rows, {conversion.batches} batches) "
          f"| {conversion.seconds_copy:.1f} s |")  # fmt: skip
    print(f"| write pause (the swap's ACCESS EXCLUSIVE lock, its wait included) "
          f"| {conversion.seconds_pause * 1000:.0f} ms |")  # fmt: skip
    calls = f"{len(writer.latencies)} / {typical * 1000:.0f} ms / {worst * 1000:.0f} ms"
    print(f"| writer during conversion: calls / median / slowest | {calls} |")
    print(f"| writer errors during conversion | {len(writer.errors)} |")
    print(f"| reconcile, partitioned ledger (whole) | {t_reconcile_after:.2f} s |")
    print(f"| of which the ledger sums, whole partitioned ledger | {t_sums_after:.2f} s |")
    print(f"| first balance checkpoint ({taken.checkpoint.ledger_rows_read:,} rows read) "
          f"| {t_checkpoint:.1f} s |")  # fmt: skip
    print(f"| reconcile from the checkpoint | {t_reconcile_cp:.2f} s |")
    print(f"| of which the ledger sums (checkpoint + ledger since) | {t_sums_cp:.3f} s |")
    print(f"| reservations/s before (median of {args.repeats}) "
          f"| {before:,.0f} ({', '.join(f'{x:,.0f}' for x in rate_before)}) |")  # fmt: skip
    print(f"| reservations/s after | {after:,.0f} ({', '.join(f'{x:,.0f}' for x in rate_after)}) |")
    print(f"| after / before | {after / before:.2f} |")
    if writer.errors:
        print("\nwriter errors:", *writer.errors[:5], sep="\n  ")


if __name__ == "__main__":
    main()
