"""Transfers in two steps (issue #15, item 3): ship, then receive (in full or short)."""

import datetime

import pytest
from django.utils import timezone

from inventory import errors, selectors, services
from inventory.models import (
    Inventory,
    InventoryTransaction,
    TransactionType,
    Transfer,
    TransferStatus,
)
from inventory.services import ReserveLine, TransferLine

from ..conftest import receive
from ..factories import ProductFactory

pytestmark = pytest.mark.django_db


def balances(sku="TSHIRT-M", code="BER"):
    r = Inventory.objects.get(product__sku=sku, warehouse__code=code)
    return r.on_hand, r.reserved, r.available


def ledger(transfer_id):
    return sorted(
        (t.warehouse.code, t.product.sku, t.type, t.on_hand_delta)
        for t in InventoryTransaction.objects.filter(
            reference_type="transfer", reference_id=transfer_id
        ).select_related("warehouse", "product")
    )


def ship(transfer_id="T-1", lines=(("TSHIRT-M", 4),), **kwargs):
    kwargs.setdefault("expected_date", timezone.localdate() + datetime.timedelta(days=3))
    return services.transfer_ship(
        transfer_id=transfer_id,
        source=kwargs.pop("source", "BER"),
        destination=kwargs.pop("destination", "HAM"),
        lines=[TransferLine(sku, q) for sku, q in lines],
        actor=kwargs.pop("actor", "user:ship"),
        **kwargs,
    )


def incoming(sku="TSHIRT-M", code="HAM"):
    [row] = [r for r in selectors.stock_states_for_skus([sku])[sku] if r.code == code]
    return row.incoming, row.incoming_expected


def test_ship_takes_units_off_the_source_and_they_are_incoming_at_the_destination(
    product, warehouse, other_warehouse
):
    receive(product.sku, "BER", 10)
    due = timezone.localdate() + datetime.timedelta(days=3)
    result = ship(reason="rebalance", expected_date=due)
    assert (result.transfer.status, result.replayed) == (TransferStatus.SHIPPED, False)
    assert balances(code="BER") == (6, 0, 6)
    assert balances(code="HAM") == (0, 0, 0)  # born empty at ship: incoming shows on it
    assert incoming() == (4, due)
    assert ledger("T-1") == [("BER", "TSHIRT-M", TransactionType.TRANSFER, -4)]
    [txn] = result.transactions
    assert (txn.created_by, txn.reason, txn.on_hand_after) == ("user:ship", "rebalance", 6)


def test_receive_in_full_puts_the_units_on_hand_at_the_destination(
    product, warehouse, other_warehouse
):
    receive(product.sku, "BER", 10)
    ship()
    result = services.transfer_receive(transfer_id="T-1", actor="user:dock")
    assert result.transfer.status == TransferStatus.RECEIVED
    assert result.transfer.received_by == "user:dock"
    assert [line.quantity_received for line in result.lines] == [4]
    assert balances(code="BER") == (6, 0, 6)
    assert balances(code="HAM") == (4, 0, 4)
    assert incoming() == (0, None)
    assert ledger("T-1") == [
        ("BER", "TSHIRT-M", TransactionType.TRANSFER, -4),
        ("HAM", "TSHIRT-M", TransactionType.TRANSFER, 4),
    ]


def test_receive_short_writes_the_difference_off_with_the_reason(
    product, warehouse, other_warehouse
):
    ProductFactory(sku="MUG")
    receive(product.sku, "BER", 10)
    receive("MUG", "BER", 5)
    ship(lines=(("TSHIRT-M", 4), ("MUG", 5)))
    with pytest.raises(errors.ReasonRequired):
        services.transfer_receive(transfer_id="T-1", actor="u", received={"MUG": 3})
    result = services.transfer_receive(
        transfer_id="T-1", actor="user:dock", received={"MUG": 3}, reason="2 broken in the truck"
    )
    assert result.transfer.status == TransferStatus.RECEIVED_SHORT
    assert result.transfer.receive_reason == "2 broken in the truck"
    assert {line.product.sku: line.quantity_short for line in result.lines} == {
        "MUG": 2,
        "TSHIRT-M": 0,
    }
    assert balances("MUG", "HAM") == (3, 0, 3)
    assert balances("TSHIRT-M", "HAM") == (4, 0, 4)
    assert ledger("T-1") == sorted(
        [
            ("BER", "TSHIRT-M", TransactionType.TRANSFER, -4),
            ("BER", "MUG", TransactionType.TRANSFER, -5),
            ("HAM", "TSHIRT-M", TransactionType.TRANSFER, 4),
            ("HAM", "MUG", TransactionType.TRANSFER, 5),
            ("HAM", "MUG", TransactionType.WRITE_OFF, -2),
        ]
    )
    [write_off] = InventoryTransaction.objects.filter(type=TransactionType.WRITE_OFF)
    assert write_off.reason == "short on receipt: 2 broken in the truck"
    assert write_off.on_hand_after == 3


def test_nothing_arrived_writes_everything_off(product, warehouse, other_warehouse):
    receive(product.sku, "BER", 4)
    ship()
    services.transfer_receive(transfer_id="T-1", actor="u", received={"TSHIRT-M": 0}, reason="lost")
    assert balances(code="HAM") == (0, 0, 0)
    assert balances(code="BER") == (0, 0, 0)


def test_ship_and_receive_retries_replay_the_first_result(product, warehouse, other_warehouse):
    receive(product.sku, "BER", 10)
    first = ship()
    again = ship()
    assert again.replayed and again.transfer.pk == first.transfer.pk
    assert balances(code="BER") == (6, 0, 6)
    one = services.transfer_receive(transfer_id="T-1", actor="u", received={"TSHIRT-M": 4})
    two = services.transfer_receive(transfer_id="T-1", actor="u")  # the same figures
    assert (one.replayed, two.replayed) == (False, True)
    assert balances(code="HAM") == (4, 0, 4)
    assert len(ledger("T-1")) == 2


def test_another_request_under_a_used_id_is_refused(product, warehouse, other_warehouse):
    receive(product.sku, "BER", 10)
    ship()
    with pytest.raises(errors.TransferConflict):
        ship(lines=(("TSHIRT-M", 5),))
    services.transfer_receive(transfer_id="T-1", actor="u")
    with pytest.raises(errors.TransferNotInTransit) as exc:
        services.transfer_receive(
            transfer_id="T-1", actor="u", received={"TSHIRT-M": 1}, reason="late count"
        )
    assert exc.value.details["status"] == TransferStatus.RECEIVED
    assert balances(code="BER") == (6, 0, 6)
    assert balances(code="HAM") == (4, 0, 4)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"lines": (("TSHIRT-M", 11),)}, errors.InsufficientStock),
        ({"lines": (("TSHIRT-M", 0),)}, errors.InvalidQuantity),
        ({"lines": ()}, errors.InvalidInput),
        ({"lines": (("NOPE", 1),)}, errors.UnknownSku),
        ({"destination": "BER"}, errors.SameWarehouse),
        ({"destination": "XXX"}, errors.UnknownWarehouse),
        ({"transfer_id": ""}, errors.InvalidInput),
        ({"expected_date": datetime.date(2000, 1, 1)}, errors.InvalidInput),
    ],
)
def test_bad_shipments_change_nothing(product, warehouse, other_warehouse, kwargs, error):
    receive(product.sku, "BER", 10)
    services.stock_reserve(order_id="o", lines=[ReserveLine(product.sku, "BER", 0 + 1)], actor="c")
    with pytest.raises(error):
        ship(**kwargs)
    assert balances(code="BER") == (10, 1, 9)
    assert not Transfer.objects.exists()


def test_only_sellable_units_ship(product, warehouse, other_warehouse):
    receive(product.sku, "BER", 10)
    services.stock_reserve(order_id="o", lines=[ReserveLine(product.sku, "BER", 3)], actor="c")
    services.stock_move_state(
        sku=product.sku,
        warehouse="BER",
        from_state="sellable",
        to_state="damaged",
        quantity=2,
        reason="dropped",
        actor="u",
    )
    with pytest.raises(errors.InsufficientStock) as exc:
        ship(lines=(("TSHIRT-M", 6),))
    assert exc.value.details["lines"][0]["available"] == 5
    ship(lines=(("TSHIRT-M", 5),))
    assert balances(code="BER") == (5, 3, 0)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"transfer_id": "T-404"}, errors.NotFound),
        ({"received": {"TSHIRT-M": 5}}, errors.ExceedsShipped),
        ({"received": {"MUG": 1}}, errors.ExceedsShipped),
        ({"received": {"TSHIRT-M": -1}, "reason": "x"}, errors.InvalidQuantity),
    ],
)
def test_bad_receipts_change_nothing(product, warehouse, other_warehouse, kwargs, error):
    ProductFactory(sku="MUG")
    receive(product.sku, "BER", 10)
    ship()
    with pytest.raises(error):
        services.transfer_receive(**{"transfer_id": "T-1", "actor": "u", **kwargs})
    assert Transfer.objects.get().status == TransferStatus.SHIPPED
    assert balances(code="HAM") == (0, 0, 0)


def test_ships_in_days_counts_a_transfer_in_transit(product, warehouse, other_warehouse):
    receive(product.sku, "BER", 2)
    ship(lines=(("TSHIRT-M", 2),), expected_date=timezone.localdate() + datetime.timedelta(days=4))
    [found] = selectors.availability_from_database([product.sku]).values()
    assert found.available == 0
    assert found.ships_in_days == {"min": 4, "max": 4}


def test_reconcile_is_clean_in_transit_and_after_a_short_receipt(
    product, warehouse, other_warehouse
):
    """`reconcile` still checks the ledger's sums against every balance, per
    state: units in transit are on no row, so both steps leave it clean; and a
    drifted destination row after a receipt is found."""
    receive(product.sku, "BER", 10)
    services.stock_move_state(
        sku=product.sku, warehouse="BER", from_state="sellable", to_state="damaged",
        quantity=1, reason="dropped", actor="u",
    )  # fmt: skip
    ship()
    assert services.inventory_reconcile().discrepancies == []
    services.transfer_receive(transfer_id="T-1", actor="u", received={"TSHIRT-M": 3}, reason="x")
    assert services.inventory_reconcile().discrepancies == []
    Inventory.objects.filter(product=product, warehouse=other_warehouse).update(on_hand=4)
    [found] = services.inventory_reconcile().discrepancies
    assert (found.warehouse, found.on_hand, found.ledger_on_hand) == ("HAM", 4, 3)
    Inventory.objects.filter(product=product, warehouse=other_warehouse).update(on_hand=3)


def test_a_retry_replays_after_its_expected_date_has_passed(product, warehouse, other_warehouse):
    from inventory import clock

    receive(product.sku, "BER", 10)
    due = timezone.localdate() + datetime.timedelta(days=1)
    ship(expected_date=due)
    clock.advance(3 * 24 * 3600)
    try:
        again = ship(expected_date=due)
    finally:
        clock.reset()
    assert again.replayed


def test_shipping_to_an_inactive_warehouse_is_refused(product, warehouse, other_warehouse):
    """A closed site takes no new shipments (409 warehouse_inactive): nothing leaves."""
    receive(product.sku, "BER", 10)
    close(other_warehouse)
    with pytest.raises(errors.WarehouseInactive) as exc:
        ship()
    assert exc.value.details == {"warehouses": ["HAM"]}
    assert balances(code="BER") == (10, 0, 10)
    assert not Transfer.objects.exists()


def test_a_transfer_arriving_at_a_warehouse_closed_meanwhile_is_received(
    product, warehouse, other_warehouse
):
    """Goods on a truck arrive whatever the destination's state: a warehouse made
    inactive while they travel books them (it is closed for sale, not for its dock);
    they sit on hand there, unreservable, until moved on or the site reopens. An
    inactive source may ship them on (emptying a closing site)."""
    receive(product.sku, "BER", 10)
    ship(lines=(("TSHIRT-M", 4),))
    close(other_warehouse)

    result = services.transfer_receive(transfer_id="T-1", actor="user:dock")

    assert result.transfer.status == TransferStatus.RECEIVED
    assert balances(code="HAM")[0] == 4
    with pytest.raises(errors.WarehouseInactive):
        services.stock_reserve(
            order_id="o-ham", lines=[ReserveLine(product.sku, "HAM", 1)], actor="c"
        )
    ship(transfer_id="T-2", source="HAM", destination="BER", lines=(("TSHIRT-M", 4),))
    assert balances(code="HAM")[0] == 0


def close(warehouse):
    """Make a warehouse inactive through the catalogue service (as the admin does)."""
    warehouse.refresh_from_db()
    services.warehouse_update(warehouse=warehouse, data={"is_active": False})
