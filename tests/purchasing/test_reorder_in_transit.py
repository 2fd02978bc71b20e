"""The reorder rule counts units in transit on two-step transfers as incoming
(issue #15, item 3): a row a transfer brings back to its threshold is not
reordered, by the per-row check or the batch; one it does not is."""

import pytest

from inventory import services as stock
from inventory.services import TransferLine
from purchasing import services
from purchasing.models import PurchaseOrderLine

from .conftest import stocked_row

pytestmark = pytest.mark.django_db


def _ship_to_ber(units: int, transfer_id: str = "T-1"):
    return stock.transfer_ship(
        transfer_id=transfer_id,
        source="HAM",
        destination="BER",
        lines=[TransferLine("MUG", units)],
        actor="u",
    )


@pytest.mark.parametrize("path", ["check", "batch"])
@pytest.mark.parametrize(("in_transit", "reordered"), [(6, False), (9, False), (5, True)])
def test_units_in_transit_count_as_incoming(supplier, path, in_transit, reordered):
    row = stocked_row("MUG", "BER", on_hand=4, threshold=10, supplier=supplier)
    stocked_row("MUG", "HAM", on_hand=20, threshold=0, supplier=supplier)
    _ship_to_ber(in_transit)
    if path == "check":
        services.reorder_check(inventory_id=row.pk)
    else:
        services.reorder_batch()
    ordered = PurchaseOrderLine.objects.filter(warehouse_id=row.warehouse_id)
    assert ordered.exists() is reordered


def test_a_received_transfer_no_longer_counts_in_transit(supplier):
    row = stocked_row("MUG", "BER", on_hand=4, threshold=10, supplier=supplier)
    stocked_row("MUG", "HAM", on_hand=20, threshold=0, supplier=supplier)
    _ship_to_ber(6)
    # Arrived short: 4 + 2 = 6 on hand, below 10, and nothing in transit any more.
    stock.transfer_receive(transfer_id="T-1", actor="u", received={"MUG": 2}, reason="lost")
    assert services.reorder_check(inventory_id=row.pk) is not None


@pytest.mark.parametrize("path", ["check", "batch"])
@pytest.mark.parametrize(("damaged", "reordered"), [(0, False), (15, True)])
def test_a_row_full_of_damaged_stock_is_reordered(supplier, path, damaged, reordered):
    """Issue #15, item 5: the rule orders against good units. 20 on hand is above
    the threshold of 10; with 15 of them damaged, 5 can be sold and it is reordered."""
    row = stocked_row("MUG", "BER", on_hand=20, threshold=10, supplier=supplier)
    if damaged:
        stock.stock_move_state(
            sku="MUG", warehouse="BER", from_state="sellable", to_state="damaged",
            quantity=damaged, reason="crushed pallet", actor="user:dock",
        )  # fmt: skip
    if path == "check":
        services.reorder_check(inventory_id=row.pk)
    else:
        services.reorder_batch()
    ordered = PurchaseOrderLine.objects.filter(warehouse_id=row.warehouse_id)
    assert ordered.exists() is reordered
