"""The per-row reorder check: the rule, pack sizes, grouping and idempotency."""

import pytest

from purchasing import services
from purchasing.models import Origin, PurchaseOrder, PurchaseOrderLine, PurchaseOrderStatus
from tests.factories import WarehouseFactory

from .conftest import purchase_order, stocked_row
from .factories import ProductSupplierFactory, SupplierFactory

pytestmark = pytest.mark.django_db


def test_row_below_threshold_gets_a_line_on_a_draft_reorder_po(supplier):
    row = stocked_row("MUG", "BER", on_hand=4, threshold=10, reorder_quantity=50, supplier=supplier)

    line = services.reorder_check(inventory_id=row.pk)

    assert line is not None
    assert (line.product_id, line.warehouse_id) == (row.product_id, row.warehouse_id)
    assert (line.quantity_ordered, line.quantity_received) == (50, 0)
    assert line.origin == Origin.REORDER and line.is_open
    po = line.purchase_order
    assert (po.supplier, po.warehouse_id) == (supplier, row.warehouse_id)
    assert (po.status, po.origin, po.created_by) == ("draft", "reorder", "system:reorder")
    assert po.number.startswith("PO-")


@pytest.mark.parametrize(
    ("on_hand", "threshold", "reorder_quantity"),
    [
        (10, 10, 50),  # at the threshold: not below it
        (11, 10, 50),
        (0, 0, 50),  # no threshold: never reordered
        (0, 10, 0),  # nothing to order
    ],
)
def test_rows_not_below_threshold_or_without_settings_get_nothing(
    supplier, on_hand, threshold, reorder_quantity
):
    row = stocked_row(
        "MUG",
        "BER",
        on_hand=on_hand,
        threshold=threshold,
        reorder_quantity=reorder_quantity,
        supplier=supplier,
    )

    assert services.reorder_check(inventory_id=row.pk) is None
    assert not PurchaseOrderLine.objects.exists()
    assert not PurchaseOrder.objects.exists()


def test_reserved_stock_does_not_count_only_on_hand_does(supplier):
    # 12 on hand, 10 of them reserved: available is 2 but on hand is above the threshold.
    from inventory import services as stock
    from inventory.services import ReserveLine

    row = stocked_row("MUG", "BER", on_hand=12, threshold=10, supplier=supplier)
    stock.stock_reserve(order_id="o-1", lines=[ReserveLine("MUG", "BER", 10)], actor="c")

    assert services.reorder_check(inventory_id=row.pk) is None


def test_pack_size_rounds_the_reorder_quantity_up_to_whole_packs(supplier):
    row = stocked_row(
        "MUG", "BER", on_hand=0, threshold=10, reorder_quantity=50, supplier=supplier, pack_size=12
    )

    line = services.reorder_check(inventory_id=row.pk)

    assert line.quantity_ordered == 60  # 5 packs of 12


def test_exact_multiple_of_the_pack_size_is_not_rounded(supplier):
    row = stocked_row(
        "MUG", "BER", on_hand=0, threshold=10, reorder_quantity=48, supplier=supplier, pack_size=12
    )
    assert services.reorder_check(inventory_id=row.pk).quantity_ordered == 48


def test_lines_of_one_supplier_and_warehouse_share_one_draft_po(supplier):
    other = SupplierFactory(name="Globex")
    rows = [
        stocked_row("MUG", "BER", on_hand=1, supplier=supplier),
        stocked_row("CUP", "BER", on_hand=1, supplier=supplier),
        stocked_row("MUG", "HAM", on_hand=1, supplier=supplier),
        stocked_row("LAMP", "BER", on_hand=1, supplier=other),
    ]

    lines = [services.reorder_check(inventory_id=row.pk) for row in rows]

    assert all(lines)
    assert lines[0].purchase_order == lines[1].purchase_order
    assert lines[2].purchase_order != lines[0].purchase_order  # other warehouse
    assert lines[3].purchase_order != lines[0].purchase_order  # other supplier
    assert PurchaseOrder.objects.count() == 3
    assert PurchaseOrder.objects.get(pk=lines[0].purchase_order_id).lines.count() == 2


def test_checking_twice_orders_once(supplier):
    row = stocked_row("MUG", "BER", on_hand=1, supplier=supplier)

    first = services.reorder_check(inventory_id=row.pk)
    second = services.reorder_check(inventory_id=row.pk)

    assert first is not None and second is None
    assert PurchaseOrderLine.objects.count() == 1
    assert PurchaseOrder.objects.count() == 1


def test_an_open_manual_po_line_covers_the_row(supplier):
    row = stocked_row("MUG", "BER", on_hand=1, supplier=supplier)
    purchase_order(supplier, "BER", {"MUG": 5})

    assert services.reorder_check(inventory_id=row.pk) is None
    assert PurchaseOrderLine.objects.filter(origin=Origin.REORDER).count() == 0


def test_a_line_for_another_warehouse_does_not_cover_the_row(supplier):
    row = stocked_row("MUG", "BER", on_hand=1, supplier=supplier)
    purchase_order(supplier, "HAM", {"MUG": 5})

    assert services.reorder_check(inventory_id=row.pk) is not None


def test_once_the_draft_is_ordered_new_lines_go_to_a_new_draft(supplier):
    first_row = stocked_row("MUG", "BER", on_hand=1, supplier=supplier)
    first = services.reorder_check(inventory_id=first_row.pk)
    services.purchase_order_mark_ordered(purchase_order=first.purchase_order, actor="user:b")

    second = services.reorder_check(
        inventory_id=stocked_row("CUP", "BER", on_hand=1, supplier=supplier).pk
    )

    assert second.purchase_order != first.purchase_order
    assert second.purchase_order.status == PurchaseOrderStatus.DRAFT
    # The ordered PO's line still covers MUG.
    assert services.reorder_check(inventory_id=first_row.pk) is None


def test_cancelled_po_no_longer_covers_the_row(supplier):
    row = stocked_row("MUG", "BER", on_hand=1, supplier=supplier)
    first = services.reorder_check(inventory_id=row.pk)
    services.purchase_order_cancel(purchase_order=first.purchase_order, actor="user:b")

    again = services.reorder_check(inventory_id=row.pk)

    assert again is not None and again.purchase_order != first.purchase_order


def test_fully_received_line_frees_the_row_for_the_next_reorder(supplier):
    row = stocked_row("MUG", "BER", on_hand=1, threshold=100, supplier=supplier)
    first = services.reorder_check(inventory_id=row.pk)
    services.purchase_order_receive(purchase_order=first.purchase_order, actor="user:b")
    first.refresh_from_db()
    assert not first.is_open

    # Still below 100 after receiving 50: the next check orders again.
    again = services.reorder_check(inventory_id=row.pk)
    assert again is not None and again.pk != first.pk


def test_no_preferred_supplier_means_no_order(supplier):
    row = stocked_row("MUG", "BER", on_hand=1)
    ProductSupplierFactory(product=row.product, supplier=supplier, is_preferred=False)

    assert services.reorder_check(inventory_id=row.pk) is None


def test_inactive_supplier_or_warehouse_gets_no_order(supplier):
    row = stocked_row("MUG", "BER", on_hand=1, supplier=supplier)
    supplier.is_active = False
    supplier.save()
    assert services.reorder_check(inventory_id=row.pk) is None

    supplier.is_active = True
    supplier.save()
    WarehouseFactory(code="BER").__class__.objects.filter(code="BER").update(is_active=False)
    assert services.reorder_check(inventory_id=row.pk) is None
    assert not PurchaseOrderLine.objects.exists()


def test_unknown_inventory_id_is_a_no_op(db):
    import uuid

    assert services.reorder_check(inventory_id=uuid.uuid4()) is None
