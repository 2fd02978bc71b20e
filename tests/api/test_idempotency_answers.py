"""Issue #20 item 6: every endpoint that takes an Idempotency-Key answers as documented.

docs/API.md: the same key with the same method, path and body replays the first
response (same status and body, header `Idempotent-Replayed: true`) and changes
nothing; a different request under the key is 422 `idempotency_conflict`, whose
details name the client's key and never an internal key string.
"""

import json

import pytest

from api.models import IdempotencyRecord
from inventory.models import InventoryTransaction

from ..conftest import assert_invariants
from .conftest import error_code, make_caller

pytestmark = pytest.mark.django_db

ORDER = {"order_id": "ORD-I", "lines": [{"sku": "TSHIRT-M", "quantity": 4, "warehouse": "BER"}]}

# (endpoint, a body, another body under the same key); every one takes Idempotency-Key.
ENDPOINTS = {
    "receive": (
        "/api/v1/stock/receive/",
        {"sku": "TSHIRT-M", "warehouse": "BER", "quantity": 5},
        {"sku": "TSHIRT-M", "warehouse": "BER", "quantity": 6},
    ),
    "adjust": (
        "/api/v1/stock/adjust/",
        {"sku": "TSHIRT-M", "warehouse": "BER", "delta": -1, "reason": "damaged"},
        {"sku": "TSHIRT-M", "warehouse": "BER", "delta": -2, "reason": "damaged"},
    ),
    "transfer": (
        "/api/v1/stock/transfer/",
        {"source": "BER", "destination": "HAM", "lines": [{"sku": "TSHIRT-M", "quantity": 1}]},
        {"source": "BER", "destination": "HAM", "lines": [{"sku": "TSHIRT-M", "quantity": 2}]},
    ),
    "release": (
        "/api/v1/reservations/ORD-I/release/",
        {"lines": [{"sku": "TSHIRT-M", "quantity": 1}]},
        {"lines": [{"sku": "TSHIRT-M", "quantity": 2}]},
    ),
    "fulfill": (
        "/api/v1/reservations/ORD-I/fulfill/",
        {"lines": [{"sku": "TSHIRT-M", "quantity": 1}]},
        {"lines": [{"sku": "TSHIRT-M", "quantity": 2}]},
    ),
}


@pytest.fixture
def caller(stocked):
    """A client holding both scopes, with order ORD-I holding 4 of TSHIRT-M in BER."""
    both = make_caller("shop-and-wms", "storefront", "operations")
    assert both.post("/api/v1/reservations/", ORDER).status_code == 201
    yield both
    assert_invariants()


def ledger():
    return list(InventoryTransaction.objects.order_by("id").values_list("id", flat=True))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_replay_answers_the_first_response_with_the_header(caller, endpoint):
    url, body, _ = ENDPOINTS[endpoint]
    headers = {"Idempotency-Key": f"{endpoint}-1"}
    first = caller.post(url, body, headers=headers)
    assert first.status_code in (200, 201), first.json()
    assert "Idempotent-Replayed" not in first
    written = ledger()

    again = caller.post(url, body, headers=headers)

    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again["Idempotent-Replayed"] == "true"
    assert ledger() == written  # nothing changed


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_conflict_names_the_clients_key_not_an_internal_one(caller, endpoint):
    url, body, other = ENDPOINTS[endpoint]
    headers = {"Idempotency-Key": f"{endpoint}-2"}
    assert caller.post(url, body, headers=headers).status_code in (200, 201)

    conflict = caller.post(url, other, headers=headers)

    assert conflict.status_code == 422
    assert error_code(conflict) == "idempotency_conflict"
    assert conflict.json()["error"]["details"] == {"idempotency_key": f"{endpoint}-2"}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_conflict_found_by_the_service_exposes_no_internal_key(caller, endpoint):
    """The API's record of the key is gone (purged after its retention) but the stock
    service still knows it: the 422 comes from the service, still in the client's terms."""
    url, body, other = ENDPOINTS[endpoint]
    headers = {"Idempotency-Key": f"{endpoint}-3"}
    assert caller.post(url, body, headers=headers).status_code in (200, 201)
    IdempotencyRecord.objects.all().delete()
    written = ledger()

    conflict = caller.post(url, other, headers=headers)

    assert conflict.status_code == 422, conflict.json()
    assert error_code(conflict) == "idempotency_conflict"
    assert conflict.json()["error"]["details"] == {"idempotency_key": f"{endpoint}-3"}
    assert ":key:" not in json.dumps(conflict.json()) and "api:" not in json.dumps(conflict.json())
    assert ledger() == written
    # ... and the key is free of the API's half-claimed record: the original still replays.
    assert caller.post(url, body, headers=headers).status_code in (200, 201)


def test_a_reference_conflict_without_a_key_exposes_no_internal_key(caller):
    url = "/api/v1/stock/receive/"
    body = {"sku": "TSHIRT-M", "warehouse": "BER", "quantity": 5,
            "reference": {"type": "purchase_order", "id": "PO-9"}}  # fmt: skip
    assert caller.post(url, body).status_code == 201

    conflict = caller.post(url, {**body, "quantity": 6})

    assert conflict.status_code == 422
    assert error_code(conflict) == "idempotency_conflict"
    text = json.dumps(conflict.json())
    assert "receive:" not in text and "PO-9:TSHIRT-M" not in text
