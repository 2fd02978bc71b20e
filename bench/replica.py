"""Availability reads from a PostgreSQL streaming replica, through the database router.

    .venv/bin/python bench/replica.py [--duration 5]

Run as root on the development machine (it uses the local PostgreSQL 15 binaries):

1. lets the primary accept replication connections from 127.0.0.1 (adds one
   `host replication all 127.0.0.1/32 trust` line to pg_hba.conf if missing);
2. clones the primary with `pg_basebackup -R` into /var/tmp/stockroom-replica and
   starts it as a hot standby on port 5433;
3. points Django at both (DATABASE_URL = primary bench database,
   DATABASE_REPLICA_URL = the replica) and shows that availability reads inside
   `replica_reads()` are served by the replica while stock changes go to the primary;
4. measures replication lag (commit on the primary until the replica returns the
   new balance) and availability reads/s from each server;
5. stops the replica and removes its data directory, even on failure.

Needs the bench catalogue (run bench/reservations.py once first).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import BENCH_DB, median, percentile

from ops.pgcluster import Server, clone_standby

DATA = Path("/var/tmp/stockroom-replica")
PORT = 5433
HBA_LINE = "host replication all 127.0.0.1/32 trust"


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


def allow_replication() -> None:
    hba = Path(
        run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SHOW hba_file"]).stdout.strip()
    )
    if HBA_LINE not in hba.read_text():
        with hba.open("a") as f:
            f.write(f"\n# stockroom bench/replica.py: streaming replica on loopback\n{HBA_LINE}\n")
        run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SELECT pg_reload_conf()"])


def start_replica() -> None:
    stop_replica()
    clone_standby(
        5432, DATA, PORT, extra="shared_buffers = 128MB\n"
    )  # ops/pgcluster.py: the builder the tests use too


def stop_replica() -> None:
    Server(DATA, PORT).stop()
    shutil.rmtree(DATA, ignore_errors=True)


def measure(duration: float) -> None:
    os.environ["DATABASE_URL"] = BENCH_DB
    os.environ["DATABASE_REPLICA_URL"] = BENCH_DB.replace(":5432/", f":{PORT}/")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventory_site.settings.base")
    os.environ.setdefault("DJANGO_DEBUG", "false")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import django

    django.setup()
    from django.db import connections

    from inventory import availability_cache, services
    from inventory_site.db_router import replica_reads

    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM inventory_product WHERE sku LIKE 'BENCH-%%'")
        skus = cursor.fetchone()[0]
    if not skus:
        raise SystemExit("no bench catalogue: run bench/reservations.py first")
    with replica_reads(), connections["replica"].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery(), current_setting('port')")
        in_recovery, port = cursor.fetchone()
    print(f"replica answers on port {port}, in recovery (standby): {in_recovery}")

    # Lag: receive on the primary, poll the replica until it shows the new balance.
    lags = []
    for _ in range(30):
        sku = f"BENCH-{random.randrange(skus):07d}"
        result = services.stock_receive(sku=sku, warehouse="BW01", quantity=1, actor="system:bench")
        expected = result.transactions[0].on_hand_after
        committed = time.perf_counter()
        while True:
            with connections["replica"].cursor() as cursor:
                cursor.execute(
                    "SELECT i.on_hand FROM inventory_inventory i JOIN inventory_product p "
                    "ON p.id = i.product_id WHERE p.sku = %s",
                    [sku],
                )
                if cursor.fetchone()[0] == expected:
                    break
            time.sleep(0.0005)
        lags.append((time.perf_counter() - committed) * 1000)
    print(f"replication lag, commit to visible on the replica: p50 {median(lags):.2f} ms, "
          f"p99 {percentile(lags, 99):.2f} ms (30 samples)")  # fmt: skip

    for label, alias_context in (("primary", None), ("replica", replica_reads)):
        count, latencies = 0, []
        deadline = time.perf_counter() + duration
        while time.perf_counter() < deadline:
            sku = f"BENCH-{random.randrange(skus):07d}"
            started = time.perf_counter()
            if alias_context is None:
                availability_cache.load_from_database([sku])
            else:
                with alias_context():
                    availability_cache.load_from_database([sku])
            latencies.append((time.perf_counter() - started) * 1000)
            count += 1
        p50, p99 = median(latencies), percentile(latencies, 99)
        print(f"availability reads from the {label}: {count / duration:,.0f}/s in one process, "
              f"p50 {p50:.3f} ms, p99 {p99:.3f} ms")  # fmt: skip
    for alias in ("default", "replica"):
        connections[alias].close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (starts a PostgreSQL cluster as the postgres user)")
    allow_replication()
    try:
        started = time.perf_counter()
        start_replica()
        print(f"replica cloned and started in {time.perf_counter() - started:.1f}s")
        measure(args.duration)
    finally:
        stop_replica()
        print("replica stopped and removed")


if __name__ == "__main__":
    main()
