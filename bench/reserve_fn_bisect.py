"""What the 1-line reserve function pays for, piece by piece (issue #18, goal 2), in one run.

    .venv/bin/python bench/reserve_fn_bisect.py [--skus 20000] [--duration 5] [--repeats 2]
        [--function before|after] [--variants a,b] [--shapes a,b] [--profile]

Builds the bench catalogue at the head migration (`BENCH_DATABASE_URL`), then
one clone per variant (`CREATE DATABASE … TEMPLATE`): the base (head's schema,
with the function `--function` names: `before` is migration 0022's frozen copy,
`after` today's) and, from it, each variant with ONE piece taken out or replaced
(`VARIANTS` below: an events trigger, the feed position, the bundle-aware line
index, the bundle guard, the function's per-line bundle lookup). pgbench
(prepared, 8 connections) runs the 1-line function (and `--shapes` more, e.g.
the one CTE statement) on the base and a variant alternately (base, variant,
variant, base), and the table gives each variant's throughput over the base's
of the same rounds: what that piece costs.

`--profile`: one extra pgbench run per database with `track_functions = all`
for its sessions only (PGOPTIONS, never ALTER SYSTEM) and the per-call time
of every PL/pgSQL function (the reserve function's own statements and each
trigger) read from pg_stat_user_functions.
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
from reservations import pgbench_scripts, pgbench_shape

FUNCTIONS = {
    "before": ROOT / "inventory" / "migrations" / "sql" / "0022_reserve_orders.sql",
    "after": ROOT / "inventory" / "sql" / "reserve_orders.sql",
}
EVENTS_0002 = ROOT / "events" / "migrations" / "sql"

# name -> SQL run on a clone of the base; each takes one piece out or replaces it.
VARIANTS = {
    "no stock-event trigger (events_stock)": (
        "DROP TRIGGER events_stock ON inventory_inventorytransaction;"
    ),
    "no reservation.created trigger": (
        "DROP TRIGGER events_reservation_created ON inventory_reservationline;"
    ),
    "no events triggers at all": (
        "DROP TRIGGER events_stock ON inventory_inventorytransaction;"
        "DROP TRIGGER events_reservation_created ON inventory_reservationline;"
    ),
    "feed position = own transaction id (no snapshot)": (
        "CREATE OR REPLACE FUNCTION events_feed_position() RETURNS xid8 LANGUAGE sql "
        "AS $$ SELECT pg_current_xact_id() $$;"
    ),
    "events triggers of events 0002 (jsonb payloads)": "EVENTS_0002",
    "line unique index on (reservation, row), no COALESCE(bundle)": (
        "DROP INDEX reservation_line_unique_row;"
        "CREATE UNIQUE INDEX reservation_line_unique_row "
        "ON inventory_reservationline (reservation_id, inventory_id);"
    ),
    "no active-line index (reservation_line_active_row)": (
        "DROP INDEX reservation_line_active_row;"
    ),
    "no bundle guard trigger on stock rows": (
        "DROP TRIGGER inventory_bundle_has_no_stock ON inventory_inventory;"
    ),
    "function without the per-line bundle lookup": "NO_BUNDLE_JOIN",
    "no ledger FK (ledger_inventory_row_fk)": (
        "ALTER TABLE inventory_inventorytransaction DROP CONSTRAINT ledger_inventory_row_fk;"
    ),
    "no line FKs (reservation, stock row)": "NO_LINE_FKS",
}
BUNDLE_JOIN = "        LEFT JOIN inventory_product bp ON bp.sku = l.b\n"
NO_LINE_FKS = """
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = 'inventory_reservationline'::regclass AND contype = 'f'
    LOOP
        EXECUTE format('ALTER TABLE inventory_reservationline DROP CONSTRAINT %I', c.conname);
    END LOOP;
END $$;
"""


def psql(db: str, sql: str, env: dict | None = None) -> str:
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qAt", "-d", db],
        input=sql, text=True, check=True, capture_output=True, env=env,
    )  # fmt: skip
    return out.stdout


def variant_sql(name: str, function_sql: str) -> str:
    sql = VARIANTS[name]
    if sql == "EVENTS_0002":
        return ";\n".join(
            (EVENTS_0002 / f"0002_{fn}.sql").read_text().rstrip().rstrip(";")
            for fn in ("events_stock_emit", "events_reservation_created")
        ) + (
            ";\nCREATE UNIQUE INDEX IF NOT EXISTS events_availability_per_txn "
            "ON events_event (txid, sku) WHERE type = 'availability.changed';"
        )
    if sql == "NO_BUNDLE_JOIN":
        assert function_sql.count(BUNDLE_JOIN) == 1, "the function changed; update BUNDLE_JOIN"
        return function_sql.replace(BUNDLE_JOIN, "").replace(
            "'active', bp.id\n", "'active', NULL\n"
        )
    if sql == "NO_LINE_FKS":
        return NO_LINE_FKS
    return sql


def clone(source: str, target: str, sql: str | None) -> None:
    psql("postgres", f'DROP DATABASE IF EXISTS "{target}"')
    psql("postgres", f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
    if sql:
        psql(target, sql)
    psql(target, "VACUUM ANALYZE")


def profile(db: str, name: str, script: str, duration: int, clients: int) -> None:
    """Per-call time of each PL/pgSQL function, this database's sessions only."""
    psql(db, "SELECT pg_stat_reset();")
    env = {**os.environ, "PGOPTIONS": "-c track_functions=all"}
    pgbench_shape(db, name, script, duration, clients, env)
    psql(db, "SELECT pg_sleep(1);")  # (the stats collector's flush at session end)
    rows = psql(
        db,
        "SELECT funcname, calls, round((total_time / calls * 1000)::numeric, 1), "
        "round((self_time / calls * 1000)::numeric, 1) FROM pg_stat_user_functions "
        "WHERE calls > 0 ORDER BY total_time DESC;",
    )
    calls = {r.split("|")[0]: int(r.split("|")[1]) for r in rows.splitlines()}
    reserve_calls = calls.get("stockroom_reserve_orders", 0)
    print(f"\n# profile of {db} ({name}), per call in microseconds (track_functions = all):")
    print("| function | calls per reserve call | total µs per call | self µs per call |")
    print("|---|---:|---:|---:|")
    for row in rows.splitlines():
        fn, calls, total, self_ = row.split("|")
        per = int(calls) / reserve_calls if reserve_calls else float("nan")
        print(f"| {fn} | {per:.2f} | {total} | {self_} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skus", type=int, default=20_000)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8, help="pgbench connections")
    parser.add_argument("--function", choices=sorted(FUNCTIONS), default="before")
    parser.add_argument("--variants", help="only variants whose name has one of these, a,b")
    parser.add_argument("--shapes", default="project function, 1 line",
                        help="pgbench scripts of bench/reservations.py, a;b")  # fmt: skip
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    create_database()
    setup_django()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    ensure_catalogue(args.skus, 1)
    connection.close()

    function_sql = FUNCTIONS[args.function].read_text()
    base = f"{db_name(BENCH_DB)}_base"
    clone(db_name(BENCH_DB), base, function_sql)
    names = [
        n for n in VARIANTS
        if not args.variants or any(w in n for w in args.variants.split(","))
    ]  # fmt: skip
    dbs = {}
    for i, name in enumerate(names):
        dbs[name] = f"{db_name(BENCH_DB)}_v{i}"
        clone(base, dbs[name], variant_sql(name, function_sql))

    all_scripts = pgbench_scripts(args.skus)
    scripts = {s: all_scripts[s] for s in args.shapes.split(";")}
    if args.profile:
        for db in (base, *dbs.values()):
            for shape, script in scripts.items():
                profile(db, shape, script, args.duration, args.clients)

    ratios: dict[tuple[str, str], list[float]] = {}
    runs: dict[tuple[str, str], list[float]] = {}
    load_before = os.getloadavg()
    for repeat in range(args.repeats):
        for name in names:
            for shape, script in scripts.items():
                got = {"base": [], "variant": []}
                for side in ("base", "variant", "variant", "base"):
                    db = base if side == "base" else dbs[name]
                    got[side].append(pgbench_shape(db, shape, script, args.duration, args.clients))
                runs.setdefault((name, shape), []).extend(got["variant"])
                runs.setdefault(("(base)", shape), []).extend(got["base"])
                ratios.setdefault((name, shape), []).append(sum(got["variant"]) / sum(got["base"]))
                print(f"# {repeat + 1}/{args.repeats} {name} / {shape}: base {got['base']}, "
                      f"variant {got['variant']}, load {os.getloadavg()[0]:.1f}",
                      flush=True)  # fmt: skip
    load_after = os.getloadavg()
    print()
    print(f"SKUs: {args.skus:,}; function: {args.function}; {args.repeats} repeats x "
          f"(base, variant, variant, base) x {args.duration}s; pgbench {args.clients} "
          "connections, prepared")  # fmt: skip
    print(f"load average (1 min) before: {load_before[0]:.1f}, after: {load_after[0]:.1f} "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    print()
    print("| variant (one piece out of head's schema) | shape | variant orders/s (median) "
          "| variant / base (median of pairs) | pair ratios min-max |")  # fmt: skip
    print("|---|---|---:|---:|---|")
    for shape in scripts:
        print(f"| (base) | {shape} | {median(runs[('(base)', shape)]):,.0f} | 1.000 | |")
    for (name, shape), values in ratios.items():
        print(f"| {name} | {shape} | {median(runs[(name, shape)]):,.0f} | "
              f"{median(values):.3f} | {min(values):.2f}-{max(values):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
