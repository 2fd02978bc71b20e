"""Reorder checks racing each other and the batch, on real rows with real commits.

Each thread has its own PostgreSQL connection; the database's partial unique
indexes decide who orders.
"""

import pytest

from purchasing import services
from purchasing.models import PurchaseOrder, PurchaseOrderLine
from tests.concurrency.test_races import run_concurrently

from .conftest import stocked_row
from .factories import SupplierFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_concurrent_checks_of_one_row_create_one_line():
    supplier = SupplierFactory(name="Acme")
    row = stocked_row("MUG", "BER", on_hand=1, supplier=supplier)

    results = run_concurrently(2, lambda i: services.reorder_check(inventory_id=row.pk))

    assert not [r for r in results if isinstance(r, Exception)]
    assert sum(r is not None for r in results) == 1
    assert PurchaseOrderLine.objects.count() == 1
    assert PurchaseOrder.objects.count() == 1


def test_many_checks_of_many_rows_share_one_draft_and_order_each_row_once():
    supplier = SupplierFactory(name="Acme")
    rows = [stocked_row(f"S{n}", "BER", on_hand=0, supplier=supplier) for n in range(4)]

    # 12 threads: each row checked by 3 threads at once.
    results = run_concurrently(12, lambda i: services.reorder_check(inventory_id=rows[i % 4].pk))

    assert not [r for r in results if isinstance(r, Exception)]
    assert sum(r is not None for r in results) == 4
    assert PurchaseOrder.objects.count() == 1
    assert sorted(PurchaseOrderLine.objects.values_list("product__sku", flat=True)) == [
        "S0",
        "S1",
        "S2",
        "S3",
    ]


def test_batch_racing_checks_orders_each_row_once_and_leaves_no_empty_draft():
    supplier = SupplierFactory(name="Acme")
    rows = [stocked_row(f"S{n}", "BER", on_hand=0, supplier=supplier) for n in range(6)]

    def work(i):
        if i == 0:
            return services.reorder_batch(chunk_size=2)
        return services.reorder_check(inventory_id=rows[i - 1].pk)

    results = run_concurrently(7, work)

    assert not [r for r in results if isinstance(r, Exception)]
    assert PurchaseOrderLine.objects.count() == 6
    assert PurchaseOrder.objects.count() == 1
    assert PurchaseOrder.objects.get().lines.count() == 6


def test_the_same_delivery_booked_by_four_threads_at_once_is_booked_once():
    from inventory.models import Inventory, InventoryTransaction
    from tests.conftest import assert_invariants

    from .conftest import purchase_order

    po = purchase_order(SupplierFactory(name="Acme"), "BER", {"MUG": 10})

    results = run_concurrently(
        4,
        lambda i: services.purchase_order_receive(
            purchase_order=po.number,
            actor="u",
            lines=[services.ReceiptLine("MUG", 6)],
            receipt_id="DN-1",
        ),
    )

    assert not [r for r in results if isinstance(r, Exception)]
    assert sorted(r.replayed for r in results) == [False, True, True, True]
    assert Inventory.objects.get(product__sku="MUG").on_hand == 6
    assert InventoryTransaction.objects.count() == 1
    assert_invariants()


def test_receipts_and_orders_touching_the_same_rows_in_any_line_order_never_deadlock():
    from inventory import services as stock
    from inventory.services import ReserveLine
    from tests.conftest import assert_invariants, receive
    from tests.factories import ProductFactory, WarehouseFactory

    from .conftest import purchase_order

    supplier = SupplierFactory(name="Acme")
    skus = ["A", "B", "C"]
    WarehouseFactory(code="BER")
    for sku in skus:
        ProductFactory(sku=sku)
        receive(sku, "BER", 100)
    # Lines created in opposite orders on alternate POs.
    pos = [
        purchase_order(supplier, "BER", {sku: 5 for sku in (skus if n % 2 else skus[::-1])})
        for n in range(4)
    ]

    def work(i):
        if i < 4:
            return services.purchase_order_receive(purchase_order=pos[i].number, actor="u")
        lines = [ReserveLine(sku, "BER", 1) for sku in (skus if i % 2 else skus[::-1])]
        return stock.stock_reserve(order_id=f"o-{i}", lines=lines, actor="c")

    results = run_concurrently(8, work)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert_invariants()
