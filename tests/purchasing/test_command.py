"""receive_purchase_order: the command-line edge of purchase_order_receive."""

import pytest
from django.core.management import CommandError, call_command

from inventory.models import Inventory, InventoryTransaction
from purchasing.models import (
    ProductSupplier,
    PurchaseOrderLine,
    PurchaseOrderStatus,
    Supplier,
)
from tests.factories import ProductFactory, WarehouseFactory

from .conftest import purchase_order

pytestmark = pytest.mark.django_db


def on_hand(sku: str) -> int:
    return Inventory.objects.get(product__sku=sku).on_hand


def test_receives_given_lines_then_everything_outstanding(supplier, capsys):
    po = purchase_order(supplier, "BER", {"MUG": 10, "CUP": 4})

    call_command("receive_purchase_order", po.number, "--line", "MUG=6", "--receipt-id", "DN-1")
    assert on_hand("MUG") == 6
    assert "received 6 x MUG" in capsys.readouterr().out

    call_command("receive_purchase_order", po.number)
    po.refresh_from_db()
    assert po.status == PurchaseOrderStatus.RECEIVED
    assert (on_hand("MUG"), on_hand("CUP")) == (10, 4)
    assert set(InventoryTransaction.objects.values_list("created_by", flat=True)) == {
        "system:command"
    }


def test_rerun_with_the_same_receipt_id_changes_nothing(supplier, capsys):
    po = purchase_order(supplier, "BER", {"MUG": 10})
    for _ in range(2):
        call_command("receive_purchase_order", po.number, "--line", "MUG=6", "--receipt-id", "DN-1")

    assert on_hand("MUG") == 6
    assert "already booked" in capsys.readouterr().out


def test_over_receipt_needs_the_flag(supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10})

    with pytest.raises(CommandError, match="over_receipt"):
        call_command("receive_purchase_order", po.number, "--line", "MUG=11")

    call_command("receive_purchase_order", po.number, "--line", "MUG=11", "--allow-over-receipt")
    assert on_hand("MUG") == 11


@pytest.mark.parametrize("line", ["MUG", "MUG=x", "=3"])
def test_malformed_lines_are_refused(supplier, line):
    po = purchase_order(supplier, "BER", {"MUG": 10})
    with pytest.raises(CommandError):
        call_command("receive_purchase_order", po.number, "--line", line)


def test_unknown_po(db):
    with pytest.raises(CommandError, match="not_found"):
        call_command("receive_purchase_order", "PO-NOPE")


def test_seed_demo_suppliers_links_demo_products_and_is_idempotent(db):
    warehouse = WarehouseFactory(code="BER")
    for n in range(4):
        Inventory.objects.create(
            product=ProductFactory(sku=f"DEMO-{n:06d}"),
            warehouse=warehouse,
            reorder_threshold=10,
            reorder_quantity=50,
        )

    call_command("seed_demo_suppliers")
    call_command("seed_demo_suppliers")

    assert Supplier.objects.count() == 3
    assert ProductSupplier.objects.filter(is_preferred=True).count() == 4
    assert PurchaseOrderLine.objects.count() == 4  # every empty row ordered, once
