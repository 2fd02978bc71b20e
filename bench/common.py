"""Shared helpers for the benchmark scripts: the bench database and its data.

The benchmarks use their own database (default `stockroom_bench`, override with
BENCH_DATABASE_URL) so they never touch development or test data. `ensure_catalogue`
builds N SKUs x W warehouses set-based in SQL, with the initial stock written to
the ledger too, so `reconcile` and the invariant checks hold on bench data.
"""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stockroom_bench"
)

# Redis: a database of the bench's own (BENCH_REDIS_URL; never the suite's 15 or a
# colleague's), and inside it a key prefix of this run's own, inherited by every
# process the run spawns, so cleaning up deletes this run's keys by prefix
# (`delete_bench_keys`) and never flushes a database someone else may be using.
# REDIS_URL is not consulted: in a developer's shell it names the application's own
# database, which a bench must not fill (setup_django points REDIS_URL here).
BENCH_REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
# The process that chose the prefix owns the run's keys and deletes them when it
# exits (`_delete_own_keys`); processes it starts inherit the prefix and do not.
_OWNS_KEYS = "STOCKROOM_AVAILABILITY_KEY_PREFIX" not in os.environ
os.environ.setdefault("STOCKROOM_AVAILABILITY_KEY_PREFIX", f"bench-{secrets.token_hex(4)}")
BENCH_KEY_PREFIX = os.environ["STOCKROOM_AVAILABILITY_KEY_PREFIX"]
# A bench fills Redis with a million keys and scans them: the application's 0.2 s
# socket timeout (right for a request) would make a long cleanup call fail.
BENCH_REDIS_SOCKET_TIMEOUT = "10"


def bench_redis_env() -> dict[str, str]:
    """The Redis settings a bench gives the processes it starts (gunicorn, workers)."""
    return {
        "REDIS_URL": BENCH_REDIS,
        "STOCKROOM_AVAILABILITY_KEY_PREFIX": BENCH_KEY_PREFIX,
        "REDIS_SOCKET_TIMEOUT": BENCH_REDIS_SOCKET_TIMEOUT,
        "REDIS_CONNECT_TIMEOUT": "2",
    }


def delete_bench_keys(prefix: str = BENCH_KEY_PREFIX) -> int:
    """Delete this run's keys (SCAN + UNLINK in batches) from the bench Redis database."""
    import redis

    client = redis.Redis.from_url(BENCH_REDIS, socket_timeout=30)
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            deleted += client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += client.unlink(*batch)
    client.close()
    return deleted


def _delete_own_keys() -> None:
    """At exit of the process that chose the run's key prefix: delete the run's keys
    (read-model entries, order memory, gate state) however the bench ended."""
    try:
        delete_bench_keys()
    except Exception as exc:  # Redis gone: nothing to leave behind there
        print(f"bench: could not delete keys {BENCH_KEY_PREFIX}:* ({exc})", file=sys.stderr)


_CLEANUP_REGISTERED = False


def setup_django(database_url: str = BENCH_DB) -> None:
    """Configure Django for the bench database (production-like: no DEBUG) and the
    bench's own Redis database and key prefix, whatever REDIS_URL the shell had."""
    global _CLEANUP_REGISTERED
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventory_site.settings.base")
    os.environ.setdefault("DJANGO_DEBUG", "false")
    os.environ.update(bench_redis_env())
    if _OWNS_KEYS and not _CLEANUP_REGISTERED:
        import atexit

        atexit.register(_delete_own_keys)
        _CLEANUP_REGISTERED = True
    os.environ.setdefault("DB_STATEMENT_TIMEOUT_MS", "0")  # bulk set-up statements run long
    import django

    django.setup()


def psql_url(url: str = BENCH_DB) -> str:
    return url


def create_database(url: str = BENCH_DB) -> None:
    name = url.rsplit("/", 1)[1]
    subprocess.run(
        ["createdb", "-h", "127.0.0.1", "-U", "postgres", name],
        check=False,
        capture_output=True,
    )


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def ensure_catalogue(skus: int, warehouses: int, on_hand: int = 1_000_000) -> None:
    """N products BENCH-000000.. in W warehouses BW01.., each row with `on_hand`.

    Idempotent: does nothing if the catalogue is already that size.
    """
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM inventory_product WHERE sku LIKE 'BENCH-%%'")
        have = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM warehouses_warehouse WHERE code LIKE 'BW%%'")
        have_wh = cursor.fetchone()[0]
        if have == skus and have_wh == warehouses:
            return
        if have or have_wh:
            raise SystemExit(
                f"bench database holds {have} SKUs x {have_wh} warehouses; "
                f"drop it (dropdb stockroom_bench) to build {skus} x {warehouses}"
            )
        started = time.perf_counter()
        # Foreign keys checked once, set-based, when restored (as seed_demo does on
        # an initial load): a deferred check per ledger row costs minutes here.
        from inventory.demo import drop_stock_foreign_keys, restore_stock_foreign_keys

        dropped = drop_stock_foreign_keys()
        cursor.execute(
            """
            INSERT INTO warehouses_warehouse
                (id, code, name, address, latitude, longitude, capacity, is_active,
                 created_at, updated_at)
            SELECT gen_random_uuid(), 'BW' || lpad(g::text, 2, '0'), 'Bench ' || g, '',
                   47 + g * 0.7, 6 + g * 0.9, 10000000, true, now(), now()
            FROM generate_series(1, %s) g
            """,
            [warehouses],
        )
        cursor.execute(
            """
            INSERT INTO inventory_product
                (id, sku, name, category, stock_policy, backorder_limit, created_at, updated_at)
            SELECT gen_random_uuid(), 'BENCH-' || lpad(g::text, 7, '0'), 'Bench product ' || g,
                   'bench', 'normal', 0, now(), now()
            FROM generate_series(0, %s - 1) g
            """,
            [skus],
        )
        cursor.execute(
            """
            INSERT INTO inventory_inventory
                (id, product_id, warehouse_id, on_hand, reserved, backorder_allowance,
                 reorder_threshold, reorder_quantity, version, updated_at)
            SELECT gen_random_uuid(), p.id, w.id, %s, 0, 0, 0, 0, 1, now()
            FROM inventory_product p CROSS JOIN warehouses_warehouse w
            WHERE p.sku LIKE 'BENCH-%%' AND w.code LIKE 'BW%%'
            """,
            [on_hand],
        )
        cursor.execute(
            """
            INSERT INTO inventory_inventorytransaction
                (id, product_id, warehouse_id, type, on_hand_delta, reserved_delta,
                 on_hand_after, reserved_after, reference_type, reference_id, reason,
                 created_at, created_by, request_id)
            SELECT stockroom_uuid7(), i.product_id, i.warehouse_id, 'RECEIVE', i.on_hand, 0,
                   i.on_hand, 0, 'import', 'bench-setup', 'benchmark data', now(),
                   'system:bench', ''
            FROM inventory_inventory i
            """
        )
        restore_stock_foreign_keys(dropped)
        print(
            f"# built {skus:,} SKUs x {warehouses} warehouses in "
            f"{time.perf_counter() - started:.1f}s",
            flush=True,
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    index = min(len(values) - 1, max(0, round(pct / 100 * (len(values) - 1))))
    return values[index]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def db_name(url: str) -> str:
    """The database name of a URL (a name stays as it is)."""
    return url.rsplit("/", 1)[1] if "://" in url else url


def pgbench_orders(
    db: str,
    name: str,
    script: str,
    duration: int,
    clients: int,
    orders_per_call: int = 1,
    env: dict | None = None,
) -> float:
    """Orders/s of one pgbench run of `script` (prepared, `clients` connections,
    2 threads, `duration` seconds) on database `db` (a name or a URL): its tps
    times the orders each call makes. The runner the before/after benches share."""
    import re
    import tempfile

    database = db_name(db)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "script.sql"
        path.write_text(script)
        cmd = [
            "pgbench", "-n", "-h", "127.0.0.1", "-U", "postgres", "-c", str(clients), "-j", "2",
            "-T", str(duration), "-M", "prepared", "-f", str(path), database,
        ]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, env=env)
        if out.returncode != 0:
            raise SystemExit(f"pgbench failed for {name} on {database}: {out.stderr[-2000:]}")
        tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))
    return tps * orders_per_call


def run_child_in_tree(script: Path, tree: Path, *args: object) -> dict:
    """Run `script --child ARGS` with `tree` (this checkout, or a `git archive` of an
    older commit) as its working directory and import path; its last stdout line is
    the JSON it reports. The before/after CPU benches measure each tree this way."""
    import json

    out = subprocess.run(
        [sys.executable, str(script), "--child", *map(str, args)],
        cwd=tree, env=dict(os.environ, PYTHONPATH=str(tree)), capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"{tree}: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
