"""A transfer moves at most the available stock: exactly all of it succeeds,
one unit more is refused and changes nothing (service and API; #13 item 8)."""

import pytest

from inventory import errors, services
from inventory.models import Inventory, InventoryTransaction
from inventory.services import ReserveLine, TransferLine

from ..api.conftest import make_caller
from ..conftest import assert_invariants, receive
from ..factories import BackorderProductFactory, ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def stock(db):
    """P: BER on hand 10, 3 reserved, so 7 available; HAM on hand 1.
    B (backorder, limit 5): BER on hand 2, nothing reserved; the allowance does
    not make stock that can be moved."""
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    ProductFactory(sku="P")
    BackorderProductFactory(sku="B", backorder_limit=5)
    receive("P", "BER", 10)
    receive("P", "HAM", 1)
    receive("B", "BER", 2)
    services.stock_reserve(order_id="o", lines=[ReserveLine("P", "BER", 3)], actor="c")
    # S (issue #15): BER on hand 10, 2 reserved, safety stock 1, 2 damaged, 1 in
    # quality control: 4 sellable, and only those move.
    ProductFactory(sku="S")
    receive("S", "BER", 10)
    services.stock_reserve(order_id="s", lines=[ReserveLine("S", "BER", 2)], actor="c")
    Inventory.objects.filter(product__sku="S", warehouse__code="BER").update(safety_stock=1)
    for to_state, quantity in (("damaged", 2), ("quality_control", 1)):
        services.stock_move_state(
            sku="S", warehouse="BER", from_state="sellable", to_state=to_state,
            quantity=quantity, reason="inspect", actor="u",
        )  # fmt: skip


def balances(sku):
    """(on hand, reserved) per warehouse; an empty row (0, 0) counts as none (a
    refused transfer may leave the destination's new, empty row behind)."""
    return {
        row.warehouse.code: (row.on_hand, row.reserved)
        for row in Inventory.objects.filter(product__sku=sku).select_related("warehouse")
        if (row.on_hand, row.reserved) != (0, 0)
    }


@pytest.mark.parametrize(("sku", "available"), [("P", 7), ("B", 2), ("S", 4)])
def test_service_transfers_exactly_the_available_stock_and_not_one_more(stock, sku, available):
    before = balances(sku)
    ledger = InventoryTransaction.objects.count()
    with pytest.raises(errors.InsufficientStock) as refused:
        services.stock_transfer(
            source="BER", destination="HAM", lines=[TransferLine(sku, available + 1)], actor="u"
        )
    assert refused.value.lines == [
        {"sku": sku, "warehouse": "BER", "requested": available + 1, "available": available}
    ]
    assert balances(sku) == before
    assert InventoryTransaction.objects.count() == ledger

    services.stock_transfer(
        source="BER", destination="HAM", lines=[TransferLine(sku, available)], actor="u"
    )
    after = balances(sku)
    # Nothing sellable left to move (available: on hand - reserved - safety stock
    # - damaged - quality control; issue #15).
    assert Inventory.objects.get(product__sku=sku, warehouse__code="BER").available == 0
    assert after["HAM"][0] == before.get("HAM", (0, 0))[0] + available
    with pytest.raises(errors.InsufficientStock):
        services.stock_transfer(
            source="BER", destination="HAM", lines=[TransferLine(sku, 1)], actor="u"
        )
    assert_invariants()


def test_api_transfers_exactly_the_available_stock_and_not_one_more(stock):
    operations = make_caller("wms", "operations")

    def transfer(quantity):
        return operations.post(
            "/api/v1/stock/transfer/",
            {"source": "BER", "destination": "HAM", "lines": [{"sku": "P", "quantity": quantity}]},
        )

    refused = transfer(8)
    assert refused.status_code == 409, refused.json()
    assert refused.json()["error"]["code"] == "insufficient_stock"
    assert balances("P") == {"BER": (10, 3), "HAM": (1, 0)}

    moved = transfer(7)
    assert moved.status_code == 201, moved.json()
    assert balances("P") == {"BER": (3, 3), "HAM": (8, 0)}
    assert transfer(1).status_code == 409
    assert_invariants()
