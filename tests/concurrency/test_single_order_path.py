"""A single order waiting for a row lock, on both engines (the SQL engine's
one-order fast path, migration 0023: one statement that claims, locks, checks
and writes).

The waiting order's statement took its snapshot before the holder committed;
it must check and write against the row as the holder left it (PostgreSQL
re-reads a row it locks after waiting: READ COMMITTED's EvalPlanQual), never
against its older snapshot: refused when the holder took what it needed,
granted on top of the holder's units otherwise. Interleaved deterministically
(tests/concurrency/helpers.py): the holder keeps its transaction open until the
waiter is seen blocked on it.
"""

import threading

import pytest
from django.db import connection, transaction

from inventory import errors, services
from inventory.models import Inventory, InventoryTransaction, Reservation
from inventory.services import ReserveLine

from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory
from .helpers import Session, blocked_by, wait_event, wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks"),
]


@pytest.fixture
def hot(db):
    ProductFactory(sku="HOT")
    ProductFactory(sku="COLD")
    WarehouseFactory(code="BER")
    receive("HOT", "BER", 5)
    receive("COLD", "BER", 5)


def reserve(order_id, *lines):
    return services.stock_reserve(
        order_id=order_id, lines=[ReserveLine(*line) for line in lines], actor="client:shop"
    )


def race(first_lines, second_lines):
    """`first` reserves and holds its transaction open; `second` reserves the same
    row, is seen waiting for first's lock; then first commits."""
    inside, release = threading.Event(), threading.Event()

    def first_body():
        with transaction.atomic():
            outcome = reserve("first", *first_lines)
            inside.set()
            assert release.wait(120)
        return outcome

    first = Session(first_body, "first").begin()
    wait_event(inside, first, "the first order is reserved (uncommitted)")
    second = Session(lambda: reserve("second", *second_lines), "second").begin()
    wait_until(
        lambda: blocked_by(second.pid, first.pid) or second.done.is_set(),
        "the second order waits for the first's row lock",
    )
    assert not second.done.is_set(), second.error
    release.set()
    first.finish()
    second.finish()
    assert first.error is None
    return second


def test_an_order_that_waited_is_refused_what_the_holder_took(hot):
    second = race([("HOT", "BER", 4)], [("COLD", "BER", 1), ("HOT", "BER", 2)])

    assert isinstance(second.error, errors.InsufficientStock)
    assert second.error.details["lines"] == [
        {"sku": "HOT", "warehouse": "BER", "requested": 2, "available": 1}
    ]
    assert list(Reservation.objects.values_list("order_id", flat=True)) == ["first"]
    assert {r.product.sku: r.reserved for r in Inventory.objects.select_related("product")} == {
        "HOT": 4,
        "COLD": 0,
    }
    assert_invariants()


def test_an_order_that_waited_reserves_on_top_of_the_holders_units(hot):
    second = race([("HOT", "BER", 3)], [("HOT", "BER", 2), ("COLD", "BER", 1)])

    assert second.error is None
    assert Inventory.objects.get(product__sku="HOT").available == 0
    after = dict(
        InventoryTransaction.objects.filter(reference_id="second").values_list(
            "product__sku", "reserved_after"
        )
    )
    assert after == {"HOT": 5, "COLD": 1}  # the ledger's balances count the first's 3
    assert_invariants()
