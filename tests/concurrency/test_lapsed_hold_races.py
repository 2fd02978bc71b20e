"""A reservation that releases lapsed holds races the order's own closer.

The reservation locks a lapsed order's reservation row SKIP LOCKED after its
inventory rows: it never waits for a closer that holds that order while it
holds rows (which would invert the lock order, reservation then rows), and
never releases a hold a closer is releasing. When it is short only because of
such an order, it lets go of its rows, waits for the closer and tries again
(docs/ARCHITECTURE.md, "Short only because a closer holds a lapsed order").
Sessions with events and lock waits for determinism, invariants after. Both
engines (tests/concurrency/conftest.py).
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
from .helpers import DEADLINE_SECONDS, Session, blocked_by, wait_event, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _two_lapsed():
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
    with transaction.atomic():
        assert lock_reservation(order_id) is not None
        locked.set()
        assert done.wait(DEADLINE_SECONDS)
    return Reservation.objects.get(order_id=order_id).status


def test_a_reservation_skips_a_lapsed_order_someone_else_is_closing_when_it_has_enough():
    """The reserving transaction takes a lapsed order's lock SKIP LOCKED after its
    rows: an order a closer holds is left to it. When the other lapsed hold is
    enough, the reservation goes ahead without waiting for the closer."""
    _two_lapsed()
    locked, done = threading.Event(), threading.Event()
    closer = Session(lambda: hold_order_lock("L1", locked, done), "closer").begin()
    wait_event(locked, closer, "the closer holds L1")
    reserver = Session(
        lambda: services.stock_reserve(
            order_id="new", lines=[ReserveLine("HOT", "BER", 1)], actor="c"
        ),
        "reserver",
    ).begin()
    reserver.finish()  # while the closer still holds L1: it never waited
    done.set()
    closer.finish()
    assert reserver.error is None and reserver.result.created
    statuses = dict(Reservation.objects.values_list("order_id", "status"))
    assert statuses == {"L1": "active", "L2": "expired", "new": "active"}
    assert services.reservations_expire(now=clock.now()) == 1
    assert_invariants()


def test_a_reservation_short_only_because_a_closer_holds_a_lapsed_order_waits_for_it():
    """Short without L1's unit, which a closer holds: answering 'short' would refuse
    stock that is free the moment the closer commits (the sweeper releasing it).
    The reservation lets go of its rows, waits for the closer (taking the order's
    lock before any row's, the closers' own order: no cycle) and tries again."""
    _two_lapsed()
    locked, done = threading.Event(), threading.Event()
    closer = Session(lambda: hold_order_lock("L1", locked, done), "closer").begin()
    wait_event(locked, closer, "the closer holds L1")
    reserver = Session(
        lambda: services.stock_reserve(
            order_id="new", lines=[ReserveLine("HOT", "BER", 2)], actor="c"
        ),
        "reserver",
    ).begin()
    wait_until(lambda: blocked_by(reserver.pid, closer.pid), "the reserver waits for the closer")
    assert not reserver.done.is_set()
    done.set()
    closer.finish()
    reserver.finish()
    assert reserver.error is None, reserver.error
    assert reserver.result.created
    statuses = dict(Reservation.objects.values_list("order_id", "status"))
    assert statuses == {"L1": "expired", "L2": "expired", "new": "active"}
    assert services.reservations_expire(now=clock.now()) == 0
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
