"""The reservation path before and after the stock states (issue #15), in one run.

    .venv/bin/python bench/states_before_after.py [--skus 20000] [--duration 5] [--repeats 5]

Builds the bench catalogue at the head migration (database `BENCH_DATABASE_URL`),
clones it twice afresh each run (`CREATE DATABASE … TEMPLATE`: `_head_states`
as it is, `_pre_states` for before; stock rows rewritten alike, `build_clones`)
and takes the states out of the second
(`DROP_STATES_SQL`: no safety_stock / damaged / quality_control columns or
CHECKs on the stock row, `available` back to on hand - reserved, no state deltas
on the ledger) and loads today's `stockroom_reserve_orders` and stock-event
trigger with their state terms taken out (the places issue #15 added them).
So the two databases differ by the states alone, not by later work (bundles,
the events of today, transfers), which an older migration state would also
take away.

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BENCH_DB,
    ROOT,
    create_database,
    ensure_catalogue,
    median,
    setup_django,
)
from reservations import pgbench_scripts, pgbench_shape

PRE_DB = BENCH_DB + "_pre_states"
HEAD_DB = BENCH_DB + "_head_states"
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
    # the one-order statement (inventory migration 0023)
    (
        "inv.backorder_allowance - inv.safety_stock - inv.damaged\n"
        "                       - inv.quality_control AS allowance,",
        "inv.backorder_allowance AS allowance,",
    ),
    (
        "inv.version, l.s, l.c, l.q, l.n,\n"
        "                      inv.safety_stock + inv.damaged + inv.quality_control AS unsellable",
        "inv.version, l.s, l.c, l.q, l.n",
    ),
    ("u.version, u.s, u.c, u.unsellable)", "u.version, u.s, u.c)"),
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


# The stock-event trigger's state terms (events/sql/events_stock_emit.sql) and
# what stood there before issue #15 (events migration 0003 made "available" sellable).
EVENT_STATE_TERMS = (
    (
        "inv.on_hand - inv.reserved - inv.safety_stock - inv.damaged\n"
        "                   - inv.quality_control AS avail,",
        "inv.on_hand - inv.reserved AS avail,",
    ),
    (
        "(inv.on_hand - g.d_on_hand) - (inv.reserved - g.d_reserved) - inv.safety_stock\n"
        "                   - (inv.damaged - g.d_damaged)\n"
        "                   - (inv.quality_control - g.d_quality_control) AS old_avail,",
        "(inv.on_hand - g.d_on_hand) - (inv.reserved - g.d_reserved) AS old_avail,",
    ),
    (
        "sum(l.reserved_delta) AS d_reserved, sum(l.damaged_delta) AS d_damaged,\n"
        "                   sum(l.quality_control_delta) AS d_quality_control,",
        "sum(l.reserved_delta) AS d_reserved,",
    ),
)

# Head's schema without what issue #15 added on the reservation path: the three
# state columns of a stock row with their CHECKs, the sellable generated column
# (back to on hand - reserved), the ledger's state deltas, the below-threshold
# index over good units, the QC index. Everything else (bundles, events of
# today, transfers, checkpoints) stays, so the two databases differ by the
# states alone.
DROP_STATES_SQL = """
BEGIN;
DROP INDEX inventory_below_threshold;
DROP INDEX inventory_qc_waiting;
ALTER TABLE inventory_inventory
    DROP CONSTRAINT inventory_available_within_allowance,
    DROP CONSTRAINT inventory_unsellable_within_on_hand,
    DROP CONSTRAINT inventory_damaged_gte_0,
    DROP CONSTRAINT inventory_quality_control_gte_0,
    DROP CONSTRAINT inventory_inventory_safety_stock_check;
ALTER TABLE inventory_inventory DROP COLUMN available;
ALTER TABLE inventory_inventory
    DROP COLUMN damaged, DROP COLUMN quality_control, DROP COLUMN safety_stock,
    ADD COLUMN available bigint GENERATED ALWAYS AS (on_hand - reserved) STORED,
    ADD CONSTRAINT inventory_available_within_allowance
        CHECK (on_hand >= reserved - backorder_allowance);
CREATE INDEX inventory_below_threshold ON inventory_inventory (warehouse_id, product_id)
    WHERE on_hand < reorder_threshold;
ALTER TABLE inventory_inventorytransaction DROP CONSTRAINT ledger_changes_something;
ALTER TABLE inventory_inventorytransaction
    DROP COLUMN damaged_delta, DROP COLUMN quality_control_delta,
    ADD CONSTRAINT ledger_changes_something
        CHECK (NOT on_hand_delta = 0 OR NOT reserved_delta = 0);
COMMIT;
"""


def pre_states_events_trigger() -> str:
    sql = (ROOT / "events" / "sql" / "events_stock_emit.sql").read_text()
    for now, before in EVENT_STATE_TERMS:
        assert sql.count(now) == 1, f"the trigger changed; update EVENT_STATE_TERMS: {now!r}"
        sql = sql.replace(now, before)
    assert not re.search(r"\b(inv|l)\.(damaged|safety_stock|quality_control)", sql), (
        "a state term is left"
    )
    return sql


def build_clones() -> None:
    """Both sides cloned afresh from the bench catalogue, every run, and their
    stock rows rewritten alike (the pre side's ALTER TABLE rewrites its table;
    the head side gets VACUUM FULL): a side that kept the rows, dead tuples and
    index bloat of earlier runs would run slower for that alone (an earlier run
    of this bench on the reused bench database measured the states 5-20 %
    dearer that way)."""
    bench = BENCH_DB.rsplit("/", 1)[1]
    for clone in (HEAD_DB, PRE_DB):
        name = clone.rsplit("/", 1)[1]
        psql("postgres", f'DROP DATABASE IF EXISTS "{name}"')
        psql("postgres", f'CREATE DATABASE "{name}" TEMPLATE "{bench}"')
    pre, head = PRE_DB.rsplit("/", 1)[1], HEAD_DB.rsplit("/", 1)[1]
    psql(pre, pre_states_function())
    psql(pre, pre_states_events_trigger())
    psql(pre, DROP_STATES_SQL)
    psql(head, "VACUUM FULL inventory_inventory")
    for name in (pre, head):
        psql(name, "VACUUM ANALYZE")


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
    build_clones()

    scripts = {name: pgbench_scripts(args.skus)[name] for name in SHAPES}
    runs: dict[tuple[str, str], list[float]] = {}
    pairs: dict[str, list[float]] = {}
    load_before = os.getloadavg()
    for repeat in range(args.repeats):
        for name, script in scripts.items():
            got = {"head": [], "pre": []}
            for side in ("head", "pre", "pre", "head"):
                db = HEAD_DB if side == "head" else PRE_DB
                got[side].append(pgbench_shape(db, name, script, args.duration, args.clients))
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
