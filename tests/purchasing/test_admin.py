"""The purchasing admin: pages render, POs are created with lines, status actions and
receiving (full or partial) go through the services, errors reach the user."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from inventory.models import Inventory
from purchasing.models import PurchaseOrder, PurchaseOrderReceipt, PurchaseOrderStatus
from tests.factories import ProductFactory, WarehouseFactory

from .conftest import purchase_order
from .factories import ProductSupplierFactory, SupplierFactory

pytestmark = pytest.mark.django_db


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def on_hand(sku: str) -> int:
    row = Inventory.objects.filter(product__sku=sku).first()
    return row.on_hand if row else 0


def test_purchasing_pages_render(admin_client, supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10})
    ProductSupplierFactory(product=ProductFactory(sku="CUP"), supplier=supplier)

    for name, args in [
        ("admin:purchasing_supplier_changelist", []),
        ("admin:purchasing_productsupplier_changelist", []),
        ("admin:purchasing_purchaseorder_changelist", []),
        ("admin:purchasing_purchaseorder_change", [po.pk]),
        ("admin:purchasing_purchaseorder_add", []),
        ("admin:purchasing_purchaseorder_receive", [po.pk]),
    ]:
        response = admin_client.get(reverse(name, args=args))
        assert response.status_code == 200, name
    page = admin_client.get(reverse("admin:purchasing_purchaseorder_receive", args=[po.pk]))
    assert b"MUG" in page.content and b"Preview receipt" in page.content


def test_staff_create_a_po_with_lines(admin_client, supplier):
    warehouse = WarehouseFactory(code="BER")
    mug = ProductFactory(sku="MUG")
    data = {
        "supplier": supplier.pk,
        "warehouse": warehouse.pk,
        "expected_arrival_date": "2030-01-02",
        "notes": "",
        "lines-TOTAL_FORMS": "1",
        "lines-INITIAL_FORMS": "0",
        "lines-0-product": str(mug.pk),
        "lines-0-quantity_ordered": "24",
        "receipts-TOTAL_FORMS": "0",
        "receipts-INITIAL_FORMS": "0",
    }

    response = admin_client.post(reverse("admin:purchasing_purchaseorder_add"), data)

    assert response.status_code == 302, response.content.decode()[:2000]
    po = PurchaseOrder.objects.get()
    assert po.number.startswith("PO-")
    assert (po.status, po.origin, po.created_by) == ("draft", "manual", "user:admin")
    [line] = po.lines.all()
    assert (line.warehouse_id, line.quantity_ordered, line.is_open) == (warehouse.pk, 24, True)


def test_receive_page_books_a_partial_delivery(admin_client, supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10, "CUP": 4})
    mug, cup = po.lines.order_by("id")
    url = reverse("admin:purchasing_purchaseorder_receive", args=[po.pk])
    data = {"receipt_id": "admin-1", f"line_{mug.pk}": "6", f"line_{cup.pk}": "0", "reason": ""}

    response = admin_client.post(url, data, follow=True)

    assert (on_hand("MUG"), on_hand("CUP")) == (6, 0)
    po.refresh_from_db()
    assert po.status == PurchaseOrderStatus.PARTIALLY_RECEIVED
    assert any("Received 6 x MUG" in t for t in texts(response))

    # The same form submitted again (double click) books nothing more.
    again = admin_client.post(url, data, follow=True)
    assert on_hand("MUG") == 6
    assert PurchaseOrderReceipt.objects.count() == 1
    assert any("already booked" in t for t in texts(again))


def test_receive_page_refuses_over_receipt_with_a_message(admin_client, supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10})
    [line] = po.lines.all()
    url = reverse("admin:purchasing_purchaseorder_receive", args=[po.pk])

    response = admin_client.post(url, {"receipt_id": "admin-2", f"line_{line.pk}": "11"})

    assert response.status_code == 200  # the form again, with the error
    assert any("more than was ordered" in t for t in texts(response))
    assert on_hand("MUG") == 0

    allowed = admin_client.post(
        url, {"receipt_id": "admin-3", f"line_{line.pk}": "11", "allow_over_receipt": "on"}
    )
    assert allowed.status_code == 302
    assert on_hand("MUG") == 11


def test_actions_mark_ordered_receive_outstanding_and_report_errors(admin_client, supplier):
    draft = purchase_order(supplier, "BER", {"MUG": 10}, status=PurchaseOrderStatus.DRAFT)
    url = reverse("admin:purchasing_purchaseorder_changelist")

    admin_client.post(url, {"action": "mark_ordered", "_selected_action": [draft.pk]})
    draft.refresh_from_db()
    assert draft.status == PurchaseOrderStatus.ORDERED
    assert draft.expected_arrival_date is not None

    response = admin_client.post(
        url, {"action": "receive_outstanding", "_selected_action": [draft.pk]}, follow=True
    )
    draft.refresh_from_db()
    assert draft.status == PurchaseOrderStatus.RECEIVED
    assert on_hand("MUG") == 10
    assert any("received in full" in t for t in texts(response))

    # Received already: cancelling is refused, and the message says why.
    response = admin_client.post(
        url, {"action": "cancel", "_selected_action": [draft.pk]}, follow=True
    )
    draft.refresh_from_db()
    assert draft.status == PurchaseOrderStatus.RECEIVED
    assert any(f"{draft.number}: " in t and "cannot be cancelled" in t for t in texts(response))


def test_purchase_order_numbers_are_sequential(admin_client, supplier):
    from purchasing.services import new_purchase_order_number

    first = new_purchase_order_number()
    second = new_purchase_order_number()
    assert first.startswith("PO-") and len(first) >= 9
    assert int(second.removeprefix("PO-")) == int(first.removeprefix("PO-")) + 1


@pytest.fixture
def po_sequence_at(db):
    """Set the PO-number sequence so that the next number is `n`; put back afterwards.

    setval is not rolled back with the test's transaction, hence the restore.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT last_value, is_called FROM purchasing_po_number")
        saved = cursor.fetchone()

    def set_next(n: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT setval('purchasing_po_number', %s)", [n - 1])

    yield set_next
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval('purchasing_po_number', %s, %s)", list(saved))


def test_purchase_order_numbers_grow_past_six_digits_without_repeating(po_sequence_at):
    from purchasing.services import new_purchase_order_number

    po_sequence_at(999_999)

    assert [new_purchase_order_number() for _ in range(3)] == [
        "PO-999999",
        "PO-1000000",  # lpad(…, 6) would have cut this to PO-100000, a repeat
        "PO-1000001",
    ]


def test_staff_create_a_po_after_the_millionth_number(admin_client, supplier, po_sequence_at):
    """PO-100000 exists; the next number must not come out as PO-100000 again."""
    purchase_order(supplier, "BER", {"MUG": 1}, number="PO-100000")
    po_sequence_at(1_000_000)
    data = {
        "supplier": supplier.pk,
        "warehouse": WarehouseFactory(code="BER").pk,
        "expected_arrival_date": "2030-01-02",
        "notes": "",
        "lines-TOTAL_FORMS": "1",
        "lines-INITIAL_FORMS": "0",
        "lines-0-product": str(ProductFactory(sku="CUP").pk),
        "lines-0-quantity_ordered": "5",
        "receipts-TOTAL_FORMS": "0",
        "receipts-INITIAL_FORMS": "0",
    }

    response = admin_client.post(reverse("admin:purchasing_purchaseorder_add"), data)

    assert response.status_code == 302
    assert set(PurchaseOrder.objects.values_list("number", flat=True)) == {
        "PO-100000",
        "PO-1000000",
    }


def _change_form_data(po, lines=(), **overrides):
    data = {
        "supplier": po.supplier_id,
        "warehouse": po.warehouse_id,
        "expected_arrival_date": "2030-01-02",
        "notes": "",
        "lines-TOTAL_FORMS": str(len(lines)),
        "lines-INITIAL_FORMS": str(len(lines)),
        "receipts-TOTAL_FORMS": "0",
        "receipts-INITIAL_FORMS": "0",
        **overrides,
    }
    for i, (line, product) in enumerate(lines):
        data[f"lines-{i}-id"] = str(line.pk)
        data[f"lines-{i}-purchase_order"] = str(po.pk)
        data[f"lines-{i}-product"] = str(product.pk)
        data[f"lines-{i}-quantity_ordered"] = str(line.quantity_ordered)
    return data


@pytest.mark.django_db(transaction=True)
def test_a_cancel_committed_while_the_change_form_saves_is_not_undone(admin_client, supplier):
    import threading

    from django.db import connections
    from django.db.models.signals import pre_save

    from purchasing import services

    po = purchase_order(supplier, "BER", {"MUG": 10})
    url = reverse("admin:purchasing_purchaseorder_change", args=[po.pk])

    def cancel_meanwhile(sender, instance, **kwargs):
        # Another user cancels the order between the admin reading it and saving it.
        def cancel():
            try:
                services.purchase_order_cancel(purchase_order=po.number, actor="user:other")
            finally:
                connections.close_all()

        if instance.pk == po.pk and instance.status != PurchaseOrderStatus.CANCELLED:
            other = threading.Thread(target=cancel)
            other.start()
            other.join(30)

    pre_save.connect(cancel_meanwhile, sender=PurchaseOrder)
    try:
        response = admin_client.post(url, _change_form_data(po, notes="call first"))
    finally:
        pre_save.disconnect(cancel_meanwhile, sender=PurchaseOrder)

    assert response.status_code == 302
    po.refresh_from_db()
    assert (po.status, po.notes) == (PurchaseOrderStatus.CANCELLED, "call first")
    assert not po.lines.filter(is_open=True).exists()


def test_moving_a_reorder_line_onto_a_product_already_on_order_is_a_form_error(
    admin_client, supplier
):
    from purchasing.models import Origin, PurchaseOrderLine

    draft = purchase_order(supplier, "BER", {"MUG": 10}, status=PurchaseOrderStatus.DRAFT)
    draft.lines.update(origin=Origin.REORDER)
    other = purchase_order(
        SupplierFactory(name="Other"), "BER", {"CUP": 5}, status=PurchaseOrderStatus.DRAFT
    )
    other.lines.update(origin=Origin.REORDER)
    [line] = draft.lines.all()
    cup = PurchaseOrderLine.objects.get(purchase_order=other).product

    url = reverse("admin:purchasing_purchaseorder_change", args=[draft.pk])
    response = admin_client.post(url, _change_form_data(draft, lines=[(line, cup)]))

    assert response.status_code == 200  # the form again, with the error
    assert f"already has an open reorder line in this warehouse, on {other.number}" in (
        response.content.decode()
    )
    line.refresh_from_db()
    assert line.product.sku == "MUG"
