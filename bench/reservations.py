"""Reservation throughput: the database's ceiling (pgbench) vs the project's service layer.

    .venv/bin/python bench/reservations.py [--skus 1000000] [--duration 10] [--repeats 3]

Builds (once) a bench catalogue in its own database, then in one run:

* **ceiling** — pgbench, 32 connections, the bare SQL of one reservation in several
  shapes: the seed's SELECT FOR UPDATE + UPDATE + INSERT (the baseline), a
  conditional UPDATE + INSERT, one CTE statement, and the project's own
  `stockroom_reserve_orders` for 1-line, 3-line, hot-SKU and 100-order batches;
* **service** — the project's `stock_reserve` / `stock_reserve_batch` driven by
  several processes (each its own connection), same workloads;

and prints one markdown table: orders/s (median over repeats), p50/p99 latency per
call, the ratio to the pgbench ceiling of the same SQL shape and to the seed
baseline. Figures go into docs/PERFORMANCE.md with this command.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BENCH_DB,
    create_database,
    ensure_catalogue,
    median,
    percentile,
    pgbench_orders,
    setup_django,
)

SKU = "'BENCH-' || lpad(CAST(:n AS text), 7, '0')"
HOT_SKU = "BENCH-0000007"  # the flash-sale SKU (n = 7 in the pgbench scripts)
SOLD_OUT_SKU = "BENCH-0000003"  # set to nothing available before the sold-out rows
# Uniform picks start past the sold-out and hot SKUs: the hand-written "seed"
# script reserves without a check, and on the sold-out row that is a CHECK
# violation that aborts pgbench (likely at 20,000 SKUs, rare at a million).
FIRST_UNIFORM = 10
LOOKUP = f"""
    SELECT inv.id FROM inventory_inventory inv
    JOIN inventory_product p ON p.id = inv.product_id
    JOIN warehouses_warehouse w ON w.id = inv.warehouse_id
    WHERE p.sku = {SKU} AND w.code = 'BW01'
"""
LEDGER_INSERT = """
    INSERT INTO inventory_inventorytransaction
        (id, product_id, warehouse_id, type, on_hand_delta, reserved_delta, on_hand_after,
         reserved_after, reference_type, reference_id, reason, created_at, created_by, request_id)
"""


def batch_script(orders: int, skus: int, hot: bool) -> str:
    """pgbench script: one call of the reserve function with `orders` one-line
    orders, on random SKUs or all on the hot SKU."""
    picks = (
        f"array_fill(CAST('{HOT_SKU}' AS text), ARRAY[{orders}])"
        if hot
        else f"(SELECT array_agg('BENCH-' || lpad(CAST(CAST({FIRST_UNIFORM} + floor(random() * "
        f"{skus - FIRST_UNIFORM}) AS int) AS text), 7, '0'))\n"
        f"     FROM generate_series(1, {orders}))"
    )
    return f"""\\set r random(1, 1000000000000)
SELECT stockroom_reserve_orders(
  (SELECT array_agg('pgb-' || CAST(:client_id AS text) || '-' || CAST(:r AS text) || '-' || g)
     FROM generate_series(1, {orders}) g),
  array_fill(CAST('fp' AS text), ARRAY[{orders}]),
  array_fill(CAST(NULL AS timestamptz), ARRAY[{orders}]),
  array_fill(1, ARRAY[{orders}]),
  {picks},
  array_fill(CAST('BW01' AS text), ARRAY[{orders}]),
  array_fill(CAST(1 AS bigint), ARRAY[{orders}]), 'system' || chr(58) || 'bench', '', now(),
  array_fill(CAST(NULL AS text), ARRAY[{orders}]), CAST(NULL AS jsonb));
"""


def pgbench_scripts(skus: int) -> dict[str, str]:
    rand = f"\\set n random({FIRST_UNIFORM}, {skus - 1})\n\\set r random(1, 1000000000000)\n"
    one_order = (
        "SELECT stockroom_reserve_orders("
        "ARRAY['pgb-' || CAST(:client_id AS text) || '-' || CAST(:r AS text)], "
        "ARRAY['fp'], CAST(ARRAY[NULL] AS timestamptz[]), ARRAY[{count}], {skus_sql}, {codes_sql}, "
        "{qtys_sql}, 'system' || chr(58) || 'bench', '', now(), "
        # no bundle lines: the line's bundle (p_bundles) and the compositions (migrations 0019/0022)
        "array_fill(CAST(NULL AS text), ARRAY[{count}]), CAST(NULL AS jsonb));\n"
    )
    return {
        "seed: SELECT FOR UPDATE + UPDATE + INSERT": rand
        + f"""BEGIN;
SELECT inv.id, inv.on_hand - inv.reserved FROM inventory_inventory inv
  JOIN inventory_product p ON p.id = inv.product_id
  JOIN warehouses_warehouse w ON w.id = inv.warehouse_id
  WHERE p.sku = {SKU} AND w.code = 'BW01' FOR UPDATE OF inv;
UPDATE inventory_inventory SET reserved = reserved + 1, version = version + 1
  WHERE id = ({LOOKUP});
{LEDGER_INSERT} SELECT stockroom_uuid7(), product_id, warehouse_id, 'RESERVE', 0, 1, on_hand,
  reserved, 'order', 'pgb-' || CAST(:client_id AS text) || '-' || CAST(:r AS text), '', now(),
  'system' || chr(58) || 'bench', ''
  FROM inventory_inventory WHERE id = ({LOOKUP});
COMMIT;
""",
        "conditional UPDATE + INSERT": rand
        + f"""BEGIN;
UPDATE inventory_inventory SET reserved = reserved + 1, version = version + 1
  WHERE id = ({LOOKUP}) AND on_hand - reserved + backorder_allowance >= 1;
{LEDGER_INSERT} SELECT stockroom_uuid7(), product_id, warehouse_id, 'RESERVE', 0, 1, on_hand,
  reserved, 'order', 'pgb-' || CAST(:client_id AS text) || '-' || CAST(:r AS text), '', now(),
  'system' || chr(58) || 'bench', ''
  FROM inventory_inventory WHERE id = ({LOOKUP});
COMMIT;
""",
        "one CTE statement": rand
        + f"""WITH u AS (
  UPDATE inventory_inventory SET reserved = reserved + 1, version = version + 1
  WHERE id = ({LOOKUP}) AND on_hand - reserved + backorder_allowance >= 1
  RETURNING product_id, warehouse_id, on_hand, reserved)
{LEDGER_INSERT} SELECT stockroom_uuid7(), product_id, warehouse_id, 'RESERVE', 0, 1, on_hand,
  reserved, 'order', 'pgb-' || CAST(:client_id AS text) || '-' || CAST(:r AS text), '', now(),
  'system' || chr(58) || 'bench', '' FROM u;
""",
        "project function, 1 line": rand
        + one_order.format(
            count=1,
            skus_sql=f"ARRAY[{SKU}]",
            codes_sql="ARRAY['BW01']",
            qtys_sql="CAST(ARRAY[1] AS bigint[])",
        ),
        "project function, 3 lines": f"\\set n random({FIRST_UNIFORM}, {skus - 4})\n"
        + "\\set r random(1, 1000000000000)\n"
        + one_order.format(
            count=3,
            skus_sql=(
                f"ARRAY[{SKU}, 'BENCH-' || lpad(CAST(CAST(:n AS int) + 1 AS text), 7, '0'), "
                "'BENCH-' || lpad(CAST(CAST(:n AS int) + 2 AS text), 7, '0')]"
            ),
            codes_sql="ARRAY['BW01', 'BW01', 'BW01']",
            qtys_sql="CAST(ARRAY[1, 1, 1] AS bigint[])",
        ),
        "project function, hot SKU": "\\set n 7\n\\set r random(1, 1000000000000)\n"
        + one_order.format(
            count=1,
            skus_sql=f"ARRAY[{SKU}]",
            codes_sql="ARRAY['BW01']",
            qtys_sql="CAST(ARRAY[1] AS bigint[])",
        ),
        **{
            f"project function, batch of {n} orders{label}": batch_script(n, skus, hot)
            for n in (100, 500)
            for label, hot in (("", False), (", hot SKU", True))
        },
        "availability SUM over a SKU's rows": f"""\\set n random(0, {skus - 1})
SELECT sum(inv.available) FROM inventory_inventory inv
  JOIN inventory_product p ON p.id = inv.product_id WHERE p.sku = {SKU};
""",
    }


ORDERS_PER_CALL = {
    "project function, batch of 100 orders": 100,
    "project function, batch of 100 orders, hot SKU": 100,
    "project function, batch of 500 orders": 500,
    "project function, batch of 500 orders, hot SKU": 500,
}


def pgbench_shape(
    db: str, name: str, script: str, duration: int, clients: int, env: dict | None = None
) -> float:
    """Orders/s of one named shape's pgbench script on `db` (prepared), counting
    each call as the orders it carries (`ORDERS_PER_CALL`): what the before/after
    benches compare."""
    return pgbench_orders(
        db, name, script, duration, clients, ORDERS_PER_CALL.get(name, 1), env=env
    )


def run_pgbench(name: str, script: str, duration: int, clients: int, mode: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "script.sql"
        path.write_text(script)
        cmd = [
            "pgbench", "-n", "-h", "127.0.0.1", "-U", "postgres", "-c", str(clients), "-j", "2",
            "-T", str(duration), "-M", mode, "-f", str(path), "--log", "--log-prefix",
            str(Path(tmp) / "log"), BENCH_DB.rsplit("/", 1)[1],
        ]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        if out.returncode != 0:
            raise SystemExit(f"pgbench failed for {name}: {out.stderr[-2000:]}")
        tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))
        failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
        latencies = []
        for log in Path(tmp).glob("log*"):
            for line in log.read_text().splitlines():
                latencies.append(int(line.split()[2]) / 1000.0)
    per_call = ORDERS_PER_CALL.get(name, 1)
    return {
        "orders": tps * per_call,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "failed": int(failed.group(1)) if failed else 0,
    }


# --- service level -------------------------------------------------------------


_start_barrier = None


def _init_worker(barrier) -> None:
    global _start_barrier
    _start_barrier = barrier


def _service_worker(args) -> tuple[int, list[float]]:
    workload, skus, duration, seed, engine = args
    os.environ["STOCKROOM_RESERVE_ENGINE"] = engine
    os.environ["STOCKROOM_SOLD_OUT_GATE"] = "true" if "gate on" in workload else "false"
    setup_django()
    from django.db import connection

    connection.ensure_connection()
    import random

    from inventory import errors, services
    from inventory.services import OrderRequest, ReserveLine

    if workload.startswith("sold out"):
        from inventory import selectors

        selectors.availability_for_skus([SOLD_OUT_SKU])  # the read model knows it is sold out
    rng = random.Random(seed)
    prefix = uuid.uuid4().hex[:8]
    done, latencies, n = 0, [], 0
    # Start together, after every process has imported Django and connected:
    # otherwise the later processes' start-up (a second or more of CPU each)
    # runs inside the earlier ones' measured window on a 2-core machine.
    _start_barrier.wait()
    deadline = time.perf_counter() + duration
    while time.perf_counter() < deadline:
        n += 1
        started = time.perf_counter()
        if workload.startswith("batch of "):
            hot = workload.endswith("hot SKU")
            size = int(workload.split()[2])
            picks = [HOT_SKU if hot else f"BENCH-{rng.randrange(skus):07d}" for _ in range(size)]
            orders = [
                OrderRequest(f"svc-{prefix}-{n}-{k}", [ReserveLine(sku, "BW01", 1)])
                for k, sku in enumerate(picks)
            ]
            outcomes = services.stock_reserve_batch(orders=orders, actor="system:bench")
            # Reserved or replayed (`o.error is None`): what a caller that reports
            # outcomes reads (the batch API); `o.result` would build every
            # reservation's model objects, which no such caller asks for.
            done += sum(o.error is None for o in outcomes)
        elif workload.startswith("sold out"):
            # A flash sale after the stock is gone: every attempt is refused; counted
            # as attempts answered per second.
            with contextlib.suppress(errors.InsufficientStock):
                services.stock_reserve(
                    order_id=f"svc-{prefix}-{n}",
                    lines=[ReserveLine(SOLD_OUT_SKU, "BW01", 1)],
                    actor="system:bench",
                )
            done += 1
        else:
            if workload == "hot SKU":
                chosen = [HOT_SKU]
            elif workload == "3 lines":
                chosen = [f"BENCH-{rng.randrange(skus):07d}" for _ in range(3)]
            else:
                chosen = [f"BENCH-{rng.randrange(skus):07d}"]
            services.stock_reserve(
                order_id=f"svc-{prefix}-{n}",
                lines=[ReserveLine(sku, "BW01", 1) for sku in chosen],
                actor="system:bench",
            )
            done += 1
        latencies.append((time.perf_counter() - started) * 1000)
    return done, latencies


def sell_out(sku: str) -> None:
    """Leave nothing available on `sku` (an ADJUST to what is reserved, in the
    ledger), and fill its availability cache entry, as a sold-out flash sale."""
    from inventory import selectors, services
    from inventory.models import Inventory

    row = Inventory.objects.get(product__sku=sku, warehouse__code="BW01")
    if row.on_hand != row.reserved:
        services.stock_adjust(
            sku=sku, warehouse="BW01", counted=row.reserved, reason="bench: sold out",
            actor="system:bench",
        )  # fmt: skip
    selectors.availability_for_skus([sku])


def restock(sku: str, available: int = 1_000_000) -> None:
    """Bring `sku` back to `available` units (a RECEIVE in the ledger) so that a
    hot-SKU run measures reservations, not refusals of a sold-out row."""
    from inventory import services
    from inventory.models import Inventory

    row = Inventory.objects.get(product__sku=sku, warehouse__code="BW01")
    missing = available - row.available
    if missing > 0:
        services.stock_receive(
            sku=sku, warehouse="BW01", quantity=missing, reason="bench: restock",
            actor="system:bench",
        )  # fmt: skip


def run_service(workload: str, skus: int, duration: int, processes: int, engine: str) -> dict:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes)
    with ctx.Pool(processes, initializer=_init_worker, initargs=(barrier,)) as pool:
        results = pool.map(
            _service_worker,
            [(workload, skus, duration, seed, engine) for seed in range(processes)],
        )
    done = sum(r[0] for r in results)
    latencies = [lat for r in results for lat in r[1]]
    return {
        "orders": done / duration,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "failed": 0,
    }


SERVICE_ROWS = [
    # (label, workload, engine, ceiling shape)
    ("service: stock_reserve, 1 line (ORM engine)", "1 line", "python", "project function, 1 line"),
    ("service: stock_reserve, 1 line", "1 line", "sql", "project function, 1 line"),
    ("service: stock_reserve, 1 line, sold-out gate on", "1 line, gate on", "sql",
     "project function, 1 line"),
    ("service: stock_reserve, 3 lines", "3 lines", "sql", "project function, 3 lines"),
    ("service: stock_reserve, hot SKU", "hot SKU", "sql", "project function, hot SKU"),
    ("service: stock_reserve_batch, 100 orders", "batch of 100 orders", "sql",
     "project function, batch of 100 orders"),
    ("service: stock_reserve_batch, 100 orders, hot SKU", "batch of 100 orders, hot SKU", "sql",
     "project function, batch of 100 orders, hot SKU"),
    ("service: stock_reserve_batch, 500 orders", "batch of 500 orders", "sql",
     "project function, batch of 500 orders"),
    ("service: stock_reserve_batch, 500 orders, hot SKU", "batch of 500 orders, hot SKU", "sql",
     "project function, batch of 500 orders, hot SKU"),
    ("service: sold-out SKU, gate off (attempts/s)", "sold out, gate off", "sql", None),
    ("service: sold-out SKU, gate on (attempts/s)", "sold out, gate on", "sql", None),
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skus", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32, help="pgbench connections")
    parser.add_argument("--processes", type=int, default=4, help="service-level processes")
    parser.add_argument("--only", choices=["ceiling", "service"], default=None)
    parser.add_argument("--rows", help="only rows whose label has one of these, a,b")
    args = parser.parse_args()

    create_database()
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    ensure_catalogue(args.skus, 1)
    sell_out(SOLD_OUT_SKU)
    from django.db import connection

    connection.close()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, setting, unit FROM pg_settings WHERE name IN "
            "('shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'synchronous_commit')"
        )
        settings_line = ", ".join(f"{n}={v}{u or ''}" for n, v, u in cursor.fetchall())
    connection.close()

    results: dict[str, list[dict]] = {}
    scripts = pgbench_scripts(args.skus)
    wanted = args.rows.split(",") if args.rows else [""]
    scripts = {k: v for k, v in scripts.items() if any(w in f"ceiling: {k}" for w in wanted)}
    service_rows = [r for r in SERVICE_ROWS if any(w in r[0] for w in wanted)]
    load_before = os.getloadavg()
    for repeat in range(args.repeats):
        if args.only in (None, "ceiling"):
            for name, script in scripts.items():
                for mode in ("simple", "prepared"):
                    if "hot SKU" in name:
                        restock(HOT_SKU)
                    label = f"ceiling: {name} [{mode}]"
                    results.setdefault(label, []).append(
                        run_pgbench(name, script, args.duration, args.clients, mode)
                    )
                    print(f"# {repeat + 1}/{args.repeats} {label}: "
                          f"{results[label][-1]['orders']:.0f}/s", flush=True)  # fmt: skip
        if args.only in (None, "service"):
            for label, workload, engine, _ in service_rows:
                if "hot SKU" in workload:
                    restock(HOT_SKU)
                results.setdefault(label, []).append(
                    run_service(workload, args.skus, args.duration, args.processes, engine)
                )
                print(f"# {repeat + 1}/{args.repeats} {label}: "
                      f"{results[label][-1]['orders']:.0f}/s", flush=True)  # fmt: skip

    def med(label: str, key: str) -> float:
        return median([r[key] for r in results.get(label, [])])

    baseline = med("ceiling: seed: SELECT FOR UPDATE + UPDATE + INSERT [simple]", "orders")
    ceilings = {shape: max(med(f"ceiling: {shape} [simple]", "orders"),
                           med(f"ceiling: {shape} [prepared]", "orders"))
                for _, _, _, shape in SERVICE_ROWS if shape}  # fmt: skip
    print()
    print(f"SKUs: {args.skus:,}; runs: {args.repeats} x {args.duration}s; pgbench "
          f"{args.clients} connections; service {args.processes} processes")  # fmt: skip
    print(f"PostgreSQL: {settings_line}")
    print(f"load average (1 min) before: {load_before[0]:.1f}, after: {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    print()
    print("| row | orders/s (median) | p50 ms | p99 ms | vs ceiling | vs seed baseline |")
    print("|---|---:|---:|---:|---:|---:|")
    for label in results:
        orders = med(label, "orders")
        ceiling = next((ceilings[s] for lbl, _, _, s in SERVICE_ROWS if lbl == label and s), None)
        vs_ceiling = f"{orders / ceiling:.0%}" if ceiling else ""
        vs_seed = f"{orders / baseline:.2f}x" if baseline == baseline and baseline else ""
        print(f"| {label} | {orders:,.0f} | {med(label, 'p50'):.2f} | {med(label, 'p99'):.2f} "
              f"| {vs_ceiling} | {vs_seed} |")  # fmt: skip


if __name__ == "__main__":
    main()
