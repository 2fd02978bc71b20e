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
from .workload import Schedule, World, fault_points, resolve_unknowns, run_clients

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


# --- faults: each a thread, scheduled by operation number, undone in its finally --


@dataclass
class FaultContext:
    redis: processes.PrivateRedis
    server: processes.Gunicorn
    rng: random.Random
    schedule: Schedule
    counts: dict
    keep_pids: set[int]
    every: int  # client operations between faults
    down: int  # client operations a Redis outage lasts
    outages: list[tuple[int, int]] = field(default_factory=list)  # op numbers [from, to)
    error: BaseException | None = None

    def points(self) -> list[int]:
        return fault_points(self.schedule.budget, self.every)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def reads_during_outages(self, run) -> tuple[int, int]:
        """(reads sent while Redis was down, outages with at least one read)."""
        per_outage = [
            sum(1 for number, _ in run.read_log if a <= number < b) for a, b in self.outages
        ]
        return sum(per_outage), sum(1 for n in per_outage if n)


# Defaults: client operations between faults, and how long Redis stays down.
DEFAULT_EVERY = {"redis": 150, "pg_terminate": 40, "kill_worker": 100, "broker": 100}
DEFAULT_DOWN = 50


def fault_none(ctx: FaultContext) -> None:
    pass


def fault_redis(ctx: FaultContext) -> None:
    """At every `every`-th operation, kill Redis; the next `down` operations all
    start after it went down and end before it comes back (the workload is held
    at the end of the outage until they have); then start it, flush it, and
    flush it again `down // 2` operations later."""
    try:
        for at in ctx.points():
            if not ctx.schedule.hold_at(at):
                return
            try:
                ctx.redis.stop()
                ctx.add("redis_stopped")
            finally:
                ctx.schedule.release()
            back = at + ctx.down
            held = ctx.schedule.hold_at(back)
            try:
                if held:
                    ctx.schedule.wait_completed(back)  # none of the outage's ops in flight
                ctx.outages.append((at, back))
                ctx.redis.start()
                ctx.redis.flush()
                ctx.add("redis_flushed")
            finally:
                ctx.schedule.release()
            if not held or not ctx.schedule.wait_started(back + ctx.down // 2):
                return
            ctx.redis.flush()
            ctx.add("redis_flushed")
    finally:
        if not ctx.redis.up():
            ctx.redis.start()


def fault_pg_terminate(ctx: FaultContext) -> None:
    """At every `every`-th operation, pg_terminate_backend on the app's connections
    to this run's database only."""
    try:
        for at in ctx.points():
            if not ctx.schedule.hold_at(at):
                return
            try:
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
                ctx.add("terminations")
                ctx.add("backends_terminated", killed)
            finally:
                ctx.schedule.release()
    finally:
        connections.close_all()


def fault_kill_worker(ctx: FaultContext) -> None:
    """At every `every`-th operation, SIGKILL one gunicorn worker (the master
    starts a new one); the other clients' requests are in flight meanwhile."""
    for at in ctx.points():
        if not ctx.schedule.hold_at(at):
            return
        try:
            if ctx.server.kill_worker(ctx.rng) is not None:
                ctx.add("workers_killed")
        finally:
            ctx.schedule.release()


FAULTS: dict[str, Callable[[FaultContext], None]] = {
    "baseline": fault_none,
    "redis": fault_redis,
    "pg_terminate": fault_pg_terminate,
    "kill_worker": fault_kill_worker,
}


def _fault_thread(target: Callable[[FaultContext], None], ctx: FaultContext, name: str):
    def body():
        try:
            target(ctx)
        except BaseException as exc:  # re-raised by the scenario after the run
            ctx.error = exc
            ctx.schedule.release()

    return threading.Thread(target=body, name=f"fault-{name}", daemon=True)


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
    every: int | None = None,
    down: int | None = None,
) -> Report:
    """One scenario; on its own Redis and gunicorn, or on `running` ones (left running).

    The clients run `clients` * `ops_per_client` operations; the fault fires at
    every `every`-th of them (Redis stays down for `down`). `seconds` is only a
    safety cap: a run that has not spent its budget by then raises."""
    prefix = prefix or f"{name[:2]}{seed}x"
    db_url = db_url or database_url()
    world = setup_world(prefix)
    client_pk, key = api_key(prefix)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        keep = {cursor.fetchone()[0]}
    started = time.monotonic()
    with _reuse(running) if running else stack(db_url, workers=workers) as (redis, server):
        schedule = Schedule(clients * ops_per_client)
        ctx = FaultContext(
            redis,
            server,
            random.Random(seed),
            schedule,
            {},
            keep,
            every=every or DEFAULT_EVERY.get(name, 0),
            down=down or DEFAULT_DOWN,
        )
        fault = _fault_thread(FAULTS[name], ctx, name)
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
                schedule=schedule,
            )
        finally:
            schedule.close()
            fault.join(timeout=60)
        if ctx.error is not None:
            raise RuntimeError(f"the {name} fault failed: {ctx.error!r}") from ctx.error
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
        if name == "redis":
            reads, outages_read = ctx.reads_during_outages(run)
            report.faults["reads_while_redis_down"] = reads
            report.faults["outages_with_reads"] = outages_read
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


def run_hot_row(
    *,
    seed: int,
    hot_requests: int = 3,
    other_requests: int = 50,
    cap_seconds: float = 300.0,
    db_url: str | None = None,
) -> HotRowReport:
    """Hold one stock row locked from another session while 3 clients send
    `hot_requests` reservations each for it and 3 others `other_requests` each
    for other SKUs; the lock is released when they are done (by count, not by
    the clock; `cap_seconds` is only a safety cap)."""
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
                release.wait(timeout=cap_seconds)
        finally:
            connections.close_all()

    results: dict[str, list] = {"hot": [], "other": []}
    lock = threading.Lock()

    def client(i: int, sku: str, bucket: str, count: int):
        session = requests.Session()
        headers = {"Authorization": f"Token {key}"}
        n = 0
        try:
            while n < count:
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
            threads = [
                threading.Thread(target=client, args=(i, hot, "hot", hot_requests))
                for i in range(3)
            ] + [
                threading.Thread(
                    target=client,
                    args=(i, world.skus[1 + i % 2], "other", other_requests),
                )
                for i in range(3)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=cap_seconds)
            if any(t.is_alive() for t in threads):
                raise RuntimeError(f"hot_row clients still running after {cap_seconds:.0f} s")
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
    every: int | None = None,
    down: int | None = None,
    db_url: str | None = None,
) -> BrokerReport:
    """Stock operations while the Celery broker (a private Redis) goes away and
    comes back; no worker consumes, so reorder work is done by the daily batch.
    The broker is killed at every `every`-th client operation and started again
    when `down` more have started (`seconds` is only a safety cap).

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
    schedule = Schedule(clients * ops_per_client)
    every = every or DEFAULT_EVERY["broker"]
    down = down or DEFAULT_DOWN
    errors: list[BaseException] = []

    def fault() -> None:
        try:
            for at in fault_points(schedule.budget, every):
                if not schedule.hold_at(at):
                    return
                try:
                    broker.stop()
                    counts["broker_stopped"] += 1
                finally:
                    schedule.release()
                held = schedule.hold_at(at + down)
                try:
                    broker.start()
                finally:
                    schedule.release()
                if not held:
                    return
        except BaseException as exc:
            errors.append(exc)
        finally:
            schedule.release()
            if not broker.up():
                broker.start()

    started = time.monotonic()
    try:
        broker.start()
        env = {"CELERY_BROKER_URL": broker.url, "CELERY_TASK_ALWAYS_EAGER": "false"}
        with stack(db_url, workers=3, **env) as (_redis, server):
            thread = threading.Thread(target=fault, name="fault-broker", daemon=True)
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
                    schedule=schedule,
                )
            finally:
                schedule.close()
                thread.join(timeout=60)
            if errors:
                raise RuntimeError(f"the broker fault failed: {errors[0]!r}") from errors[0]
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
    # The reorder rule's "needs stock" (purchasing.services): good units (on hand
    # - damaged - quality control, issue #15) below the threshold.
    below = rows.filter(on_hand__lt=F("reorder_threshold") + F("damaged") + F("quality_control"))
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
