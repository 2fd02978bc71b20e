"""Races on two-step transfers (issue #15, item 3): shipping the last sellable
unit against a reservation of it (never both: never oversold), and two
receipts of one transfer (applied once). Both engines."""

import threading

import pytest
from django.db import transaction

from inventory import errors, services
from inventory.models import Inventory, InventoryTransaction, TransferStatus
from inventory.services import ReserveLine, TransferLine

from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory
from .helpers import Session, blocked_by, wait_event, wait_until
from .test_races import run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)


def reserve(sku, order_id):
    return services.stock_reserve(
        order_id=order_id, lines=[ReserveLine(sku, "BER", 1)], actor="client:shop"
    )


def ship(sku, transfer_id):
    return services.transfer_ship(
        transfer_id=transfer_id,
        source="BER",
        destination="HAM",
        lines=[TransferLine(sku, 1)],
        actor="user:dock",
    )


def _row(sku, code="BER"):
    return Inventory.objects.get(product__sku=sku, warehouse__code=code)


def test_ship_and_reservation_race_for_the_last_unit_never_both_win():
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    rounds = 8
    for n in range(rounds):
        ProductFactory(sku=f"LAST-{n}")
        receive(f"LAST-{n}", "BER", 1)
    for n in range(rounds):
        sku = f"LAST-{n}"
        outcomes = run_concurrently(
            2, lambda i, sku=sku: reserve(sku, f"o-{sku}") if i == 0 else ship(sku, f"T-{sku}")
        )
        failures = [o for o in outcomes if isinstance(o, Exception)]
        assert len(failures) == 1, outcomes
        assert isinstance(failures[0], errors.InsufficientStock), failures
        row = _row(sku)
        # Either the order holds the unit, or it left on the truck: never both.
        assert (row.on_hand, row.reserved) in {(1, 1), (0, 0)}
        assert row.available == 0
    assert_invariants()


@pytest.mark.parametrize("first", ["reserve", "ship"])
def test_the_second_waits_for_the_first_and_is_refused(first):
    """Deterministic: the first holds the source row (transaction open), the
    second is seen blocked on it, the first commits, the second is refused."""
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    ProductFactory(sku="ONE")
    receive("ONE", "BER", 1)
    services.stock_rows_create([("ONE", "HAM")])
    holding, release = threading.Event(), threading.Event()
    ops = {"reserve": lambda: reserve("ONE", "o-1"), "ship": lambda: ship("ONE", "T-1")}

    def first_op():
        with transaction.atomic():
            ops[first]()
            holding.set()
            assert release.wait(120)

    a = Session(first_op, "first").begin()
    wait_event(holding, a, "the first operation holds the row")
    second = "ship" if first == "reserve" else "reserve"
    b = Session(ops[second], "second").begin()
    wait_until(lambda: blocked_by(b.pid, a.pid), "the second waits for the first's lock")
    release.set()
    a.finish()
    b.finish()
    assert a.error is None, a.error
    assert isinstance(b.error, errors.InsufficientStock), b.error
    row = _row("ONE")
    assert (row.on_hand - row.reserved, row.available) == (0, 0)
    assert_invariants()


def test_two_receipts_of_one_transfer_apply_once():
    """The same receipt twice at once: one applies, the other replays it; a
    different receipt at once is refused. The destination gets the units once."""
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    ProductFactory(sku="TWO")
    receive("TWO", "BER", 5)
    services.transfer_ship(
        transfer_id="T-2",
        source="BER",
        destination="HAM",
        lines=[TransferLine("TWO", 5)],
        actor="u",
    )
    outcomes = run_concurrently(
        3,
        lambda i: (
            services.transfer_receive(transfer_id="T-2", actor=f"dock-{i}")
            if i < 2
            else services.transfer_receive(
                transfer_id="T-2", actor="dock-2", received={"TWO": 1}, reason="short"
            )
        ),
    )
    results = [o for o in outcomes if isinstance(o, services.TransferResult)]
    failures = [o for o in outcomes if isinstance(o, Exception)]
    # Whichever receipt won, the other kind is refused; the winner's twin replays.
    assert all(isinstance(f, errors.TransferNotInTransit) for f in failures), failures
    assert sum(not r.replayed for r in results) == 1
    row = _row("TWO", "HAM")
    status = results[0].transfer.status
    assert (status, row.on_hand) in {
        (TransferStatus.RECEIVED, 5),
        (TransferStatus.RECEIVED_SHORT, 1),
    }
    arrivals = InventoryTransaction.objects.filter(
        reference_id="T-2", warehouse__code="HAM", on_hand_delta__gt=0
    )
    assert arrivals.count() == 1
    assert_invariants()


@pytest.mark.parametrize("twin", ["same request", "other request"])
def test_a_shipment_waiting_on_its_twins_locks_replays_it(twin):
    """The same shipment twice (a double submit reaching two workers): the second
    waits on the first (on the idempotency key, `run_idempotent`), and once the
    first commits, with the stock gone, it replays the first instead of being
    refused. A different request under the id is a conflict. The units leave once."""
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    ProductFactory(sku="ALL")
    receive("ALL", "BER", 3)
    services.stock_rows_create([("ALL", "HAM")])
    holding, release = threading.Event(), threading.Event()

    def shipment(quantity):
        return services.transfer_ship(
            transfer_id="T-ALL",
            source="BER",
            destination="HAM",
            lines=[TransferLine("ALL", quantity)],
            actor="user:dock",
        )

    def first_op():
        with transaction.atomic():
            shipment(3)
            holding.set()
            assert release.wait(120)

    a = Session(first_op, "first").begin()
    wait_event(holding, a, "the first shipment holds the rows")
    b = Session(lambda: shipment(3 if twin == "same request" else 2), "twin").begin()
    wait_until(lambda: blocked_by(b.pid, a.pid), "the twin waits for the first's locks")
    release.set()
    a.finish()
    b.finish()
    assert a.error is None, a.error
    if twin == "same request":
        assert b.error is None, b.error
        assert b.result.replayed and b.result.transfer.transfer_id == "T-ALL"
    else:
        assert isinstance(b.error, errors.TransferConflict), b.error
    assert _row("ALL").on_hand == 0
    assert InventoryTransaction.objects.filter(reference_id="T-ALL").count() == 1
    assert_invariants()


def test_an_instant_transfer_on_a_row_held_past_the_lock_timeout_is_stock_busy():
    """`stock_transfer` is wrapped in `retry_busy` like every stock operation: a source
    row held past lock_timeout is StockBusy (503 stock_busy: nothing moved), not a raw
    database error (a 500). The wrapper had slid onto `merge_transfer_lines`."""
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    ProductFactory(sku="HELD")
    receive("HELD", "BER", 2)
    services.stock_rows_create([("HELD", "HAM")])
    holding, release = threading.Event(), threading.Event()

    def hold_row():
        with transaction.atomic():
            Inventory.objects.select_for_update().get(product__sku="HELD", warehouse__code="BER")
            holding.set()
            assert release.wait(120)

    a = Session(hold_row, "holder").begin()
    try:
        wait_event(holding, a, "the holder has the row")
        with pytest.raises(errors.StockBusy):
            services.stock_transfer(
                source="BER", destination="HAM", lines=[TransferLine("HELD", 1)], actor="u"
            )
    finally:
        release.set()
        a.finish()
    assert _row("HELD").on_hand == 2
