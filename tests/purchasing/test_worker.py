"""Integration: a real Celery worker on a real broker (Redis db 4), and a broker that is down.

Tasks are queued for real here (eager mode off). The worker runs in a thread of
this process (`celery.contrib.testing.worker.start_worker`) and is stopped at
the end of each test; the shared Redis is never flushed, only this test's queue
in its own database is purged. Override the broker with PURCHASING_TEST_BROKER_URL.
"""

import logging
import os
import threading
import time
from contextlib import contextmanager

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun, task_prerun
from django.db import connection

from inventory import services as stock
from inventory.models import Inventory, Reservation
from inventory.services import ReserveLine
from inventory_site.celery import app
from purchasing import services
from purchasing.models import PurchaseOrder, PurchaseOrderLine

from .conftest import stocked_row
from .factories import SupplierFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BROKER_URL = os.environ.get("PURCHASING_TEST_BROKER_URL", "redis://127.0.0.1:6379/4")
UNREACHABLE_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def _drop_broker_connections() -> None:
    # The app caches a connection pool bound to the broker URL it was created with.
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None


@contextmanager
def celery_broker(url: str):
    """Publish to `url` for real (no inline execution) for the duration of the block."""
    saved = {key: app.conf[key] for key in ("broker_url", "task_always_eager")}
    app.conf.update(broker_url=url, task_always_eager=False)
    _drop_broker_connections()
    try:
        yield
    finally:
        app.conf.update(saved)
        _drop_broker_connections()


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


@pytest.fixture
def executed_tasks():
    """Names of tasks the worker executed, with the thread that ran them.

    Also closes the worker thread's database connection after each task, so the
    test database can be dropped at the end of the session."""
    seen: list[tuple[str, str]] = []

    def record(sender=None, **kwargs):
        seen.append((sender.name, threading.current_thread().name))

    def close_connection(**kwargs):
        connection.close()

    task_prerun.connect(record, weak=False)
    task_postrun.connect(close_connection, weak=False)
    yield seen
    task_prerun.disconnect(record)
    task_postrun.disconnect(close_connection)


def _fulfilment_below_threshold() -> Inventory:
    supplier = SupplierFactory(name="Acme")
    row = stocked_row("MUG", "BER", on_hand=12, threshold=10, supplier=supplier)
    stock.stock_reserve(order_id="o-1", lines=[ReserveLine("MUG", "BER", 5)], actor="c")
    return row


def test_fulfilment_below_threshold_leads_to_a_po_created_by_the_worker(executed_tasks):
    row = _fulfilment_below_threshold()

    with celery_broker(BROKER_URL):
        app.control.purge()  # this test's own queue, in its own Redis database
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            stock.reservation_fulfill(order_id="o-1", actor="c")  # commits; check queued
            ordered = wait_for(lambda: PurchaseOrderLine.objects.exists())

    assert ordered, "the worker did not create a purchase order line in time"
    [line] = PurchaseOrderLine.objects.select_related("purchase_order")
    assert (line.product_id, line.warehouse_id, line.quantity_ordered) == (
        row.product_id,
        row.warehouse_id,
        50,
    )
    assert line.purchase_order.created_by == "system:reorder"
    ran = [(name, thread) for name, thread in executed_tasks]
    assert [name for name, _ in ran] == ["purchasing.tasks.reorder_check_task"]
    assert ran[0][1] != threading.current_thread().name  # in the worker, not inline


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_broker_down_fulfilment_commits_and_the_batch_orders_later():
    row = _fulfilment_below_threshold()
    # Listen on the listener's own logger: the root logger's handlers are shared
    # with whatever an earlier test's Celery worker did to logging.
    records = _Records()
    listener_log = logging.getLogger("purchasing.listeners")
    level = listener_log.level
    listener_log.addHandler(records)
    listener_log.setLevel(logging.WARNING)  # a worker started earlier may have raised it
    try:
        with celery_broker(UNREACHABLE_BROKER_URL):
            started = time.monotonic()
            result = stock.reservation_fulfill(order_id="o-1", actor="c")
            elapsed = time.monotonic() - started
    finally:
        listener_log.removeHandler(records)
        listener_log.setLevel(level)

    # The fulfilment committed and returned normally; the lost check was logged.
    assert result.reservation.status == "fulfilled"
    assert Reservation.objects.get(order_id="o-1").status == "fulfilled"
    row.refresh_from_db()
    assert (row.on_hand, row.reserved) == (7, 0)
    print(f"fulfilment with the broker down took {elapsed:.2f}s")
    assert any("not queued" in m for m in records.messages), records.messages
    assert elapsed < 10, f"the broker outage held the fulfilment up for {elapsed:.1f}s"
    assert not PurchaseOrderLine.objects.exists()

    # The daily batch catches what the check missed.
    batch = services.reorder_batch()

    assert batch.lines_created == 1
    [line] = PurchaseOrderLine.objects.all()
    assert (line.product_id, line.warehouse_id) == (row.product_id, row.warehouse_id)
    assert PurchaseOrder.objects.count() == 1
