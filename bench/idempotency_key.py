"""What taking the idempotency key first costs a keyed stock operation, in one run.

    .venv/bin/python bench/idempotency_key.py [--skus 1000] [--ops 400] [--rounds 10]

`run_idempotent` now locks the key (`pg_advisory_xact_lock`) and looks for a
committed result inside the operation's transaction, before the body; before, it
looked outside the transaction and met a concurrent duplicate only at the key's
unique index, after the body. This runs `stock_receive` with a fresh
`Idempotency-Key` per call (the common case: a first request, not a replay), one
process, one connection, on random SKUs of the bench catalogue
(BENCH_DATABASE_URL), in rounds alternating "before" (a copy of the previous
`run_idempotent`, patched into the receive) and "after" (the current one), and
prints per kind the median over its rounds of calls/s by the wall clock and of
calls per CPU second (this process plus its PostgreSQL backend, from /proc), the
ratios after/before, and the load average at start and end.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DB, create_database, ensure_catalogue, median, migrate, setup_django


def _old_run_idempotent():
    """`run_idempotent` as it was before the key came first (commit ac023ce)."""
    from django.db import IntegrityError

    from inventory.models import AppliedOperation
    from inventory.services.idempotency import fingerprint, replay
    from inventory.services.rows import in_transaction

    def run_idempotent(key, operation, payload, body):
        if key is None:
            return in_transaction(body)
        request = fingerprint({"operation": operation, **payload})
        replayed = replay(key, request)
        if replayed is not None:
            return replayed

        def body_and_key():
            result = body()
            AppliedOperation.objects.create(
                key=key,
                operation=operation,
                fingerprint=request,
                result={
                    "transactions": [str(t.id) for t in result.transactions],
                    "reference": None,
                },
            )
            return result

        try:
            return in_transaction(body_and_key)
        except IntegrityError:
            replayed = replay(key, request)
            if replayed is not None:
                return replayed
            raise

    return run_idempotent


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process on this machine, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skus", type=int, default=1000)
    parser.add_argument("--ops", type=int, default=400, help="calls per round")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of each kind")
    args = parser.parse_args()

    create_database(BENCH_DB)
    setup_django(BENCH_DB)
    migrate()
    ensure_catalogue(args.skus, 1)

    from django.db import connection

    from inventory.services import idempotency, stock

    new = idempotency.run_idempotent
    old = _old_run_idempotent()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    skus = [f"BENCH-{n:07d}" for n in range(args.skus)]
    run = uuid.uuid4().hex[:8]
    load_start = os.getloadavg()

    def one_round(kind: str, n: int) -> tuple[float, float]:
        stock.run_idempotent = old if kind == "before" else new
        wall, cpu = time.perf_counter(), _cpu_seconds(os.getpid()) + _cpu_seconds(backend)
        for i in range(args.ops):
            stock.stock_receive(
                sku=random.choice(skus), warehouse="BW01", quantity=1, actor="system:bench",
                idempotency_key=f"bench-key-{run}-{kind}-{n}-{i}",
            )  # fmt: skip
        wall = time.perf_counter() - wall
        cpu = _cpu_seconds(os.getpid()) + _cpu_seconds(backend) - cpu
        return args.ops / wall, args.ops / cpu

    one_round("after", -1)  # warm up (imports, plans, caches)
    results: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    for n in range(args.rounds):
        # A B B A: drift in the machine's load falls on both kinds alike.
        for kind in ("before", "after") if n % 2 == 0 else ("after", "before"):
            results[kind].append(one_round(kind, n))
    stock.run_idempotent = new
    load_end = os.getloadavg()

    rows = {
        kind: (median([r[0] for r in rs]), median([r[1] for r in rs]))
        for kind, rs in results.items()
    }
    print(f"load average at start {load_start}, at end {load_end}")
    print("| kind | calls/s (wall, median) | calls per CPU s (median) |")
    print("|---|---|---|")
    for kind, (wall, cpu) in rows.items():
        print(f"| {kind} | {wall:,.0f} | {cpu:,.0f} |")
    ratio_wall = rows["after"][0] / rows["before"][0]
    ratio_cpu = rows["after"][1] / rows["before"][1]
    print(f"after/before: wall {ratio_wall:.3f}, CPU {ratio_cpu:.3f}")


if __name__ == "__main__":
    main()
