"""POST /api/v1/purchase-orders/{number}/receive/: receiving over the API."""

import pytest

from inventory.models import Inventory, InventoryTransaction

from ..purchasing.conftest import purchase_order
from ..purchasing.factories import SupplierFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/purchase-orders/{}/receive/"


@pytest.fixture
def po(db):
    supplier = SupplierFactory(name="Acme")
    return purchase_order(supplier, "BER", {"TSHIRT-M": 10, "MUG": 4})


def on_hand(sku):
    row = Inventory.objects.filter(product__sku=sku, warehouse__code="BER").first()
    return row.on_hand if row else 0


def test_partial_receipt_then_the_rest(operations, po):
    first = operations.post(
        URL.format(po.number),
        {"receipt_id": "DN-1", "lines": [{"sku": "TSHIRT-M", "quantity": 6}]},
    )
    assert first.status_code == 201
    body = first.json()
    assert (body["purchase_order"], body["status"], body["replayed"]) == (
        po.number,
        "partially_received",
        False,
    )
    [txn] = body["transactions"]
    assert txn["type"] == "RECEIVE"
    assert on_hand("TSHIRT-M") == 6

    rest = operations.post(URL.format(po.number), {"receipt_id": "DN-2"})
    assert rest.status_code == 201
    assert rest.json()["status"] == "received"
    assert (on_hand("TSHIRT-M"), on_hand("MUG")) == (10, 4)
    assert set(
        InventoryTransaction.objects.filter(type="RECEIVE").values_list(
            "reference_type", "reference_id"
        )
    ) == {("purchase_order", po.number)}


def test_the_same_receipt_again_changes_nothing(operations, po):
    body = {"receipt_id": "DN-1", "lines": [{"sku": "MUG", "quantity": 2}]}
    assert operations.post(URL.format(po.number), body).status_code == 201
    again = operations.post(URL.format(po.number), body)
    assert again.status_code == 200
    assert again.json()["replayed"] is True
    assert on_hand("MUG") == 2


def test_over_receipt_is_refused_unless_allowed(operations, po):
    body = {"receipt_id": "DN-9", "lines": [{"sku": "MUG", "quantity": 5}]}
    refused = operations.post(URL.format(po.number), body)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "over_receipt"
    assert on_hand("MUG") == 0
    allowed = operations.post(URL.format(po.number), {**body, "allow_over_receipt": True})
    assert allowed.status_code == 201
    assert on_hand("MUG") == 5


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"lines": [{"sku": "MUG", "quantity": 1}]},
        {"receipt_id": "DN", "lines": []},
        {"receipt_id": "DN", "lines": [{"sku": "MUG", "quantity": 0}]},
        {"receipt_id": "DN", "lines": [{"sku": "MUG", "quantity": "1"}]},
        {"receipt_id": "DN", "extra": 1},
    ],
)
def test_bad_input_is_a_400_and_changes_nothing(operations, po, body):
    response = operations.post(URL.format(po.number), body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert not InventoryTransaction.objects.exists()


def test_unknown_order_is_404_and_storefront_may_not_receive(operations, storefront, po):
    missing = operations.post(URL.format("PO-NOPE"), {"receipt_id": "DN"})
    assert missing.status_code == 404
    forbidden = storefront.post(URL.format(po.number), {"receipt_id": "DN"})
    assert forbidden.status_code == 403
    assert not InventoryTransaction.objects.exists()


def test_a_receipt_id_conflict_names_the_receipt_not_an_internal_key(operations, po):
    """Issue #20 item 6: details carry the client's receipt id, not `po-receipt:…`."""
    url = URL.format(po.number)
    assert operations.post(url, {"receipt_id": "DN-7", "lines": [{"sku": "MUG", "quantity": 1}]})
    conflict = operations.post(
        url, {"receipt_id": "DN-7", "lines": [{"sku": "MUG", "quantity": 2}]}
    )
    assert conflict.status_code == 422
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    assert conflict.json()["error"]["details"] == {"receipt_id": "DN-7"}
