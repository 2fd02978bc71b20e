"""Transfers in two steps over HTTP (issue #15, item 3): POST /transfers/ (ship),
POST /transfers/<id>/receive/, GET /transfers/<id>/, and incoming in
GET /availability/ while in transit."""

import datetime

import pytest
from django.utils import timezone

from inventory.models import Inventory, Transfer

from ..conftest import assert_invariants
from .conftest import error_code

pytestmark = pytest.mark.django_db

DUE = (timezone.localdate() + datetime.timedelta(days=5)).isoformat()
SHIP = {
    "transfer_id": "TR-1",
    "source": "BER",
    "destination": "HAM",
    "lines": [{"sku": "TSHIRT-M", "quantity": 6}],
    "expected_date": DUE,
    "reason": "rebalance",
}


@pytest.fixture(autouse=True)
def _ledger_matches_after_each_test(db):
    yield
    assert_invariants()


def on_hand(code):
    return Inventory.objects.get(product__sku="TSHIRT-M", warehouse__code=code).on_hand


def ham_stock(client):
    body = client.get("/api/v1/availability/TSHIRT-M/").json()
    [ham] = [s for s in body["stock"] if s["code"] == "HAM"]
    return ham["on_hand"], ham["incoming"], ham["incoming_expected"]


def test_ship_then_receive_short(operations, reader, stocked):
    shipped = operations.post("/api/v1/transfers/", SHIP)
    assert shipped.status_code == 201, shipped.json()
    body = shipped.json()
    assert (body["status"], body["source"], body["destination"]) == ("shipped", "BER", "HAM")
    assert body["expected_date"] == DUE
    assert body["lines"] == [
        {"sku": "TSHIRT-M", "quantity_shipped": 6, "quantity_received": None, "quantity_short": 0}
    ]
    [txn] = body["transactions"]
    assert (txn["warehouse"], txn["type"], txn["on_hand_delta"]) == ("BER", "TRANSFER", -6)
    assert (txn["reference_type"], txn["reference_id"]) == ("transfer", "TR-1")
    assert (on_hand("BER"), on_hand("HAM")) == (4, 4)
    assert ham_stock(reader) == (4, 6, DUE)

    received = operations.post(
        "/api/v1/transfers/TR-1/receive/",
        {"lines": [{"sku": "TSHIRT-M", "quantity_received": 5}], "reason": "one lost"},
    )
    assert received.status_code == 201, received.json()
    body = received.json()
    assert body["status"] == "received_short"
    assert body["lines"][0]["quantity_short"] == 1
    assert [(t["warehouse"], t["type"], t["on_hand_delta"]) for t in body["transactions"]] == [
        ("BER", "TRANSFER", -6),
        ("HAM", "TRANSFER", 6),
        ("HAM", "WRITE_OFF", -1),
    ]
    assert (on_hand("BER"), on_hand("HAM")) == (4, 9)
    assert ham_stock(reader) == (9, 0, None)
    read = reader.get("/api/v1/transfers/TR-1/")
    assert read.status_code == 200 and read.json()["status"] == "received_short"


def test_retries_answer_200_with_the_first_result(operations, stocked):
    assert operations.post("/api/v1/transfers/", SHIP).status_code == 201
    again = operations.post("/api/v1/transfers/", SHIP)
    assert (again.status_code, again.json()["replayed"]) == (200, True)
    assert operations.post("/api/v1/transfers/TR-1/receive/", {}).status_code == 201
    again = operations.post("/api/v1/transfers/TR-1/receive/", {})
    assert (again.status_code, again.json()["replayed"]) == (200, True)
    assert (on_hand("BER"), on_hand("HAM")) == (4, 10)


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({**SHIP, "lines": [{"sku": "TSHIRT-M", "quantity": 11}]}, 409, "insufficient_stock"),
        ({**SHIP, "lines": [{"sku": "TSHIRT-M", "quantity": 0}]}, 400, "validation_error"),
        ({**SHIP, "lines": []}, 400, "validation_error"),
        ({**SHIP, "lines": [{"sku": "NOPE", "quantity": 1}]}, 400, "unknown_sku"),
        ({**SHIP, "destination": "BER"}, 400, "same_warehouse"),
        ({**SHIP, "destination": "XXX"}, 400, "unknown_warehouse"),
        ({**SHIP, "transfer_id": "a/b"}, 400, "validation_error"),
        ({**SHIP, "transfer_id": ""}, 400, "validation_error"),
        ({**SHIP, "expected_date": "2000-01-01"}, 400, "validation_error"),
        ({**SHIP, "expected_date": "soon"}, 400, "validation_error"),
        ({**SHIP, "mode": "instant"}, 400, "validation_error"),
    ],
)
def test_bad_shipments_are_4xx_with_a_code_and_change_nothing(
    operations, stocked, body, status, code
):
    response = operations.post("/api/v1/transfers/", body)
    assert (response.status_code, error_code(response)) == (status, code)
    assert (on_hand("BER"), on_hand("HAM")) == (10, 4)
    assert not Transfer.objects.exists()


@pytest.mark.parametrize(
    "url, body, status, code",
    [
        ("/api/v1/transfers/TR-404/receive/", {}, 404, "not_found"),
        (
            "/api/v1/transfers/TR-1/receive/",
            {"lines": [{"sku": "TSHIRT-M", "quantity_received": 7}]},
            400,
            "exceeds_shipped",
        ),
        (
            "/api/v1/transfers/TR-1/receive/",
            {"lines": [{"sku": "TSHIRT-M", "quantity_received": 2}]},
            400,
            "reason_required",
        ),
        (
            "/api/v1/transfers/TR-1/receive/",
            {"lines": [{"sku": "TSHIRT-M", "quantity_received": -1}], "reason": "x"},
            400,
            "validation_error",
        ),
        (
            "/api/v1/transfers/TR-1/receive/",
            {
                "lines": [
                    {"sku": "TSHIRT-M", "quantity_received": 4},
                    {"sku": "TSHIRT-M", "quantity_received": 3},
                ],
                "reason": "x",
            },
            400,
            "exceeds_shipped",  # a SKU listed twice counts the sum
        ),
    ],
)
def test_bad_receipts_are_4xx_with_a_code_and_change_nothing(
    operations, stocked, url, body, status, code
):
    assert operations.post("/api/v1/transfers/", SHIP).status_code == 201
    response = operations.post(url, body)
    assert (response.status_code, error_code(response)) == (status, code)
    assert (on_hand("BER"), on_hand("HAM")) == (4, 4)
    assert Transfer.objects.get().status == "shipped"


def test_conflicts_are_409(operations, stocked):
    assert operations.post("/api/v1/transfers/", SHIP).status_code == 201
    other = operations.post(
        "/api/v1/transfers/", {**SHIP, "lines": [{"sku": "TSHIRT-M", "quantity": 1}]}
    )
    assert (other.status_code, error_code(other)) == (409, "transfer_conflict")
    assert operations.post("/api/v1/transfers/TR-1/receive/", {}).status_code == 201
    late = operations.post(
        "/api/v1/transfers/TR-1/receive/",
        {"lines": [{"sku": "TSHIRT-M", "quantity_received": 1}], "reason": "recount"},
    )
    assert (late.status_code, error_code(late)) == (409, "transfer_not_in_transit")


def test_scopes(storefront, reader, stocked):
    for client in (storefront, reader):
        response = client.post("/api/v1/transfers/", SHIP)
        assert (response.status_code, error_code(response)) == (403, "permission_denied")
    response = storefront.get("/api/v1/transfers/TR-1/")
    assert (response.status_code, error_code(response)) == (403, "permission_denied")
    assert reader.get("/api/v1/transfers/TR-1/").status_code == 404


def test_inactive_destination_ship_refused_receipt_accepted(operations, stocked):
    """Shipping to an inactive warehouse is 409 warehouse_inactive; a transfer already
    on its way to a warehouse closed meanwhile is received there (201)."""
    from warehouses.models import Warehouse

    assert operations.post("/api/v1/transfers/", SHIP).status_code == 201
    Warehouse.objects.filter(code="HAM").update(is_active=False)
    refused = operations.post("/api/v1/transfers/", {**SHIP, "transfer_id": "TR-2"})
    assert (refused.status_code, error_code(refused)) == (409, "warehouse_inactive")
    assert on_hand("BER") == 4

    received = operations.post("/api/v1/transfers/TR-1/receive/", {})
    assert received.status_code == 201
    assert received.json()["status"] == "received"
    assert on_hand("HAM") == 10
