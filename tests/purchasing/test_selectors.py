"""ships_in_days_for_products: earliest open PO's arrival, else the supplier's lead time."""

from datetime import date

import pytest

from purchasing import services
from purchasing.models import PurchaseOrderStatus
from purchasing.selectors import ships_in_days_for_products
from tests.factories import ProductFactory

from .conftest import purchase_order
from .factories import ProductSupplierFactory, SupplierFactory

pytestmark = pytest.mark.django_db

TODAY = date(2026, 11, 27)


def test_earliest_open_po_arrival_wins(supplier):
    mug = ProductFactory(sku="MUG")
    purchase_order(supplier, "BER", {"MUG": 5}, expected_arrival_date=date(2026, 12, 7))
    purchase_order(supplier, "HAM", {"MUG": 5}, expected_arrival_date=date(2026, 11, 30))

    assert ships_in_days_for_products([mug.pk], today=TODAY) == {mug.pk: {"min": 3, "max": 3}}


def test_overdue_po_ships_in_zero_days(supplier):
    mug = ProductFactory(sku="MUG")
    purchase_order(supplier, "BER", {"MUG": 5}, expected_arrival_date=date(2026, 11, 20))

    assert ships_in_days_for_products([mug.pk], today=TODAY)[mug.pk] == {"min": 0, "max": 0}


def test_draft_without_date_uses_its_supplier_lead_time():
    slow = SupplierFactory(name="Slow", lead_time_min_days=10, lead_time_max_days=14)
    mug = ProductFactory(sku="MUG")
    purchase_order(slow, "BER", {"MUG": 5}, status=PurchaseOrderStatus.DRAFT)

    assert ships_in_days_for_products([mug.pk], today=TODAY)[mug.pk] == {"min": 10, "max": 14}


def test_no_open_po_falls_back_to_the_preferred_supplier_lead_time(supplier):
    mug = ProductFactory(sku="MUG")
    ProductSupplierFactory(product=mug, supplier=supplier)
    slow = SupplierFactory(name="Slow", lead_time_min_days=10, lead_time_max_days=14)
    ProductSupplierFactory(product=mug, supplier=slow, is_preferred=False)

    assert ships_in_days_for_products([str(mug.pk)], today=TODAY) == {mug.pk: {"min": 3, "max": 5}}


def test_received_or_cancelled_pos_do_not_count(supplier):
    mug = ProductFactory(sku="MUG")
    done = purchase_order(supplier, "BER", {"MUG": 5}, expected_arrival_date=date(2026, 11, 28))
    services.purchase_order_receive(purchase_order=done, actor="u")
    gone = purchase_order(supplier, "BER", {"MUG": 5}, expected_arrival_date=date(2026, 11, 28))
    services.purchase_order_cancel(purchase_order=gone, actor="u")

    assert ships_in_days_for_products([mug.pk], today=TODAY) == {}


def test_products_without_po_or_supplier_are_absent_and_queries_are_bounded(
    supplier, django_assert_max_num_queries
):
    products = [ProductFactory(sku=f"P{n}") for n in range(20)]
    for p in products[:10]:
        ProductSupplierFactory(product=p, supplier=supplier)

    with django_assert_max_num_queries(2):
        result = ships_in_days_for_products([p.pk for p in products], today=TODAY)

    assert set(result) == {p.pk for p in products[:10]}
    assert ships_in_days_for_products([], today=TODAY) == {}
