"""A reservation that releases lapsed holds races the order's own closer.

The reservation locks a lapsed order's reservation row SKIP LOCKED after its
inventory rows: it never waits for a closer that holds that order (which would
invert the lock order, reservation then rows), and never releases a hold a
closer is releasing. Two connections, events for determinism, invariants after.
Both engines (tests/concurrency/conftest.py).
"""

import threading
from datetime import timedelta

import pytest
from django.db import connections, transaction

from inventory import clock, errors, services
from inventory.locks import lock_reservation
from inventory.models import Reservation
from inventory.services import ReserveLine

from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def two_lapsed():
    WarehouseFactory(code="BER")
    ProductFactory(sku="HOT")
    receive("HOT", "BER", 2)
    for n, order_id in enumerate(["L1", "L2"]):
        services.stock_reserve(
            order_id=order_id,
            lines=[ReserveLine("HOT", "BER", 1)],
            actor="c",
            expires_at=clock.now() - timedelta(seconds=10 - n),
        )


def hold_order_lock(order_id, locked, done):
    """Another session closing `order_id`: holds its reservation row until `done`."""
    try:
        with transaction.atomic():
            assert lock_reservation(order_id) is not None
            locked.set()
            assert done.wait(30)
    finally:
        connections.close_all()


@pytest.mark.parametrize("quantity", [1, 2])
def test_a_reservation_skips_a_lapsed_order_someone_else_is_closing(two_lapsed, quantity):
    locked, done = threading.Event(), threading.Event()
    closer = threading.Thread(target=hold_order_lock, args=("L1", locked, done))
    closer.start()
    assert locked.wait(30)
    outcome = {}

    def reserve():
        try:
            outcome["result"] = services.stock_reserve(
                order_id="new", lines=[ReserveLine("HOT", "BER", quantity)], actor="c"
            )
        except errors.InventoryError as exc:
            outcome["error"] = exc
        finally:
            connections.close_all()

    reserver = threading.Thread(target=reserve)
    reserver.start()
    reserver.join(30)
    finished_while_locked = not reserver.is_alive()
    done.set()
    closer.join(30)
    reserver.join(30)
    assert finished_while_locked  # it never waited for the closer's lock
    statuses = dict(Reservation.objects.values_list("order_id", "status"))
    if quantity == 1:
        assert outcome["result"].created
        assert statuses == {"L1": "active", "L2": "expired", "new": "active"}
    else:  # L1's unit is its closer's to release: 1 available, the order is short
        assert outcome["error"].lines[0]["available"] == 1
        assert statuses == {"L1": "active", "L2": "active"}
    assert services.reservations_expire(now=clock.now()) == 2 - (quantity == 1)
    assert_invariants()


def test_reservations_and_the_sweeper_racing_for_lapsed_holds_release_each_once():
    WarehouseFactory(code="BER")
    ProductFactory(sku="HOT")
    receive("HOT", "BER", 20)
    for n in range(20):
        services.stock_reserve(
            order_id=f"cart-{n}",
            lines=[ReserveLine("HOT", "BER", 1)],
            actor="c",
            expires_at=clock.now() - timedelta(seconds=30 - n),
        )
    barrier = threading.Barrier(3)
    results = {"created": 0, "short": 0, "swept": 0}
    lock = threading.Lock()

    def buyer(n):
        try:
            barrier.wait(30)
            for k in range(5):
                try:
                    services.stock_reserve(
                        order_id=f"buy-{n}-{k}", lines=[ReserveLine("HOT", "BER", 2)], actor="c"
                    )
                    with lock:
                        results["created"] += 1
                except errors.InsufficientStock:
                    with lock:
                        results["short"] += 1
        finally:
            connections.close_all()

    def sweeper():
        try:
            barrier.wait(30)
            swept = services.reservations_expire(now=clock.now())
            with lock:
                results["swept"] += swept
        finally:
            connections.close_all()

    threads = [threading.Thread(target=buyer, args=(n,)) for n in range(2)]
    threads.append(threading.Thread(target=sweeper))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results["created"] == 10  # 20 units, freed by whoever got there first
    assert Reservation.objects.filter(order_id__startswith="cart-", status="active").count() == 0
    assert_invariants()
