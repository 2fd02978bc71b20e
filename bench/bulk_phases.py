"""bulk_receive per phase, old code against new code on the same file, in one run.

    python bench/bulk_phases.py FILE --template DB [--old TREE] [--rounds 1]

For each round and each side (the checkout given by --old, e.g. a `git archive`
of main, and this checkout), clones a fresh database from the template
(`createdb -T`: the same catalogue for every run; names stockroom_bench_*),
applies that side's migrations to the clone (untimed), then runs
`stock_receive_bulk` on FILE in a child process whose PYTHONPATH is that side's
tree, the way the `bulk_receive` command calls it (the file opened as utf-8-sig
text, a report file, atomic), and prints the seconds of each phase the
service reports (reading + COPY, validating, applying incl. the after-commit
publishing), the total and the child's peak RSS (getrusage: the whole process,
Django included). Sides alternate, so machine load hits both alike; the load
average is printed next to each run. The template must hold the catalogue
(e.g. `manage.py seed_demo --skus 1000000 --warehouses 1`) and the file receipts
for it (bench/make_receipt.py ROWS 1).

--statements adds, per side, the seconds of its slowest SQL statements (a Django
execute wrapper), of its commits (where the ledger's deferred foreign-key checks
run) and of its after-commit publishing; --explain DIR also writes the plans of
statements over 1 s, with trigger times (auto_explain LOADed for the child's
session only, plans sent as notices; timings then include EXPLAIN's overhead).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = ["-h", "127.0.0.1", "-U", "postgres"]

CHILD = r"""
import json, os, re, resource, sys, time
import django
django.setup()
from django.db import connection
from inventory.services import bulk
from inventory.services.bulk import stock_receive_bulk

# --statements: seconds per SQL statement (temp-table suffixes folded), the
# commits (deferred foreign-key checks run there) and the after-commit publishing.
statements, spans = {}, {"commit": 0.0, "publish": 0.0}

def timed(execute, sql, params, many, context):
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        label = re.sub(r"bulk_(raw|res|applied)_[0-9a-f]{12}", r"bulk_\1", " ".join(sql.split()))
        entry = statements.setdefault(label[:90], [0.0, 0])
        entry[0] += time.perf_counter() - started
        entry[1] += 1

def span(name, inner):
    def run(*args, **kwargs):
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spans[name] += time.perf_counter() - started
    return run

if os.environ.get("BULK_STATEMENTS"):
    connection.ensure_connection()
    connection._commit = span("commit", connection._commit)
    bulk._publish_applied = span("publish", bulk._publish_applied)
    if os.environ.get("BULK_EXPLAIN"):
        # auto_explain for this session only (LOAD needs no server setting), its plans
        # sent to this client as notices: each statement over 1 s, nested ones and
        # trigger times included.
        explain = open(os.environ["BULK_EXPLAIN"], "w")
        connection.connection.add_notice_handler(
            lambda d: explain.write((d.message_primary or "") + "\n\n"))
        with connection.cursor() as cursor:
            cursor.execute("LOAD 'auto_explain'")
            for name, value in (("log_min_duration", "1s"), ("log_analyze", "on"),
                                ("log_buffers", "on"), ("log_wal", "on"),
                                ("log_triggers", "on"), ("log_nested_statements", "on"),
                                ("log_level", "notice")):
                cursor.execute(f"SET auto_explain.{name} = '{value}'")

class Timer:
    def __init__(self):
        self.phases, self.name, self.started = [], None, None
    def phase(self, name, total=None):
        self.close()
        self.name, self.started = name, time.perf_counter()
    def advance(self, n=1):
        pass
    def close(self):
        if self.name:
            self.phases.append((self.name, time.perf_counter() - self.started,
                                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024))
            self.name = None

timer = Timer()
started = time.perf_counter()
with open(sys.argv[1], encoding="utf-8-sig", newline="") as source, \
        open(sys.argv[1] + ".report.csv", "w", encoding="utf-8", newline="") as report:
    if os.environ.get("BULK_STATEMENTS"):
        with connection.execute_wrapper(timed):
            result = stock_receive_bulk(source=source, actor="system:bench",
                                        reference=sys.argv[2], report=report, progress=timer)
    else:
        result = stock_receive_bulk(source=source, actor="system:bench", reference=sys.argv[2],
                                    report=report, progress=timer)
total = time.perf_counter() - started
top = sorted(statements.items(), key=lambda item: -item[1][0])[:12]
print(json.dumps({"phases": timer.phases, "total": total, "applied": result.applied,
                  "invalid": result.invalid, "statements": top, "spans": spans,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""


def run_side(tree: Path, template: str, file: str, label: str, probe: dict[str, str]) -> dict:
    clone = f"{template}_run"
    subprocess.run(["dropdb", *PG, "--if-exists", clone], check=True)
    subprocess.run(["createdb", *PG, "-T", template, clone], check=True)
    env = dict(
        os.environ,
        PYTHONPATH=str(tree),
        DJANGO_SETTINGS_MODULE="inventory_site.settings.base",
        DJANGO_DEBUG="false",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{clone}",
        DB_STATEMENT_TIMEOUT_MS="0",
        **probe,
    )
    env.setdefault("REDIS_URL", os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"))
    # The side's own schema: its migrations (e.g. dropped indexes) on the clone, untimed.
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=tree, env=env, check=True)
    load = os.getloadavg()[0]
    out = subprocess.run(
        [sys.executable, "-c", CHILD, file, f"BENCH-{label}"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    subprocess.run(["dropdb", *PG, "--if-exists", clone], check=False)
    if out.returncode != 0:
        raise SystemExit(f"{label} failed: {out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load"] = (load, os.getloadavg()[0])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file")
    parser.add_argument("--template", required=True, help="database holding the catalogue")
    parser.add_argument("--old", help="tree of the old code (a git archive of main)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--statements", action="store_true",
        help="also print each side's slowest SQL statements, its commits and its publishing",
    )  # fmt: skip
    parser.add_argument(
        "--explain", metavar="DIR",
        help="write each side's plans of statements over 1 s (auto_explain, with trigger "
        "times) to DIR/<side><round>.txt; the timings then include EXPLAIN's overhead",
    )  # fmt: skip
    args = parser.parse_args()
    sides = [("new", ROOT)] + ([("old", Path(args.old).resolve())] if args.old else [])
    with open(args.file, "rb") as handle:
        rows = sum(1 for _ in handle) - 1
    print(f"# {rows:,} rows; machine: {os.cpu_count()} CPUs; template {args.template}")
    print("| round | code | phase seconds | total s | rows/s | peak RSS MB | applied | load |")
    print("|---:|---|---|---:|---:|---:|---:|---|")
    statements = []
    for n in range(1, args.rounds + 1):
        for label, tree in sides if n % 2 else sides[::-1]:
            probe = {"BULK_STATEMENTS": "1"} if args.statements or args.explain else {}
            if args.explain:
                probe["BULK_EXPLAIN"] = str(Path(args.explain).resolve() / f"{label}{n}.txt")
            r = run_side(tree, args.template, args.file, f"{label}{n}", probe)
            phases = ", ".join(f"{name} {secs:.1f} ({mb} MB)" for name, secs, mb in r["phases"])
            print(f"| {n} | {label} | {phases} | {r['total']:.1f} | "
                  f"{rows / r['total']:,.0f} | {r['rss_mb']} | {r['applied']:,} | "
                  f"{r['load'][0]:.1f} → {r['load'][1]:.1f} |", flush=True)  # fmt: skip
            if probe:
                statements.append((f"{label}{n}", r))
    for side, r in statements:
        print(
            f"# {side}: commits {r['spans']['commit']:.1f} s (deferred FK checks run there), "
            f"after-commit publishing {r['spans']['publish']:.1f} s; slowest statements:"
        )
        for text, (secs, calls) in r["statements"]:
            print(f"#   {secs:7.1f} s  x{calls:<5} {text}")
    print(f"# ru_maxrss of this driver: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")
    print(f"# finished {time.strftime('%H:%M:%S')}")


if __name__ == "__main__":
    main()
