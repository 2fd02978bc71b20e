"""The daily batch: set-based, the same orders the per-row check would create, idempotent."""

import pytest

from purchasing import services
from purchasing.models import Origin, PurchaseOrder, PurchaseOrderLine
from tests.factories import WarehouseFactory

from .conftest import purchase_order, stocked_row
from .factories import SupplierFactory

pytestmark = pytest.mark.django_db


def _orders() -> set[tuple]:
    """What was ordered, independent of ids and PO numbers."""
    return set(
        PurchaseOrderLine.objects.values_list(
            "purchase_order__supplier__name",
            "purchase_order__warehouse__code",
            "purchase_order__status",
            "product__sku",
            "quantity_ordered",
            "origin",
        )
    )


def _scenario(supplier):
    other = SupplierFactory(name="Globex")
    stocked_row("MUG", "BER", on_hand=1, supplier=supplier)
    stocked_row("CUP", "BER", on_hand=0, supplier=supplier, pack_size=12, reorder_quantity=50)
    stocked_row("MUG", "HAM", on_hand=3, supplier=supplier)
    stocked_row("LAMP", "BER", on_hand=2, supplier=other)
    stocked_row("FULL", "BER", on_hand=40, supplier=supplier)  # above threshold
    stocked_row("NOSUP", "BER", on_hand=0)  # no supplier
    stocked_row("OFF", "BER", on_hand=0, threshold=0, supplier=supplier)  # no threshold
    stocked_row("COVERED", "BER", on_hand=0, supplier=supplier)
    purchase_order(supplier, "BER", {"COVERED": 7})
    closed = stocked_row("SHUT", "OLD", on_hand=0, supplier=supplier)
    WarehouseFactory(code="OLD").__class__.objects.filter(pk=closed.warehouse_id).update(
        is_active=False
    )


EXPECTED = {
    ("Acme", "BER", "draft", "MUG", 50, "reorder"),
    ("Acme", "BER", "draft", "CUP", 60, "reorder"),
    ("Acme", "HAM", "draft", "MUG", 50, "reorder"),
    ("Globex", "BER", "draft", "LAMP", 50, "reorder"),
    ("Acme", "BER", "ordered", "COVERED", 7, "manual"),
}


def test_batch_orders_every_row_below_threshold_grouped_per_supplier_and_warehouse(supplier):
    _scenario(supplier)

    result = services.reorder_batch()

    assert _orders() == EXPECTED
    assert (result.candidates, result.lines_created, result.orders_created) == (4, 4, 3)
    assert PurchaseOrder.objects.filter(origin=Origin.REORDER).count() == 3
    assert all(
        po.created_by == "system:reorder" for po in PurchaseOrder.objects.filter(origin="reorder")
    )
    # Numbered from the same sequence as orders made in Python: consecutive, after them.
    numbers = sorted(
        int(n.removeprefix("PO-"))
        for n in PurchaseOrder.objects.filter(origin="reorder").values_list("number", flat=True)
    )
    assert numbers == list(range(numbers[0], numbers[0] + 3))
    following = services.new_purchase_order_number()
    assert int(following.removeprefix("PO-")) == numbers[-1] + 1


def test_batch_creates_the_same_orders_as_per_row_checks(supplier):
    _scenario(supplier)
    from inventory.models import Inventory

    for row_id in Inventory.objects.values_list("id", flat=True):
        services.reorder_check(inventory_id=row_id)

    assert _orders() == EXPECTED


def test_second_batch_creates_nothing(supplier):
    _scenario(supplier)
    services.reorder_batch()
    before = (PurchaseOrder.objects.count(), PurchaseOrderLine.objects.count())

    again = services.reorder_batch()

    assert (again.lines_created, again.orders_created) == (0, 0)
    assert (PurchaseOrder.objects.count(), PurchaseOrderLine.objects.count()) == before


def _last_po_number() -> int:
    """The sequence's last value, read without drawing a number."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT last_value FROM purchasing_po_number")
        return cursor.fetchone()[0]


def test_a_batch_over_groups_that_have_drafts_takes_no_numbers(supplier):
    _scenario(supplier)
    services.reorder_batch()
    last = max(
        int(n.removeprefix("PO-"))
        for n in PurchaseOrder.objects.filter(origin="reorder").values_list("number", flat=True)
    )
    # New rows below threshold, all in groups (supplier, warehouse) that have a draft.
    stocked_row("BOWL", "BER", on_hand=0, supplier=supplier)
    stocked_row("BOWL", "HAM", on_hand=0, supplier=supplier)
    stocked_row("BULB", "BER", on_hand=0, supplier=SupplierFactory(name="Globex"))

    again = services.reorder_batch()
    third = services.reorder_batch()

    assert (again.lines_created, again.orders_created) == (3, 0)
    assert (third.lines_created, third.orders_created) == (0, 0)
    assert _last_po_number() == last
    assert services.new_purchase_order_number() == f"PO-{last + 1:06d}"


def test_batch_adds_to_an_existing_reorder_draft_and_skips_rows_a_check_ordered(supplier):
    mug = stocked_row("MUG", "BER", on_hand=1, supplier=supplier)
    stocked_row("CUP", "BER", on_hand=1, supplier=supplier)
    draft = services.reorder_check(inventory_id=mug.pk).purchase_order

    before = _last_po_number()

    result = services.reorder_batch()

    assert (result.lines_created, result.orders_created) == (1, 0)
    assert set(draft.lines.values_list("product__sku", flat=True)) == {"MUG", "CUP"}
    assert _last_po_number() == before  # the draft existed: no number drawn


def test_small_chunks_walk_the_whole_table(supplier):
    for n in range(7):
        stocked_row(f"S{n}", "BER", on_hand=0, supplier=supplier)
        stocked_row(f"S{n}", "HAM", on_hand=0, supplier=supplier)

    result = services.reorder_batch(chunk_size=3)

    assert result.chunks == 5  # 14 rows in ranges of 3
    assert result.lines_created == 14
    assert result.orders_created == 2
    assert PurchaseOrder.objects.count() == 2


@pytest.mark.parametrize("chunk_size", [0, -5, 2.5])
def test_chunk_size_must_be_positive(db, chunk_size):
    from inventory.errors import InvalidInput

    with pytest.raises(InvalidInput):
        services.reorder_batch(chunk_size=chunk_size)
