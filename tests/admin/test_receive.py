"""The direct receive page."""

import uuid

from django.urls import reverse

from inventory.models import InventoryTransaction, Product, TransactionType

from ..factories import WarehouseFactory
from .conftest import message_texts, on_hand

URL = reverse("admin:backoffice_receive")


def receive_form(product, **overrides):
    return {
        "warehouse": "BER",
        "product": str(product.pk),
        "quantity": "12",
        "delivery_note": "DN-77",
        "reason": "supplier extra",
        "token": str(uuid.uuid4()),
        **overrides,
    }


def test_receive_adds_stock_and_writes_the_ledger(staff_client, stocked):
    product = Product.objects.get(sku="A-1")
    response = staff_client.post(URL, receive_form(product))

    assert response.status_code == 302
    assert on_hand("A-1", "BER") == 22
    txn = InventoryTransaction.objects.get(type=TransactionType.RECEIVE, reference_id="DN-77")
    assert (txn.on_hand_delta, txn.created_by, txn.reason) == (12, "user:wanda", "supplier extra")
    assert any("on hand is now 22" in m for m in message_texts(response))


def test_a_double_submitted_receipt_counts_once(staff_client, stocked):
    data = receive_form(Product.objects.get(sku="A-1"))
    staff_client.post(URL, data)
    again = staff_client.post(URL, data)

    assert on_hand("A-1", "BER") == 22
    assert any("already saved" in m for m in message_texts(again))


def test_bad_quantity_is_refused(staff_client, stocked):
    product = Product.objects.get(sku="A-1")
    for quantity in ("0", "-5", "2.5", "99999999"):
        response = staff_client.post(URL, receive_form(product, quantity=quantity))
        assert response.status_code == 200
        assert response.context["form"].errors["quantity"]
    assert on_hand("A-1", "BER") == 10


def test_inactive_warehouse_is_refused(staff_client, stocked):
    WarehouseFactory(code="OLD", is_active=False)
    response = staff_client.post(URL, receive_form(Product.objects.get(sku="A-1"), warehouse="OLD"))

    assert response.context["form"].errors["warehouse"]
    assert on_hand("A-1", "OLD") == 0


def test_product_picker_is_an_autocomplete(staff_client, stocked):
    page = staff_client.get(URL)
    assert b"admin-autocomplete" in page.content
    found = staff_client.get(
        reverse("admin:autocomplete"),
        {
            "term": "B-",
            "app_label": "inventory",
            "model_name": "inventory",
            "field_name": "product",
        },
    )
    assert found.status_code == 200
    assert [r["text"] for r in found.json()["results"]] == ["B-2 — Product B-2"]
