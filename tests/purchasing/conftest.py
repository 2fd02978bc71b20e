"""Purchasing fixtures: a supplier, stocked rows with reorder settings, purchase orders."""

import pytest

from inventory.models import Inventory
from purchasing.models import PurchaseOrder, PurchaseOrderLine
from tests.conftest import receive
from tests.factories import ProductFactory, WarehouseFactory

from .factories import ProductSupplierFactory, PurchaseOrderFactory, SupplierFactory


@pytest.fixture
def supplier(db):
    return SupplierFactory(name="Acme", lead_time_min_days=3, lead_time_max_days=5)


def stocked_row(
    sku: str,
    code: str,
    *,
    on_hand: int,
    threshold: int = 10,
    reorder_quantity: int = 50,
    supplier=None,
    pack_size: int = 1,
) -> Inventory:
    """An inventory row with `on_hand` units (received through the service), reorder
    settings, and (with `supplier`) that supplier as the product's preferred one."""
    product = ProductFactory(sku=sku)
    warehouse = WarehouseFactory(code=code)
    if on_hand:
        receive(sku, code, on_hand)
    row, _ = Inventory.objects.get_or_create(product=product, warehouse=warehouse)
    row.reorder_threshold = threshold
    row.reorder_quantity = reorder_quantity
    row.save(update_fields=["reorder_threshold", "reorder_quantity"])
    if supplier is not None and not product.supplier_links.filter(supplier=supplier).exists():
        ProductSupplierFactory(product=product, supplier=supplier, pack_size=pack_size)
    return row


def purchase_order(supplier, code: str, lines: dict[str, int], **kwargs) -> PurchaseOrder:
    """A manual purchase order to warehouse `code` with {sku: quantity ordered} lines."""
    warehouse = WarehouseFactory(code=code)
    po = PurchaseOrderFactory(supplier=supplier, warehouse=warehouse, **kwargs)
    for sku, quantity in lines.items():
        PurchaseOrderLine.objects.create(
            purchase_order=po,
            product=ProductFactory(sku=sku),
            warehouse=warehouse,
            quantity_ordered=quantity,
        )
    return po
