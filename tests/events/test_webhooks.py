"""Webhooks with real parts: a real Celery worker (a thread of this process on a
real Redis broker, or a separate process that is SIGKILLed) delivering to a real
HTTP receiver on loopback that verifies Standard Webhooks signatures."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.db import connection

from chaos.processes import free_port
from events import services, tasks
from events.models import Delivery, DeliveryStatus, Event
from inventory import clock
from inventory_site.celery import app
from tests.conftest import receive
from tests.factories import ProductFactory, WarehouseFactory
from tests.purchasing.test_worker import celery_broker

from .receiver import Receiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BROKER_URL = os.environ.get("EVENTS_TEST_BROKER_URL", os.environ["REDIS_URL"])
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def close_worker_connections():
    def close(**kwargs):
        connection.close()

    task_postrun.connect(close, weak=False)
    yield
    task_postrun.disconnect(close)


def feed_order(subscription) -> dict[str, list[str]]:
    """Per stream, the ids of the events the subscription should get, in feed order."""
    lanes: dict[str, list[str]] = {}
    for event in Event.objects.filter(
        id__in=Delivery.objects.filter(subscription=subscription).values("event_id")
    ).order_by("feed_txid", "id"):
        lanes.setdefault(event.stream, []).append(f"evt_{event.id}")
    return lanes


def first_arrivals(receiver: Receiver) -> dict[str, list[str]]:
    lanes: dict[str, list[str]] = {}
    seen: set[str] = set()
    for event in receiver.received:
        if event["id"] in seen:
            continue
        seen.add(event["id"])
        stream = f"sku:{event['sku']}" if event["sku"] else event["data"].get("order_id", "")
        lanes.setdefault(stream, []).append(event["id"])
    return lanes


def pump(until, *, advance: float = 0.0, timeout: float = 120.0) -> bool:
    """Act as beat: run the dispatcher (queues lane tasks to the worker) until `until()`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with app.connection_for_write() as conn:  # a fresh connection each time
            tasks.events_dispatch_task.apply_async(connection=conn)
        if until():
            return True
        if advance:
            clock.advance(advance)  # the worker thread shares this process's clock
        time.sleep(0.2)
    return until()


def make_stock_changes():
    WarehouseFactory(code="BER")
    for sku in ("WH-A", "WH-B", "WH-C"):
        ProductFactory(sku=sku)
    for n in range(4):
        for sku in ("WH-A", "WH-B", "WH-C"):
            receive(sku, "BER", n + 1)


def test_receiver_down_then_up_every_event_arrives_in_per_sku_order(close_worker_connections):
    port = free_port()
    sub = services.subscription_create(url=f"http://127.0.0.1:{port}/hook", actor="user:test")
    receiver = Receiver(port, sub.secret)
    make_stock_changes()
    expected = Event.objects.count()
    try:
        with (
            celery_broker(BROKER_URL),
            start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30),
        ):
            # Down: nothing listens; every lane's first attempt fails and backs off.
            assert pump(
                lambda: (
                    Delivery.objects.count() == expected
                    and Delivery.objects.filter(attempts__gte=1).count() >= 3
                )
            )
            assert receiver.received == []
            sub.refresh_from_db()
            assert sub.consecutive_failures >= 3 and sub.is_active
            receiver.start()  # up again
            assert pump(
                lambda: not Delivery.objects.filter(status=DeliveryStatus.PENDING).exists(),
                advance=30,
            ), "not every delivery arrived"
    finally:
        clock.reset()
        receiver.stop()
    assert receiver.rejected == 0  # every signature verified
    assert len(set(receiver.ids)) == expected  # every event arrived
    lanes = feed_order(sub)
    arrivals = first_arrivals(receiver)
    for stream, ids in lanes.items():
        assert arrivals[stream] == ids, f"{stream} out of order"
    sub.refresh_from_db()
    assert sub.consecutive_failures == 0
    done = Delivery.objects.filter(status=DeliveryStatus.DELIVERED)
    assert done.count() == expected
    assert all(d.response_code == 204 and d.latency_ms is not None for d in done)
    assert done.filter(attempts__gte=2).exists()  # the failed attempts are in the log


def _worker_process(database_name: str) -> subprocess.Popen:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE", "CELERY_", "STOCKROOM_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="inventory_site.settings.base",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{database_name}",
        CELERY_BROKER_URL=BROKER_URL,
        PYTHONPATH=str(ROOT),
        LOG_LEVEL="WARNING",
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "inventory_site",
            "worker",
            "--pool",
            "solo",
            "--concurrency",
            "1",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_worker_killed_mid_delivery_redelivers_with_the_same_id():
    port = free_port()
    sub = services.subscription_create(url=f"http://127.0.0.1:{port}/hook", actor="user:test")
    receiver = Receiver(port, sub.secret)
    import threading

    receiver.hold = threading.Event()
    receiver.start()
    WarehouseFactory(code="BER")
    ProductFactory(sku="KILL-1")
    receive("KILL-1", "BER", 5)
    receive("KILL-1", "BER", 6)
    expected = Event.objects.count()
    name = connection.settings_dict["NAME"]
    worker = _worker_process(name)
    second = None
    try:
        with celery_broker(BROKER_URL):
            assert pump(receiver.first_request.is_set), "no delivery started"
            os.kill(worker.pid, signal.SIGKILL)  # mid-request: the receiver holds it
            worker.wait(30)
            receiver.hold.set()  # the answer goes to a dead socket (or nobody)
            receiver.hold = None
            assert Delivery.objects.filter(status=DeliveryStatus.PENDING).count() == expected
            second = _worker_process(name)
            assert pump(
                lambda: not Delivery.objects.filter(status=DeliveryStatus.PENDING).exists()
            ), "the pending deliveries were not sent again"
    finally:
        for proc in (worker, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        receiver.stop()
    assert len(set(receiver.ids)) == expected  # none lost
    first = receiver.ids[0]
    assert receiver.ids.count(first) == 2  # the interrupted one came again, same id
    assert receiver.rejected == 0
