"""Server CPU per reservation, database against database: a measure a loaded machine cannot skew.

    .venv/bin/python bench/reserve_fn_cpu.py DB [DB ...] [--calls 400] [--rounds 5]
        [--shapes "project function, 1 line;one CTE statement"] [--async-commit]
        (shapes: bench/reservations.py's, and "project function, 1 line refused (sold out)")

Throughput on a shared 2-core machine measures everyone's load as much as the
code. This measures what one call costs the server instead: one session per
database (autocommit, one call per transaction, as pgbench's), and the CPU time
(/proc/<pid>/schedstat, else utime + stime) its PostgreSQL backend spent over
`--calls` calls, read before and after. Others' load makes a call wait longer, not use
more CPU. The databases are the bench clones of bench/reserve_fn_bisect.py and
bench/reserve_fn_before_after.py (the same catalogue, one piece different);
rounds alternate the databases, and the table gives the median µs of backend
CPU per call and its ratio to the first database. The statements are
bench/reservations.py's pgbench scripts with their variables bound as
parameters (psycopg prepares them after five runs, like pgbench -M prepared).
Must run on the database host as a user who may read the backends' /proc.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reservations import pgbench_scripts

TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


def backend_cpu_us(pid: int) -> float:
    # time on CPU in ns (schedstat), finer than utime + stime's clock ticks
    schedstat = Path(f"/proc/{pid}/schedstat")
    if schedstat.exists():
        return int(schedstat.read_text().split()[0]) / 1000
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_US  # utime, stime


def statement(script: str) -> str:
    body = "\n".join(line for line in script.splitlines() if not line.startswith("\\"))
    return re.sub(r":(client_id|n|r)\b", r"%(\1)s", body)


def main() -> None:
    import psycopg

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("databases", nargs="+")
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skus", type=int, default=20_000)
    parser.add_argument("--shapes", default="project function, 1 line;one CTE statement")
    parser.add_argument(
        "--async-commit", action="store_true",
        help="SET synchronous_commit = off in the sessions: the commit's WAL flush (kernel "
        "CPU, the same for every database, and noisy under load) leaves the figure",
    )  # fmt: skip
    args = parser.parse_args()

    scripts = pgbench_scripts(args.skus)
    # the refused line of reserve_fn_before_after.py (the bench builds its sold-out row)
    from reserve_fn_before_after import SOLD_OUT, sold_out_script

    scripts[SOLD_OUT] = sold_out_script()
    shapes = args.shapes.split(";")
    sql = {shape: statement(scripts[shape]) for shape in shapes}
    conns = {}
    for db in args.databases:
        conn = psycopg.connect(f"host=127.0.0.1 user=postgres dbname={db}", autocommit=True)
        if args.async_commit:
            conn.execute("SET synchronous_commit = off")
        conns[db] = (conn, conn.execute("SELECT pg_backend_pid()").fetchone()[0])
    rng = random.Random()  # order ids must be new on every run: an existing one is a retry

    def run(db: str, shape: str, calls: int) -> float:
        conn, pid = conns[db]
        started = backend_cpu_us(pid)
        for _ in range(calls):
            params = {"client_id": 0, "n": rng.randrange(args.skus - 4), "r": rng.getrandbits(60)}
            conn.execute(sql[shape], params)
        return (backend_cpu_us(pid) - started) / calls

    for db in args.databases:  # warm-up: plans cached, catalogue caches filled
        for shape in shapes:
            run(db, shape, 30)
    per_call: dict[tuple[str, str], list[float]] = {}
    load_before = os.getloadavg()
    for n in range(args.rounds):
        order = args.databases if n % 2 == 0 else list(reversed(args.databases))
        for shape in shapes:
            for db in order:
                per_call.setdefault((db, shape), []).append(run(db, shape, args.calls))
        print(f"# round {n + 1}/{args.rounds}, load {os.getloadavg()[0]:.1f}", flush=True)
    print()
    commit = "synchronous_commit off" if args.async_commit else "synchronous commit"
    print(f"{args.rounds} rounds x {args.calls} calls per database and shape, one session each "
          f"({commit}); "
          f"load average (1 min) before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    print()
    # A round runs the databases back to back per shape, so its ratios share the
    # moment's load: the median of the per-round ratios is the steadier figure.
    print("| database | shape | backend CPU µs per call (median) | min-max | vs first "
          "| vs first, median of per-round ratios |")  # fmt: skip
    print("|---|---|---:|---|---:|---:|")
    for shape in shapes:
        firsts = per_call[(args.databases[0], shape)]
        first = statistics.median(firsts)
        for db in args.databases:
            values = per_call[(db, shape)]
            cpu = statistics.median(values)
            paired = statistics.median(v / f for v, f in zip(values, firsts, strict=True))
            print(f"| {db} | {shape} | {cpu:,.0f} | {min(values):,.0f}-{max(values):,.0f} | "
                  f"{cpu / first:.2f} | {paired:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
