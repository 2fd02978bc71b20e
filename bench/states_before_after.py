"""The reservation path before and after the stock states (issue #15), in one run.

    .venv/bin/python bench/states_before_after.py [--skus 20000] [--duration 5] [--repeats 5]

Builds the bench catalogue at the head migration (database `BENCH_DATABASE_URL`),
clones it (`CREATE DATABASE … TEMPLATE`) and migrates the clone back to
`inventory 0014` (before the states: no safety_stock / damaged /
quality_control columns on the stock row, no state deltas on the ledger, the
events trigger of before). Into the clone it loads today's
`stockroom_reserve_orders` with the state terms taken out (the three places
issue #15 added them), so that the two databases differ by the states alone and
not by later work on the function (migration 0016's "batch rows first").

Then pgbench runs the project function's reservation shapes (`bench/reservations.py`'s
scripts: 1 line, 3 lines, a batch of 100 orders) against both databases,
alternating A B B A per repeat so that drift in the machine's load falls on both
alike, and prints per shape the median orders/s of each, the ratio of the
medians and the median of the per-pair ratios (the pairs ran back to back).
The service layer's Python (the ORM engine, `CommittedChange.unsellable`) is
not in this comparison: pgbench calls the SQL function directly.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DB, ROOT, create_database, ensure_catalogue, median, setup_django
from reservations import ORDERS_PER_CALL, pgbench_scripts

PRE_DB = BENCH_DB + "_pre_states"
SHAPES = (
    "project function, 1 line",
    "project function, 3 lines",
    "project function, batch of 100 orders",
)
# The terms issue #15 added to inventory/sql/reserve_orders.sql, and what stood there before.
STATE_TERMS = (
    (
        "inv.backorder_allowance - inv.safety_stock - inv.damaged - inv.quality_control\n"
        "                   AS backorder_allowance,\n"
        "               w.is_active,",
        "inv.backorder_allowance, w.is_active,",
    ),
    (
        "inv.version, d.rpos,\n"
        "                      inv.safety_stock + inv.damaged + inv.quality_control AS unsellable",
        "inv.version, d.rpos",
    ),
    ("row_sku[rpos], row_code[rpos], unsellable)", "row_sku[rpos], row_code[rpos])"),
)


def pre_states_function() -> str:
    sql = (ROOT / "inventory" / "sql" / "reserve_orders.sql").read_text()
    for now, before in STATE_TERMS:
        assert sql.count(now) == 1, f"the function changed; update STATE_TERMS: {now!r}"
        sql = sql.replace(now, before)
    assert "inv.damaged" not in sql and "inv.safety_stock" not in sql, "a state term is left"
    return sql


def psql(db: str, sql: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-d", db],
        input=sql, text=True, check=True, capture_output=True,
    )  # fmt: skip


def build_pre_states_clone() -> None:
    bench, pre = BENCH_DB.rsplit("/", 1)[1], PRE_DB.rsplit("/", 1)[1]
    psql("postgres", f'DROP DATABASE IF EXISTS "{pre}"')
    psql("postgres", f'CREATE DATABASE "{pre}" TEMPLATE "{bench}"')
    env = {**os.environ, "DATABASE_URL": PRE_DB, "PYTHONPATH": str(ROOT)}
    for app, target in (("events", "0002"), ("inventory", "0014")):
        subprocess.run(
            [sys.executable, "manage.py", "migrate", app, target, "--verbosity", "0"],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
    psql(pre, pre_states_function())
    psql(pre, "VACUUM ANALYZE")
    psql(bench, "VACUUM ANALYZE")


def run_pgbench(db: str, name: str, script: str, duration: int, clients: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "script.sql"
        path.write_text(script)
        cmd = [
            "pgbench", "-n", "-h", "127.0.0.1", "-U", "postgres", "-c", str(clients), "-j", "2",
            "-T", str(duration), "-M", "prepared", "-f", str(path), db.rsplit("/", 1)[1],
        ]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        if out.returncode != 0:
            raise SystemExit(f"pgbench failed for {name} on {db}: {out.stderr[-2000:]}")
        tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))
    return tps * ORDERS_PER_CALL.get(name, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skus", type=int, default=20_000)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8, help="pgbench connections")
    args = parser.parse_args()

    create_database()
    setup_django()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    ensure_catalogue(args.skus, 1)
    connection.close()
    build_pre_states_clone()

    scripts = {name: pgbench_scripts(args.skus)[name] for name in SHAPES}
    runs: dict[tuple[str, str], list[float]] = {}
    pairs: dict[str, list[float]] = {}
    load_before = os.getloadavg()
    for repeat in range(args.repeats):
        for name, script in scripts.items():
            got = {"head": [], "pre": []}
            for side in ("head", "pre", "pre", "head"):
                db = BENCH_DB if side == "head" else PRE_DB
                got[side].append(run_pgbench(db, name, script, args.duration, args.clients))
            for side, values in got.items():
                runs.setdefault((name, side), []).extend(values)
            pairs.setdefault(name, []).append(sum(got["head"]) / sum(got["pre"]))
            print(f"# {repeat + 1}/{args.repeats} {name}: head {got['head']}, "
                  f"pre {got['pre']}", flush=True)  # fmt: skip
    load_after = os.getloadavg()
    print()
    print(f"SKUs: {args.skus:,}; {args.repeats} repeats x (head, pre, pre, head) x "
          f"{args.duration}s; pgbench {args.clients} connections, prepared")  # fmt: skip
    print(f"load average (1 min) before: {load_before[0]:.1f}, after: {load_after[0]:.1f} "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    print()
    print(
        "| shape | before states, orders/s (median) | with states (head) | head / before "
        "(medians) | head / before (median of pairs) | pair ratios min-max |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for name in SHAPES:
        pre, head = median(runs[(name, "pre")]), median(runs[(name, "head")])
        ratios = pairs[name]
        print(f"| {name} | {pre:,.0f} | {head:,.0f} | {head / pre:.3f} | "
              f"{median(ratios):.3f} | {min(ratios):.2f}-{max(ratios):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
