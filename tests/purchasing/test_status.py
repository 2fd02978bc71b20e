"""Purchase order status changes: ordered (with arrival date) and cancelled."""

from datetime import date, timedelta

import pytest
from django.utils import timezone

from purchasing import errors, services
from purchasing.models import PurchaseOrderStatus

from .conftest import purchase_order

pytestmark = pytest.mark.django_db


def test_mark_ordered_sets_the_arrival_from_the_supplier_lead_time(supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10}, status=PurchaseOrderStatus.DRAFT)

    po = services.purchase_order_mark_ordered(purchase_order=po, actor="user:b")

    assert po.status == PurchaseOrderStatus.ORDERED
    assert po.ordered_at is not None
    assert po.expected_arrival_date == timezone.localdate() + timedelta(days=5)


def test_mark_ordered_keeps_a_given_arrival_date(supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10}, status=PurchaseOrderStatus.DRAFT)
    po = services.purchase_order_mark_ordered(
        purchase_order=po, actor="u", expected_arrival_date=date(2030, 1, 2)
    )
    assert po.expected_arrival_date == date(2030, 1, 2)


def test_only_drafts_with_lines_can_be_marked_ordered(supplier):
    ordered = purchase_order(supplier, "BER", {"MUG": 10})
    empty = purchase_order(supplier, "BER", {}, status=PurchaseOrderStatus.DRAFT)
    for po in (ordered, empty):
        with pytest.raises(errors.InvalidStatusChange):
            services.purchase_order_mark_ordered(purchase_order=po, actor="u")


def test_cancel_closes_lines_and_a_closed_po_cannot_be_cancelled(supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10})

    po = services.purchase_order_cancel(purchase_order=po, actor="u")

    assert po.status == PurchaseOrderStatus.CANCELLED
    assert not po.lines.filter(is_open=True).exists()
    with pytest.raises(errors.InvalidStatusChange):
        services.purchase_order_cancel(purchase_order=po, actor="u")


def test_sync_moves_a_draft_s_lines_to_its_new_destination(supplier):
    from tests.factories import WarehouseFactory

    po = purchase_order(supplier, "BER", {"MUG": 10}, status=PurchaseOrderStatus.DRAFT)
    po.warehouse = WarehouseFactory(code="HAM")
    po.save()

    services.purchase_order_sync(purchase_order=po)

    assert set(po.lines.values_list("warehouse__code", flat=True)) == {"HAM"}
    assert po.lines.get().is_open
