"""The reserve path before and after a change to its SQL (issue #18, goal 2), in one run.

    .venv/bin/python bench/reserve_fn_before_after.py [--skus 20000] [--duration 5] [--repeats 3]
        [--before events/migrations/sql/0007_events_stock_emit.sql ...]

Builds the bench catalogue at the head migration (database `BENCH_DATABASE_URL`),
clones it (`CREATE DATABASE … TEMPLATE`) and loads into the clone the functions
as they were before (frozen copies; by default `--before` is the stock-event
emitter before its lean path, events migration 0008: the reserve function's
one-order fast path of inventory 0023 was measured with
`inventory/migrations/sql/0022_reserve_orders.sql`), so the two databases differ
by those functions alone. Then pgbench (prepared, 8
connections) runs `bench/reservations.py`'s scripts against both, alternating
before, after, after, before per repeat so that drift in the machine's load falls
on both alike:

* "one CTE statement" (the goal's ceiling: one UPDATE + ledger INSERT), on each
  database, so that the function's share of it is a same-database ratio;
* the function with 1 line, 3 lines, a batch of 100 one-line orders;
* the function refusing 1 line (`--sold-out`, on by default): a row with nothing
  available, what a flash sale's late buyers cost when the gate is off.

Prints per shape the medians, after / before, and per database the 1-line
function / CTE ratio (issue #18's goal 2: at least 70 %), with the load average.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BENCH_DB,
    ROOT,
    create_database,
    db_name,
    ensure_catalogue,
    median,
    setup_django,
)
from reservations import SOLD_OUT_SKU, pgbench_scripts, pgbench_shape

BEFORE_DB = BENCH_DB + "_before"
BEFORE_SQL = ("events/migrations/sql/0007_events_stock_emit.sql",)
CTE = "one CTE statement"
ONE_LINE = "project function, 1 line"
SOLD_OUT = "project function, 1 line refused (sold out)"
SHAPES = (
    CTE,
    ONE_LINE,
    "project function, 3 lines",
    "project function, batch of 100 orders",
)


def psql(db: str, sql: str) -> str:
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qAt", "-d", db],
        input=sql, text=True, check=True, capture_output=True,
    )  # fmt: skip
    return out.stdout


def sold_out_script() -> str:
    """One line on a row with nothing available: refused ('insufficient')."""
    script = pgbench_scripts(100)[ONE_LINE]  # (the SKU range is replaced below)
    return script.replace(
        "ARRAY['BENCH-' || lpad(CAST(:n AS text), 7, '0')]", f"ARRAY['{SOLD_OUT_SKU}']"
    )


def sell_out_row(db: str) -> None:
    """Nothing available on SOLD_OUT_SKU (bench data: a plain UPDATE, no ledger row)."""
    psql(
        db,
        "UPDATE inventory_inventory inv SET on_hand = inv.reserved FROM inventory_product p "
        f"WHERE p.id = inv.product_id AND p.sku = '{SOLD_OUT_SKU}';",
    )


def build_before_clone(before_sql: list[str]) -> None:
    bench, before = db_name(BENCH_DB), db_name(BEFORE_DB)
    psql("postgres", f'DROP DATABASE IF EXISTS "{before}"')
    psql("postgres", f'CREATE DATABASE "{before}" TEMPLATE "{bench}"')
    for path in before_sql:
        psql(before, (ROOT / path).read_text())
    for db in (before, bench):
        psql(db, "VACUUM ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skus", type=int, default=20_000)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8, help="pgbench connections")
    parser.add_argument("--shapes", help="only shapes whose name has one of these, a,b")
    parser.add_argument("--no-sold-out", action="store_true", help="skip the refused line")
    parser.add_argument("--reuse", action="store_true", help="keep an existing clone")
    parser.add_argument(
        "--before", nargs="+", default=list(BEFORE_SQL), help="frozen SQL files, from the root"
    )
    args = parser.parse_args()

    create_database()
    setup_django()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    ensure_catalogue(args.skus, 1)
    connection.close()
    sell_out_row(db_name(BENCH_DB))
    if not (args.reuse and psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = "
                                            f"'{db_name(BEFORE_DB)}'").strip()):  # fmt: skip
        build_before_clone(args.before)

    all_scripts = pgbench_scripts(args.skus)
    scripts = {name: all_scripts[name] for name in SHAPES}
    if not args.no_sold_out:
        scripts[SOLD_OUT] = sold_out_script()
    if args.shapes:
        wanted = args.shapes.split(",")
        scripts = {k: v for k, v in scripts.items() if any(w in k for w in wanted)}
    runs: dict[tuple[str, str], list[float]] = {}
    pairs: dict[str, list[float]] = {}
    load_before = os.getloadavg()
    for repeat in range(args.repeats):
        for name, script in scripts.items():
            got: dict[str, list[float]] = {"before": [], "after": []}
            for side in ("before", "after", "after", "before"):
                db = BENCH_DB if side == "after" else BEFORE_DB
                got[side].append(pgbench_shape(db, name, script, args.duration, args.clients))
            for side, values in got.items():
                runs.setdefault((name, side), []).extend(values)
            pairs.setdefault(name, []).append(sum(got["after"]) / sum(got["before"]))
            print(f"# {repeat + 1}/{args.repeats} {name}: before {got['before']}, "
                  f"after {got['after']}, load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    load_after = os.getloadavg()
    print()
    print(f"SKUs: {args.skus:,}; {args.repeats} repeats x (before, after, after, before) x "
          f"{args.duration}s; pgbench {args.clients} connections, prepared")  # fmt: skip
    print(f"load average (1 min) before: {load_before[0]:.1f}, after: {load_after[0]:.1f} "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    print()
    print("| shape | before, orders/s (median) | after | after / before (medians) "
          "| after / before (median of pairs) | pair ratios min-max |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---|")
    for name in scripts:
        before, after = median(runs[(name, "before")]), median(runs[(name, "after")])
        ratios = pairs[name]
        print(f"| {name} | {before:,.0f} | {after:,.0f} | {after / before:.3f} | "
              f"{median(ratios):.3f} | {min(ratios):.2f}-{max(ratios):.2f} |")  # fmt: skip
    if CTE in scripts and ONE_LINE in scripts:
        print()
        for side in ("before", "after"):
            share = median(runs[(ONE_LINE, side)]) / median(runs[(CTE, side)])
            print(f"function 1 line / one CTE statement, {side}: {share:.0%}")


if __name__ == "__main__":
    main()
