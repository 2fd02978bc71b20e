"""Where one call of the reserve function spends its time, statement by statement.

    .venv/bin/python bench/reserve_fn_statements.py [--db stockroom_bench_x] [--calls 300]
        [--lines 1] [--general]

On a bench database (bench/reservations.py or reserve_fn_before_after.py builds
one): one session loads `auto_explain` for itself only (LOAD + SET, never ALTER
SYSTEM) with `log_nested_statements` and `log_level = notice`, so every statement
the call runs (the function's own, the triggers', the foreign-key checks at
commit) comes back to this client with its duration. Each call is its own
transaction (autocommit), on random SKUs. After a warm-up (plans cached, as in
a long-lived connection), prints per statement (first line of its text, the
statement that ran it) the mean microseconds per call and the share of the
call's wall time measured by the client. `--general` passes an empty
composition map, which makes the function take its general path (what it did
for every order before migration 0023).

Durations are the server's (`duration:` of each statement, nested ones included
in their caller's); the first line of the table is the whole call.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DB

DURATION = re.compile(r"duration: ([\d.]+) ms")
QUERY_TEXT = re.compile(r"Query Text: (.*)")


def label(message: str) -> str:
    text = QUERY_TEXT.search(message)
    first = (text.group(1) if text else message.splitlines()[0]).strip()
    return re.sub(r"\s+", " ", first)[:90]


def main() -> None:
    import psycopg

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default=BENCH_DB.rsplit("/", 1)[1])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--lines", type=int, default=1)
    parser.add_argument("--skus", type=int, default=20_000)
    parser.add_argument("--general", action="store_true")
    args = parser.parse_args()

    conn = psycopg.connect(f"host=127.0.0.1 user=postgres dbname={args.db}", autocommit=True)
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    rng = random.Random(7)
    tag = f"{time.time_ns():x}"
    sql = (
        "SELECT stockroom_reserve_orders(%s, %s, %s::timestamptz[], %s, %s, %s, %s, %s, %s,"
        " now(), %s::text[], %s::jsonb)"
    )

    def call(n: int) -> None:
        skus = [f"BENCH-{rng.randrange(args.skus):07d}" for _ in range(args.lines)]
        skus = sorted(set(skus))
        conn.execute(
            sql,
            [
                [f"stmts-{tag}-{n}"], ["fp"], [None], [len(skus)], skus, ["BW01"] * len(skus),
                [1] * len(skus), "system:bench", "", [None] * len(skus),
                "{}" if args.general else None,
            ],
        )  # fmt: skip

    for n in range(args.warmup):
        call(n)
    conn.execute("LOAD 'auto_explain'")
    conn.execute("SET auto_explain.log_min_duration = 0")
    conn.execute("SET auto_explain.log_nested_statements = on")
    conn.execute("SET auto_explain.log_level = notice")
    per_statement: dict[str, list[float]] = defaultdict(list)
    walls = []
    for n in range(args.warmup, args.warmup + args.calls):
        notices.clear()
        started = time.perf_counter()
        call(n)
        walls.append((time.perf_counter() - started) * 1e6)
        for message in notices:
            found = DURATION.search(message)
            if found:
                per_statement[label(message)].append(float(found.group(1)) * 1000)
    conn.execute("SET auto_explain.log_min_duration = -1")
    wall = statistics.mean(walls)
    print(f"# {args.db}: {args.calls} calls, {args.lines} line(s), "
          f"{'general' if args.general else 'default'} path; client wall {wall:.0f} µs "
          f"per call (median {statistics.median(walls):.0f})")  # fmt: skip
    print("| statement (first line) | runs per call | µs per call | share of wall |")
    print("|---|---:|---:|---:|")
    rows = sorted(per_statement.items(), key=lambda kv: -sum(kv[1]))
    for text, durations in rows:
        per_call = sum(durations) / args.calls
        print(f"| `{text}` | {len(durations) / args.calls:.2f} | {per_call:.0f} | "
              f"{per_call / wall:.0%} |")  # fmt: skip


if __name__ == "__main__":
    main()
