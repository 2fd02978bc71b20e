"""Background work under faults, with real processes on a private broker.

* A Celery worker (its own process, prefork pool, on a private Redis broker)
  killed with SIGKILL in the middle of the daily reorder batch: with acks_late
  and reject_on_worker_lost the message goes back to the queue, the task runs
  again, and every row gets exactly one purchase order line.
* The broker stopped while gunicorn serves fulfilments that fall below the
  reorder threshold: the stock operations succeed, and the daily batch orders
  what the lost after-commit checks did not, exactly once.
"""

import os
import signal
import subprocess
import tempfile
import time

import pytest
import requests
from django.db import connection, connections

from api.services import api_client_create
from chaos.processes import ROOT, VENV_BIN, PrivateRedis, _children, app_env
from chaos.scenarios import database_url, stack
from inventory.models import Inventory
from purchasing import services as purchasing
from purchasing.models import PurchaseOrder, PurchaseOrderLine
from purchasing.tasks import reorder_batch_task

from ..conftest import assert_invariants
from ..purchasing.conftest import stocked_row
from ..purchasing.factories import SupplierFactory
from ..purchasing.test_worker import celery_broker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def rows_below_threshold(n: int) -> list[Inventory]:
    supplier = SupplierFactory(name="Acme")
    return [stocked_row(f"LOW-{i}", "BER", on_hand=2, supplier=supplier) for i in range(n)]


def test_a_worker_killed_mid_batch_runs_it_again_without_doing_anything_twice():
    rows = rows_below_threshold(5)
    broker = PrivateRedis()
    log = tempfile.NamedTemporaryFile(prefix="stockroom-worker-", suffix=".log")  # noqa: SIM115
    worker = None
    blocker = None
    try:
        broker.start()
        env = app_env(
            database_url(),
            "",
            CELERY_BROKER_URL=broker.url,
            CELERY_TASK_ALWAYS_EAGER="false",
            DB_LOCK_TIMEOUT_MS="60000",
            LOG_LEVEL="INFO",
        )
        worker = subprocess.Popen(
            [
                str(VENV_BIN / "celery"),
                "-A",
                "inventory_site",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        # Block the batch at its first insert: another session holds a SHARE lock
        # on the purchase order table (reads go on, inserts wait).
        blocker = connections.create_connection("default")
        blocker.set_autocommit(False)
        with blocker.cursor() as cursor:
            cursor.execute("LOCK TABLE purchasing_purchaseorder IN SHARE MODE")
        with celery_broker(broker.url):
            reorder_batch_task.delay()

        def waiting_backend():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
                return cursor.fetchone()[0]

        wait_for(waiting_backend, 60, "the batch to block on the lock")
        [child] = _children(worker.pid)
        os.kill(child, signal.SIGKILL)  # the pool process, mid-task
        wait_for(lambda: [p for p in _children(worker.pid) if p != child], 30, "a new pool process")
        blocker.rollback()  # let the re-delivered task through
        wait_for(lambda: PurchaseOrderLine.objects.count() >= len(rows), 60, "the rerun")
        time.sleep(1)  # a duplicate run, if any, would land now
    finally:
        if blocker is not None:
            blocker.close()
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=10)
        broker.close()
    with open(log.name, errors="replace") as f:
        output = f.read()
    log.close()
    assert "WorkerLostError" in output or "signal 9" in output, output[-3000:]
    assert output.count("reorder_batch_task") >= 2, output[-3000:]
    assert PurchaseOrder.objects.count() == 1
    assert PurchaseOrderLine.objects.count() == len(rows)
    assert sorted(PurchaseOrderLine.objects.values_list("product__sku", flat=True)) == [
        f"LOW-{i}" for i in range(5)
    ]
    assert purchasing.reorder_batch().lines_created == 0


def test_broker_down_stock_operations_succeed_and_the_batch_catches_up():
    rows = rows_below_threshold(3)
    for row in rows:  # back above the threshold, so fulfilments take them below it
        row.reorder_threshold = 1
        row.save(update_fields=["reorder_threshold"])
    _, key = api_client_create(name="broker", scopes=["storefront", "operations"])
    broker = PrivateRedis()
    try:
        broker.start()
        with stack(
            database_url(),
            workers=2,
            CELERY_BROKER_URL=broker.url,
            CELERY_TASK_ALWAYS_EAGER="false",
        ) as (_redis, server):
            broker.stop()  # the broker is down for every request below
            session = requests.Session()
            session.headers["Authorization"] = f"Token {key}"
            timings = []
            for i, row in enumerate(rows):
                sku = row.product.sku
                for path, body in (
                    (
                        "/api/v1/reservations/",
                        {
                            "order_id": f"B-{i}",
                            "lines": [{"sku": sku, "quantity": 2, "warehouse": "BER"}],
                        },
                    ),
                    (f"/api/v1/reservations/B-{i}/fulfill/", {}),
                ):
                    started = time.monotonic()
                    response = session.post(server.url + path, json=body, timeout=30)
                    timings.append(time.monotonic() - started)
                    assert response.status_code in (200, 201), response.text
            ready = session.get(server.url + "/health/ready", timeout=10).json()
            session.close()
    finally:
        broker.close()
    assert ready["status"] == "degraded"
    assert ready["checks"]["broker"]["status"] == "down"
    assert max(timings) < 10
    assert Inventory.objects.filter(on_hand=0).count() == 3
    # Nothing was queued, so nothing was ordered yet; the daily batch catches up, once.
    assert not PurchaseOrderLine.objects.exists()
    assert purchasing.reorder_batch().lines_created == 3
    assert purchasing.reorder_batch().lines_created == 0
    assert PurchaseOrderLine.objects.count() == 3
    assert_invariants()
