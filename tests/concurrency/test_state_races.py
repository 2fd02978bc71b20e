"""Races between a reservation and a move to damaged on the last sellable unit
(issue #15): whichever commits first wins, the other is refused; never both
(never oversold: reserved + damaged never exceed on hand). Both engines."""

import threading

import pytest
from django.db import transaction

from inventory import errors, services
from inventory.models import Inventory
from inventory.services import ReserveLine

from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory
from .helpers import Session, blocked_by, wait_event, wait_until
from .test_races import run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)


def reserve(sku, order_id):
    return services.stock_reserve(
        order_id=order_id, lines=[ReserveLine(sku, "BER", 1)], actor="client:shop"
    )


def damage(sku):
    return services.stock_move_state(
        sku=sku,
        warehouse="BER",
        from_state="sellable",
        to_state="damaged",
        quantity=1,
        reason="dropped",
        actor="user:dock",
    )


def test_reservation_and_damage_race_for_the_last_unit_never_both_win():
    WarehouseFactory(code="BER")
    rounds = 8
    for n in range(rounds):
        ProductFactory(sku=f"LAST-{n}")
        receive(f"LAST-{n}", "BER", 1)
    for n in range(rounds):
        sku = f"LAST-{n}"
        outcomes = run_concurrently(
            2, lambda i, sku=sku: reserve(sku, f"o-{sku}") if i == 0 else damage(sku)
        )
        failures = [o for o in outcomes if isinstance(o, Exception)]
        assert len(failures) == 1, outcomes
        assert isinstance(failures[0], errors.InsufficientStock), failures
        row = Inventory.objects.get(product__sku=sku)
        assert row.on_hand == 1 and row.reserved + row.damaged == 1
        assert row.available == 0
    assert_invariants()


@pytest.mark.parametrize("first", ["reserve", "damage"])
def test_the_second_waits_for_the_first_and_is_refused(first):
    """Deterministic: the first operation holds the row (its transaction open),
    the second is seen blocked on it, the first commits, the second is refused
    against the committed balances."""
    WarehouseFactory(code="BER")
    ProductFactory(sku="ONE")
    receive("ONE", "BER", 1)
    holding, release = threading.Event(), threading.Event()
    ops = {"reserve": lambda: reserve("ONE", "o-1"), "damage": lambda: damage("ONE")}

    def first_op():
        with transaction.atomic():
            ops[first]()
            holding.set()
            assert release.wait(120)

    a = Session(first_op, "first").begin()
    wait_event(holding, a, "the first operation holds the row")
    second = "damage" if first == "reserve" else "reserve"
    b = Session(ops[second], "second").begin()
    wait_until(lambda: blocked_by(b.pid, a.pid), "the second waits for the first's lock")
    release.set()
    a.finish()
    b.finish()
    assert a.error is None, a.error
    assert isinstance(b.error, errors.InsufficientStock), b.error
    row = Inventory.objects.get(product__sku="ONE")
    assert (row.on_hand, row.reserved + row.damaged, row.available) == (1, 1, 0)
    assert_invariants()
