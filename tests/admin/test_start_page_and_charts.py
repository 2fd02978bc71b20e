"""The start page (what needs attention, today's movements) and the product stock chart."""

import re

from django.urls import reverse

from inventory import services
from inventory.models import Inventory

from ..conftest import receive
from ..factories import ProductFactory


def test_start_page_lists_rows_below_threshold(buyer_client, staff_client, stocked):
    Inventory.objects.filter(product__sku="B-2", warehouse__code="BER").update(reorder_threshold=25)
    # Purchasing's job (issue 19): not on the warehouse staff's start page.
    assert b'id="below-threshold"' not in staff_client.get(reverse("admin:index")).content
    page = buyer_client.get(reverse("admin:index"))

    assert page.context["below_threshold_count"] == 1
    assert [(r.product.sku, r.warehouse.code) for r in page.context["below_threshold"]] == [
        ("B-2", "BER")
    ]
    assert b"PURCHASING PANEL" not in page.content  # the marked spot is a template comment


def test_start_page_lists_large_adjustments_only(staff_client, stocked):
    services.stock_adjust(sku="C-3", warehouse="BER", counted=12, reason="flood", actor="user:a")
    services.stock_adjust(sku="A-1", warehouse="BER", counted=9, reason="miscount", actor="user:a")
    page = staff_client.get(reverse("admin:index"))

    assert [(t.product.sku, t.on_hand_delta) for t in page.context["large_adjustments"]] == [
        ("C-3", -18)
    ]
    assert b"flood" in page.content


def test_start_page_charts_todays_movements_by_type(staff_client, stocked):
    services.stock_transfer(
        source="BER", destination="HAM", lines=[services.TransferLine("B-2", 4)], actor="u"
    )
    page = staff_client.get(reverse("admin:index"))
    bars = dict(re.findall(rb'data-label="(\w+)" data-value="(\d+)"', page.content))

    # Received 10 + 20 + 30 + 5; a transfer is two rows of 4 units.
    assert bars[b"RECEIVE"] == b"65"
    assert bars[b"TRANSFER"] == b"8"
    assert bars[b"ADJUST"] == b"0"
    assert b"<svg" in page.content


def test_product_page_charts_stock_per_warehouse_from_the_ledger(manager_client, stocked):
    services.stock_reserve(
        order_id="o-1", lines=[services.ReserveLine("A-1", "BER", 4)], actor="client:shop"
    )
    receive("A-1", "BER", 6)
    product = stocked and Inventory.objects.get(product__sku="A-1", warehouse__code="BER").product
    page = manager_client.get(reverse("admin:inventory_product_change", args=[product.pk]))

    histories = {h.warehouse_code: h for h in page.context["stock_history"]}
    assert set(histories) == {"BER", "HAM"}
    assert (histories["BER"].on_hand, histories["BER"].reserved, histories["BER"].movements) == (
        16,
        4,
        3,
    )
    chart = str(histories["BER"].chart)
    assert chart.count("<polyline") == 3
    assert "on hand: 16" in chart and "reserved: 4" in chart and "available: 12" in chart
    # One step per movement: start point, then two points per change, then "now".
    on_hand_points = re.search(r'data-series="on hand"[^>]*points="([^"]+)"', chart).group(1)
    assert len(on_hand_points.split()) == 1 + 2 * 3 + 1
    assert b'id="stock-history"' in page.content


def test_chart_text_is_escaped(manager_client, warehouse):
    product = ProductFactory(sku="X-1", name="<script>alert(1)</script>")
    warehouse.name = "<b>Berlin</b>"
    warehouse.save()
    receive("X-1", "BER", 1)
    page = manager_client.get(reverse("admin:inventory_product_change", args=[product.pk]))

    assert b"<b>Berlin</b>" not in page.content
    assert b"&lt;b&gt;Berlin&lt;/b&gt;" in page.content
    assert b"<script>alert(1)" not in page.content


def test_start_page_lists_open_purchase_orders_due_for_purchasing_only(
    buyer_client, staff_client, stocked
):
    import datetime

    from django.utils import timezone

    from ..purchasing.factories import PurchaseOrderFactory, SupplierFactory

    today = timezone.now().date()
    supplier = SupplierFactory(name="Acme")
    late = PurchaseOrderFactory(
        number="PO-LATE",
        supplier=supplier,
        expected_arrival_date=today - datetime.timedelta(days=2),
    )
    PurchaseOrderFactory(
        number="PO-SOON",
        supplier=supplier,
        expected_arrival_date=today + datetime.timedelta(days=3),
    )
    PurchaseOrderFactory(
        number="PO-LATER",
        supplier=supplier,
        expected_arrival_date=today + datetime.timedelta(days=30),
    )
    PurchaseOrderFactory(
        number="PO-DONE",
        supplier=supplier,
        status="received",
        expected_arrival_date=today,
    )

    page = buyer_client.get(reverse("admin:index"))
    assert [po.number for po in page.context["purchase_orders_due"]] == ["PO-LATE", "PO-SOON"]
    panel = page.content.decode().split('id="purchase-orders-due"')[1].split("</div>")[0]
    assert late.number in panel and "overdue" in panel
    assert "PO-LATER" not in panel

    assert b'id="purchase-orders-due"' not in staff_client.get(reverse("admin:index")).content


def test_staff_start_page_says_what_to_do_today(staff_user, staff_client, stocked):
    """Deliveries due today/overdue at my warehouses, counts due (oldest first)."""
    import datetime

    from django.utils import timezone

    from backoffice.models import StaffWarehouse
    from inventory import clock
    from warehouses.models import Warehouse

    from ..purchasing.factories import PurchaseOrderFactory, SupplierFactory

    StaffWarehouse.objects.filter(user=staff_user, warehouse__code="HAM").delete()
    today = timezone.now().date()
    supplier = SupplierFactory(name="Acme")
    ber, ham = Warehouse.objects.get(code="BER"), Warehouse.objects.get(code="HAM")
    for number, site, days, status in [
        ("PO-LATE", ber, -2, "ordered"),
        ("PO-TODAY", ber, 0, "partially_received"),
        ("PO-TOMORROW", ber, 1, "ordered"),
        ("PO-HAMBURG", ham, 0, "ordered"),
        ("PO-DRAFT", ber, 0, "draft"),
    ]:
        PurchaseOrderFactory(
            number=number,
            supplier=supplier,
            warehouse=site,
            status=status,
            expected_arrival_date=today + datetime.timedelta(days=days),
        )
    Warehouse.objects.filter(code="BER").update(count_every_days=30)
    now = clock.now()
    Inventory.objects.filter(product__sku="A-1", warehouse=ber).update(
        last_counted_at=now - datetime.timedelta(days=40)
    )
    Inventory.objects.filter(product__sku="B-2", warehouse=ber).update(
        last_counted_at=now - datetime.timedelta(days=5)
    )

    page = staff_client.get(reverse("admin:index"))

    assert [po.number for po in page.context["deliveries_due"]] == ["PO-LATE", "PO-TODAY"]
    # C-3 never counted comes first, then A-1 (40 days); B-2 was counted 5 days ago.
    assert [(r.product.sku, r.warehouse.code) for r in page.context["counts_due"]] == [
        ("C-3", "BER"),
        ("A-1", "BER"),
    ]
    assert page.context["counts_due_count"] == 2
    text = page.content.decode()
    assert 'id="deliveries-due"' in text and "overdue" in text
    assert reverse("admin:purchasing_purchaseorder_receive", args=[1]).split("1/")[0] in text
    assert 'id="purchase-orders-due"' not in text and 'id="below-threshold"' not in text
    # The count link opens a count sheet for that row.
    sheet = staff_client.get(
        reverse("admin:backoffice_cycle_count"), {"warehouse": "BER", "sku": "C-3"}
    )
    assert sheet.context["formset"].forms[0]["sku"].value() == "C-3"
    assert sheet.context["form"]["warehouse"].value() == "BER"
