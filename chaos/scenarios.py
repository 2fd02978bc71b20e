"""Scenarios: a world of colliding SKUs, a workload over gunicorn, one fault, the checker.

Used by `chaos/run.py` (long runs, own database) and `tests/reliability/`
(short runs against pytest's test database). Every fault is undone in a
`finally`, and every process is private to the run (see processes.py).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests
from django.db import connection, connections

from . import processes
from .checker import Report, check
from .workload import World, resolve_unknowns, run_clients

WAREHOUSES = ["CW1", "CW2", "CW3"]


def database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def setup_world(prefix: str, *, skus: int = 4, backorder_skus: int = 2, units: int = 15) -> World:
    """Products, warehouses and seeded stock (on the ledger), all named by `prefix`."""
    from inventory import services
    from inventory.models import Product, StockPolicy
    from inventory.services import Reference
    from warehouses.models import Warehouse

    for code in WAREHOUSES:
        Warehouse.objects.get_or_create(code=code, defaults={"name": f"Chaos {code}"})
    world = World(
        prefix=prefix,
        skus=[f"{prefix}S{i}" for i in range(skus)],
        backorder_skus=[f"{prefix}B{i}" for i in range(backorder_skus)],
        warehouses=list(WAREHOUSES),
    )
    for sku in world.skus:
        Product.objects.create(sku=sku, name=sku)
    for sku in world.backorder_skus:
        Product.objects.create(
            sku=sku, name=sku, stock_policy=StockPolicy.BACKORDER, backorder_limit=4
        )
    for sku in world.all_skus:
        for code in WAREHOUSES:
            services.stock_receive(
                sku=sku,
                warehouse=code,
                quantity=units if sku in world.skus else 2,
                actor="system:chaos",
                reference=Reference("import", f"{prefix}seed-{sku}-{code}"),
            )
    return world


# --- faults: each a loop in a thread, undone in its finally -----------------


@dataclass
class FaultContext:
    redis: processes.PrivateRedis
    server: processes.Gunicorn
    rng: random.Random
    stop: threading.Event
    counts: dict
    keep_pids: set[int]
    outages: list[tuple[float, float]] = field(default_factory=list)  # Redis down, monotonic

    def reads_during_outages(self, run) -> int:
        return sum(1 for at, _ in run.read_log if any(a <= at < b for a, b in self.outages))


def fault_none(ctx: FaultContext) -> None:
    ctx.stop.wait()


def fault_redis(ctx: FaultContext, period: float = 1.5, down: float = 1.0) -> None:
    """Stop Redis for `down` seconds, start it again, flush it; repeat."""
    try:
        while not ctx.stop.wait(period):
            ctx.redis.stop()
            ctx.counts["redis_stopped"] = ctx.counts.get("redis_stopped", 0) + 1
            went_down = time.monotonic()
            ctx.stop.wait(down)
            ctx.outages.append((went_down, time.monotonic()))
            ctx.redis.start()
            ctx.redis.flush()
            ctx.counts["redis_flushed"] = ctx.counts.get("redis_flushed", 0) + 1
            ctx.stop.wait(period / 2)
            ctx.redis.flush()
            ctx.counts["redis_flushed"] += 1
    finally:
        if not ctx.redis.up():
            ctx.redis.start()


def fault_pg_terminate(ctx: FaultContext, period: float = 0.7) -> None:
    """pg_terminate_backend on the app's connections to this run's database only."""
    try:
        while not ctx.stop.wait(period * (0.5 + ctx.rng.random())):
            with connection.cursor() as cursor:
                cursor.execute(
                    """
                    SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                    WHERE datname = current_database() AND pid <> pg_backend_pid()
                      AND NOT (pid = ANY(%s))
                    """,
                    [sorted(ctx.keep_pids)],
                )
                killed = cursor.fetchone()[0]
            ctx.counts["backends_terminated"] = ctx.counts.get("backends_terminated", 0) + killed
    finally:
        connections.close_all()


def fault_kill_worker(ctx: FaultContext, period: float = 1.5) -> None:
    """SIGKILL one gunicorn worker at a time (the master starts a new one)."""
    while not ctx.stop.wait(period * (0.5 + ctx.rng.random())):
        if ctx.server.kill_worker(ctx.rng) is not None:
            ctx.counts["workers_killed"] = ctx.counts.get("workers_killed", 0) + 1


FAULTS: dict[str, Callable[[FaultContext], None]] = {
    "baseline": fault_none,
    "redis": fault_redis,
    "pg_terminate": fault_pg_terminate,
    "kill_worker": fault_kill_worker,
}


@contextmanager
def stack(db_url: str, *, workers: int = 3, threads: int = 4, **env):
    """A private Redis and gunicorn on it, both stopped in the finally."""
    redis = processes.PrivateRedis()
    server = None
    try:
        redis.start()
        server = processes.Gunicorn(
            processes.app_env(db_url, redis.url, **env), workers=workers, threads=threads
        )
        server.start()
        yield redis, server
    finally:
        if server is not None:
            server.stop()
        redis.close()


@contextmanager
def _reuse(running):
    yield running


def api_key(prefix: str) -> tuple[object, str]:
    from api.services import api_client_create

    client, key = api_client_create(name=f"chaos-{prefix}", scopes=["storefront", "operations"])
    return client.pk, key


def run_scenario(
    name: str,
    *,
    seed: int,
    clients: int,
    ops_per_client: int,
    seconds: float,
    prefix: str | None = None,
    db_url: str | None = None,
    workers: int = 3,
    running: tuple[processes.PrivateRedis, processes.Gunicorn] | None = None,
) -> Report:
    """One scenario; on its own Redis and gunicorn, or on `running` ones (left running)."""
    prefix = prefix or f"{name[:2]}{seed}x"
    db_url = db_url or database_url()
    world = setup_world(prefix)
    client_pk, key = api_key(prefix)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        keep = {cursor.fetchone()[0]}
    started = time.monotonic()
    with _reuse(running) if running else stack(db_url, workers=workers) as (redis, server):
        ctx = FaultContext(redis, server, random.Random(seed), threading.Event(), {}, keep)
        fault = threading.Thread(target=FAULTS[name], args=(ctx,), name=f"fault-{name}")
        fault.start()
        try:
            run = run_clients(
                base_url=server.url,
                key=key,
                world=world,
                seed=seed,
                clients=clients,
                ops_per_client=ops_per_client,
                seconds=seconds,
            )
        finally:
            ctx.stop.set()
            fault.join(timeout=30)
        time.sleep(1.0)  # let requests still in flight on the server finish
        resolve_unknowns(base_url=server.url, key=key, run=run)
        report = check(
            scenario=name,
            seed=seed,
            world=world,
            run=run,
            client_pk=client_pk,
            base_url=server.url,
            key=key,
        )
        report.faults = dict(ctx.counts)
        if ctx.outages:
            report.faults["reads_while_redis_down"] = ctx.reads_during_outages(run)
    report.seconds = time.monotonic() - started
    return report


# --- the hot row: one SKU locked from another session ------------------------


@dataclass
class HotRowReport:
    hot_statuses: dict
    hot_retry_after: set
    hot_max_seconds: float
    other_statuses: dict
    other_max_seconds: float
    violations: int


def run_hot_row(*, seed: int, lock_seconds: float = 5.0, db_url: str | None = None) -> HotRowReport:
    """Hold one stock row locked from another session; hit it and other SKUs meanwhile."""
    from collections import Counter

    from .checker import balance_violations

    prefix = f"hr{seed}x"
    db_url = db_url or database_url()
    world = setup_world(prefix, skus=3, backorder_skus=0)
    _, key = api_key(prefix)
    hot = world.skus[0]
    locked, release = threading.Event(), threading.Event()

    def hold():
        from django.db import transaction

        from inventory.models import Inventory

        try:
            with transaction.atomic():
                # Only the stock row itself (of=self), as the services lock it.
                list(
                    Inventory.objects.select_for_update(of=("self",))
                    .filter(product__sku=hot, warehouse__code=WAREHOUSES[0])
                    .values_list("id", flat=True)
                )
                locked.set()
                release.wait(timeout=lock_seconds + 30)
        finally:
            connections.close_all()

    results: dict[str, list] = {"hot": [], "other": []}
    lock = threading.Lock()

    def client(i: int, sku: str, bucket: str, deadline: float):
        session = requests.Session()
        headers = {"Authorization": f"Token {key}"}
        n = 0
        try:
            while time.monotonic() < deadline and n < 50:
                n += 1
                started = time.monotonic()
                response = session.post(
                    f"{server.url}/api/v1/reservations/",
                    json={
                        "order_id": f"{prefix}{bucket}{i}-{n}",
                        "lines": [{"sku": sku, "warehouse": WAREHOUSES[0], "quantity": 1}],
                    },
                    headers=headers,
                    timeout=15,
                )
                took = time.monotonic() - started
                with lock:
                    results[bucket].append(
                        (response.status_code, response.headers.get("Retry-After"), took)
                    )
                if bucket == "hot":
                    time.sleep(0.05)
        finally:
            session.close()

    with stack(db_url, workers=2, threads=8, DB_LOCK_TIMEOUT_MS="1000") as (_redis, server):
        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert locked.wait(timeout=10), "could not lock the hot row"
            deadline = time.monotonic() + lock_seconds - 1
            threads = [
                threading.Thread(target=client, args=(i, hot, "hot", deadline)) for i in range(3)
            ] + [
                threading.Thread(target=client, args=(i, world.skus[1 + i % 2], "other", deadline))
                for i in range(3)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=lock_seconds + 60)
        finally:
            release.set()
            holder.join(timeout=30)
    violations, _, _ = balance_violations(world)
    hot_results, other_results = results["hot"], results["other"]
    return HotRowReport(
        hot_statuses=dict(Counter(s for s, _, _ in hot_results)),
        hot_retry_after={r for s, r, _ in hot_results if s == 503},
        hot_max_seconds=max((t for _, _, t in hot_results), default=0.0),
        other_statuses=dict(Counter(s for s, _, _ in other_results)),
        other_max_seconds=max((t for _, _, t in other_results), default=0.0),
        violations=violations,
    )


# --- the broker: stopped and started under traffic ---------------------------


@dataclass
class BrokerReport:
    report: Report
    broker_stopped: int
    rows_below_threshold: int
    rows_covered_after_batch: int
    lines_created_by_batch: int
    lines_created_by_second_batch: int
    duplicate_open_lines: int


def _reorder_world(world: World) -> None:
    """Every world row reorders below 40 units (most rows end a run below it),
    from one supplier (pack of 1)."""
    from inventory.models import Inventory, Product
    from purchasing.models import ProductSupplier, Supplier

    supplier, _ = Supplier.objects.get_or_create(
        name=f"Chaos supplier {world.prefix}",
        defaults={"lead_time_min_days": 3, "lead_time_max_days": 5},
    )
    for product in Product.objects.filter(sku__in=world.all_skus):
        ProductSupplier.objects.get_or_create(
            product=product, supplier=supplier, defaults={"is_preferred": True}
        )
    Inventory.objects.filter(product__sku__in=world.all_skus).update(
        reorder_threshold=40, reorder_quantity=20
    )


def run_broker(
    *,
    seed: int,
    clients: int,
    ops_per_client: int,
    seconds: float,
    period: float = 1.5,
    down: float = 1.0,
    db_url: str | None = None,
) -> BrokerReport:
    """Stock operations while the Celery broker (a private Redis) goes away and
    comes back; no worker consumes, so reorder work is done by the daily batch.

    Checks, besides every invariant: stock operations kept succeeding, the batch
    afterwards orders every row below its threshold exactly once (a second batch
    adds nothing), and no row ever has two open reorder lines.
    """
    from django.db.models import Count, F

    from inventory.models import Inventory
    from purchasing.models import PurchaseOrderLine
    from purchasing.services import reorder_batch

    prefix = f"br{seed}x"
    db_url = db_url or database_url()
    world = setup_world(prefix)
    _reorder_world(world)
    client_pk, key = api_key(prefix)
    broker = processes.PrivateRedis()
    counts = {"broker_stopped": 0}
    stop = threading.Event()

    def fault() -> None:
        try:
            while not stop.wait(period):
                broker.stop()
                counts["broker_stopped"] += 1
                stop.wait(down)
                broker.start()
        finally:
            if not broker.up():
                broker.start()

    started = time.monotonic()
    try:
        broker.start()
        env = {"CELERY_BROKER_URL": broker.url, "CELERY_TASK_ALWAYS_EAGER": "false"}
        with stack(db_url, workers=3, **env) as (_redis, server):
            thread = threading.Thread(target=fault, name="fault-broker")
            thread.start()
            try:
                run = run_clients(
                    base_url=server.url,
                    key=key,
                    world=world,
                    seed=seed,
                    clients=clients,
                    ops_per_client=ops_per_client,
                    seconds=seconds,
                )
            finally:
                stop.set()
                thread.join(timeout=30)
            time.sleep(1.0)
            resolve_unknowns(base_url=server.url, key=key, run=run)
            report = check(
                scenario="broker",
                seed=seed,
                world=world,
                run=run,
                client_pk=client_pk,
                base_url=server.url,
                key=key,
            )
    finally:
        broker.close()
    rows = Inventory.objects.filter(product__sku__in=world.all_skus)
    below = rows.filter(on_hand__lt=F("reorder_threshold"))
    below_keys = set(below.values_list("product_id", "warehouse_id"))
    first = reorder_batch()
    second = reorder_batch()
    open_lines = PurchaseOrderLine.objects.filter(is_open=True, product__sku__in=world.all_skus)
    covered = set(open_lines.values_list("product_id", "warehouse_id"))
    duplicates = (
        open_lines.values("product_id", "warehouse_id").annotate(n=Count("id")).filter(n__gt=1)
    )
    report.faults = dict(counts)
    report.seconds = time.monotonic() - started
    return BrokerReport(
        report=report,
        broker_stopped=counts["broker_stopped"],
        rows_below_threshold=len(below_keys),
        rows_covered_after_batch=len(below_keys & covered),
        lines_created_by_batch=first.lines_created,
        lines_created_by_second_batch=second.lines_created,
        duplicate_open_lines=duplicates.count(),
    )
