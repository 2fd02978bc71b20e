"""The warehouse floor (issue 19), server side: scan lookups, SKUs in any case and
barcodes in every line form, scanned direct receipts, and receiving purchase orders at
the dock (warehouse staff, zero start, pagination, close short)."""

import pytest
from django.urls import reverse

from backoffice.models import StaffWarehouse
from backoffice.roles import WAREHOUSE_STAFF
from inventory.models import Inventory, InventoryTransaction, Product, TransactionType
from purchasing import services as purchasing
from purchasing.models import PurchaseOrderLine, PurchaseOrderReceipt, PurchaseOrderStatus
from purchasing.services import ReceiptLine

from ..factories import ProductFactory, StaffUserFactory
from ..purchasing.factories import PurchaseOrderFactory, SupplierFactory
from .conftest import _client_for, message_texts, on_hand

LOOKUP = reverse("admin:backoffice_lookup")
COUNT = reverse("admin:backoffice_cycle_count")
RECEIVE = reverse("admin:backoffice_receive")


def lines_data(lines, prefix="lines"):
    data = {f"{prefix}-TOTAL_FORMS": str(len(lines)), f"{prefix}-INITIAL_FORMS": "0"}
    for index, (sku, quantity) in enumerate(lines):
        data[f"{prefix}-{index}-sku"] = sku
        data[f"{prefix}-{index}-quantity"] = str(quantity)
    return data


# --- Lookups and codes -------------------------------------------------------------


def test_lookup_finds_a_sku_in_any_case_or_by_barcode(staff_client, stocked):
    Product.objects.filter(sku="B-2").update(barcode="4006381333931")
    assert staff_client.get(LOOKUP, {"code": "a-1"}).json()["sku"] == "A-1"
    assert staff_client.get(LOOKUP, {"code": "4006381333931"}).json()["sku"] == "B-2"
    unknown = staff_client.get(LOOKUP, {"code": "ZZZ"})
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "unknown_sku"


def test_lookup_needs_a_back_office_permission(no_role_client, stocked):
    assert no_role_client.get(LOOKUP, {"code": "A-1"}).status_code == 403


def test_barcodes_are_unique_but_many_products_have_none(db):
    ProductFactory(sku="X-1", barcode=None)
    ProductFactory(sku="X-2", barcode=None)
    ProductFactory(sku="X-3", barcode="123")
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        ProductFactory(sku="X-4", barcode="123")


def test_cycle_count_takes_skus_in_any_case_and_barcodes(staff_client, stocked):
    Product.objects.filter(sku="C-3").update(barcode="999000")
    data = {"warehouse": "BER", "step": "preview", **lines_data([("a-1", 7), ("999000", 30)])}
    response = staff_client.post(COUNT, data)
    assert [row["sku"] for row in response.context["preview"]] == ["A-1", "C-3"]


def test_an_unknown_sku_is_an_error_on_its_row_and_nothing_is_previewed(staff_client, stocked):
    data = {"warehouse": "BER", "step": "preview", **lines_data([("A-1", 7), ("NOPE", 1)])}
    response = staff_client.post(COUNT, data)
    assert "preview" not in response.context
    formset = response.context["formset"]
    assert formset.forms[1].errors["sku"] == ["Unknown SKU or barcode."]
    assert not formset.forms[0].errors
    assert any("NOPE" in text for text in message_texts(response))


def test_two_spellings_of_one_sku_are_refused(staff_client, stocked):
    data = {"warehouse": "BER", "step": "preview", **lines_data([("A-1", 7), ("a-1", 1)])}
    response = staff_client.post(COUNT, data)
    assert "preview" not in response.context
    assert any("list it once" in text for text in message_texts(response))


def test_a_confirmed_count_stamps_the_rows_counted(staff_client, stocked):
    data = {"warehouse": "BER", "step": "preview", **lines_data([("A-1", 10), ("B-2", 19)])}
    preview = staff_client.post(COUNT, data)
    payload = preview.context["confirm_form"].initial["payload"]
    staff_client.post(COUNT, {"step": "confirm", "payload": payload, "reason": "weekly"})
    stamped = Inventory.objects.filter(warehouse__code="BER", last_counted_at__isnull=False)
    assert sorted(stamped.values_list("product__sku", flat=True)) == ["A-1", "B-2"]


# --- Direct receipt of scanned lines -----------------------------------------------


def receive_lines(lines, **extra):
    return {
        "warehouse": "BER",
        "token": "4b4f7c0e-8d0e-4c59-9f0e-1d2a3b4c5d6e",
        "delivery_note": "DN-9",
        "reason": "",
        "step": "preview",
        **lines_data(lines),
        **extra,
    }


def test_scanned_receipt_previews_then_books_all_lines_once(staff_client, stocked):
    preview = staff_client.post(RECEIVE, receive_lines([("a-1", 3), ("B-2", 2)]))
    assert [row["after"] for row in preview.context["preview"]] == [13, 22]
    assert on_hand("A-1", "BER") == 10  # nothing booked before the confirmation
    payload = preview.context["confirm_form"].initial["payload"]
    confirm = {"step": "confirm", "payload": payload}

    done = staff_client.post(RECEIVE, confirm)
    again = staff_client.post(RECEIVE, confirm)

    assert done.status_code == again.status_code == 302
    assert (on_hand("A-1", "BER"), on_hand("B-2", "BER")) == (13, 22)
    rows = InventoryTransaction.objects.filter(type=TransactionType.RECEIVE, reference_id="DN-9")
    assert rows.count() == 2
    assert {row.created_by for row in rows} == {"user:wanda"}
    assert any("already saved" in text for text in message_texts(again))


def test_receive_page_remembers_the_last_warehouse(staff_client, stocked):
    staff_client.post(RECEIVE, receive_lines([("A-1", 1)], warehouse="HAM"))
    page = staff_client.get(RECEIVE)
    assert page.context["form"]["warehouse"].value() == "HAM"


def test_scanned_receipt_with_an_unknown_sku_books_nothing(staff_client, stocked):
    response = staff_client.post(RECEIVE, receive_lines([("A-1", 3), ("NOPE", 2)]))
    assert response.status_code == 200 and "preview" not in response.context
    assert on_hand("A-1", "BER") == 10


# --- Purchase orders at the dock ---------------------------------------------------


@pytest.fixture
def orders(stocked, warehouse, other_warehouse):
    supplier = SupplierFactory(name="Acme")
    made = {}
    for code, site in (("BER", warehouse), ("HAM", other_warehouse)):
        po = PurchaseOrderFactory(
            supplier=supplier, warehouse=site, status=PurchaseOrderStatus.ORDERED
        )
        for sku, quantity in (("A-1", 10), ("B-2", 5)):
            PurchaseOrderLine.objects.create(
                purchase_order=po,
                product=Product.objects.get(sku=sku),
                warehouse=site,
                quantity_ordered=quantity,
            )
        made[code] = po
    return made


@pytest.fixture
def berlin_clerk(roles, warehouse):
    """Warehouse staff working at BER only."""
    clerk = StaffUserFactory(username="wes", groups=[WAREHOUSE_STAFF])
    StaffWarehouse.objects.create(user=clerk, warehouse=warehouse)
    return _client_for(clerk)


def receive_url(po):
    return reverse("admin:purchasing_purchaseorder_receive", args=[po.pk])


def test_warehouse_staff_see_and_receive_orders_of_their_warehouses_only(berlin_clerk, orders):
    changelist = berlin_clerk.get(reverse("admin:purchasing_purchaseorder_changelist"))
    assert changelist.status_code == 200
    assert [po.number for po in changelist.context["cl"].result_list] == [orders["BER"].number]
    assert berlin_clerk.get(receive_url(orders["BER"])).status_code == 200
    assert berlin_clerk.get(receive_url(orders["HAM"])).status_code == 403
    # View, not edit: the change page is read-only and posting to it is refused.
    change = reverse("admin:purchasing_purchaseorder_change", args=[orders["BER"].pk])
    assert berlin_clerk.get(change).context["has_change_permission"] is False
    assert berlin_clerk.post(change, {"notes": "x"}).status_code == 403


def test_receive_page_starts_at_zero_and_pages_large_orders(manager_client, orders):
    po = orders["BER"]
    for n in range(150):
        PurchaseOrderLine.objects.create(
            purchase_order=po,
            product=ProductFactory(sku=f"BULK-{n:03d}"),
            warehouse=po.warehouse,
            quantity_ordered=3,
        )
    page = manager_client.get(receive_url(po))
    assert len(page.context["page"].object_list) == 100
    assert page.context["totals"]["outstanding"] == 15 + 450
    # Nothing prefilled: no quantity input holds a number.
    assert all(not form["quantity"].value() for form in page.context["formset"].forms)
    second = manager_client.get(receive_url(po), {"p": 2})
    assert len(second.context["page"].object_list) == 52
    found = manager_client.get(receive_url(po), {"q": "bulk-14"})
    assert [line.product.sku for line in found.context["page"]] == [
        f"BULK-{n}" for n in range(140, 150)
    ]


def preview_delivery(client, po, lines, **extra):
    data = {"step": "preview", "receipt_id": "dock-1", "reason": "", **lines_data(lines), **extra}
    return client.post(receive_url(po), data)


def test_delivery_preview_offers_leave_open_or_close_short(berlin_clerk, orders):
    po = orders["BER"]
    preview = preview_delivery(berlin_clerk, po, [("a-1", 6), ("B-2", 5)])
    form = preview.context["confirm_form"]
    assert [line["sku"] for line in form.short_lines] == ["A-1"]  # B-2 arrives complete
    payload = form.initial["payload"]

    no_reason = berlin_clerk.post(
        receive_url(po), {"step": "confirm", "payload": payload, "rest_0": "close"}
    )
    assert no_reason.status_code == 200
    assert no_reason.context["confirm_form"].errors["why_0"]
    assert on_hand("A-1", "BER") == 10  # nothing booked

    done = berlin_clerk.post(
        receive_url(po),
        {"step": "confirm", "payload": payload, "rest_0": "close", "why_0": "Supplier out"},
    )
    assert done.status_code == 302
    assert (on_hand("A-1", "BER"), on_hand("B-2", "BER")) == (16, 25)
    line = po.lines.get(product__sku="A-1")
    assert (line.is_open, line.closed_short_by, line.closed_short_reason) == (
        False,
        "user:wes",
        "Supplier out",
    )
    assert (line.quantity_outstanding, line.quantity_closed_short) == (0, 4)
    po.refresh_from_db()
    assert po.status == PurchaseOrderStatus.RECEIVED
    # Closing short wrote no ledger row: only the two receipts.
    assert InventoryTransaction.objects.filter(reference_id=po.number).count() == 2


def test_leaving_the_rest_open_keeps_the_line_expected(berlin_clerk, orders):
    po = orders["BER"]
    preview = preview_delivery(berlin_clerk, po, [("A-1", 6)])
    payload = preview.context["confirm_form"].initial["payload"]
    berlin_clerk.post(receive_url(po), {"step": "confirm", "payload": payload, "rest_0": "open"})
    line = po.lines.get(product__sku="A-1")
    assert (line.is_open, line.quantity_outstanding, line.closed_short_at) == (True, 4, None)
    po.refresh_from_db()
    assert po.status == PurchaseOrderStatus.PARTIALLY_RECEIVED


def test_delivery_preview_refuses_skus_not_on_the_order_and_over_receipt(berlin_clerk, orders):
    po = orders["BER"]
    not_on = preview_delivery(berlin_clerk, po, [("C-3", 1)])
    assert "confirm_form" not in not_on.context
    assert any("Not on" in text for text in message_texts(not_on))
    over = preview_delivery(berlin_clerk, po, [("A-1", 11)])
    assert "confirm_form" not in over.context
    assert any("only 10 outstanding" in text for text in message_texts(over))
    allowed = preview_delivery(berlin_clerk, po, [("A-1", 11)], allow_over_receipt="on")
    assert "confirm_form" in allowed.context


def test_close_short_service_moves_no_stock_and_keeps_who_and_why(orders):
    po = orders["BER"]
    before = InventoryTransaction.objects.count()
    closed = purchasing.purchase_order_close_short(
        purchase_order=po, close_short={"B-2": "discontinued"}, actor="user:bert"
    )
    assert closed == ["B-2"]
    assert InventoryTransaction.objects.count() == before
    line = po.lines.get(product__sku="B-2")
    assert (line.is_open, line.closed_short_by, line.closed_short_reason) == (
        False,
        "user:bert",
        "discontinued",
    )
    # A closed line takes no more stock.
    from purchasing.errors import PurchaseOrderClosed

    with pytest.raises(PurchaseOrderClosed):
        purchasing.purchase_order_receive(
            purchase_order=po, actor="user:x", lines=[ReceiptLine("B-2", 1)]
        )
    # "Receive everything outstanding" skips it.
    result = purchasing.purchase_order_receive(purchase_order=po, actor="user:x")
    assert result.receipt.lines == {"A-1": 10}
    assert PurchaseOrderReceipt.objects.count() == 1


def test_close_short_needs_a_reason(orders):
    from inventory.errors import InvalidInput

    with pytest.raises(InvalidInput):
        purchasing.purchase_order_close_short(
            purchase_order=orders["BER"], close_short={"B-2": " "}, actor="user:bert"
        )


def test_receipts_are_shown_readably_not_as_json(manager_client, orders):
    po = orders["BER"]
    purchasing.purchase_order_receive(
        purchase_order=po, actor="user:x", lines=[ReceiptLine("A-1", 6)], receipt_id="DN-5"
    )
    page = manager_client.get(reverse("admin:purchasing_purchaseorder_change", args=[po.pk]))
    text = page.content.decode()
    assert "6 x A-1 (6 unit(s))" in text
    assert '{"A-1": 6}' not in text


def test_managers_set_a_products_barcode_and_find_it(manager_client, stocked):
    product = Product.objects.get(sku="A-1")
    url = reverse("admin:inventory_product_change", args=[product.pk])
    form = manager_client.get(url).context["adminform"].form
    assert "barcode" in form.fields
    data = {k: v for k, v in form.initial.items() if v is not None}
    data.update(barcode="4006381333931", sku="A-1", name=product.name, category="general")
    assert manager_client.post(url, data).status_code == 302
    products = reverse("admin:inventory_product_changelist")
    found = manager_client.get(products, {"q": "4006381333931"})
    assert [p.sku for p in found.context["cl"].result_list] == ["A-1"]
