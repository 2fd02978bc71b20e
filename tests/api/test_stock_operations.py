"""POST /stock/receive/, /stock/adjust/, /stock/transfer/ and the Idempotency-Key."""

from datetime import timedelta

import pytest
from django.utils import timezone

from api.models import ApiClient, IdempotencyRecord
from inventory import services
from inventory.models import Inventory, InventoryTransaction
from inventory.services import ReserveLine

from ..conftest import assert_invariants
from .conftest import error_code

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _ledger_matches_after_each_test(db):
    yield
    assert_invariants()


def on_hand(code, sku="TSHIRT-M"):
    return Inventory.objects.get(product__sku=sku, warehouse__code=code).on_hand


RECEIVE = {"sku": "TSHIRT-M", "warehouse": "BER", "quantity": 5}


def test_receive(operations, stocked):
    response = operations.post(
        "/api/v1/stock/receive/",
        {**RECEIVE, "reference": {"type": "purchase_order", "id": "PO-1"}, "reason": "delivery"},
    )
    assert response.status_code == 201
    txn = response.json()["transactions"][0]
    assert (txn["type"], txn["on_hand_delta"], txn["on_hand_after"]) == ("RECEIVE", 5, 15)
    assert (txn["reference_type"], txn["reference_id"], txn["created_by"]) == (
        "purchase_order",
        "PO-1",
        "client:wms",
    )
    assert on_hand("BER") == 15


def test_receive_with_the_same_reference_again_is_a_replay(operations, stocked):
    body = {**RECEIVE, "reference": {"type": "purchase_order", "id": "PO-1"}}
    operations.post("/api/v1/stock/receive/", body)
    again = operations.post("/api/v1/stock/receive/", body)
    assert again.status_code == 200
    assert again.json()["replayed"] is True
    assert on_hand("BER") == 15


def test_idempotency_key_replays_the_first_response(operations, stocked):
    headers = {"Idempotency-Key": "delivery-77"}
    first = operations.post("/api/v1/stock/receive/", RECEIVE, headers=headers)
    again = operations.post("/api/v1/stock/receive/", RECEIVE, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert on_hand("BER") == 15
    assert InventoryTransaction.objects.filter(type="RECEIVE", on_hand_delta=5).count() == 1


def test_idempotency_key_with_a_different_body_is_422(operations, stocked):
    headers = {"Idempotency-Key": "k"}
    operations.post("/api/v1/stock/receive/", RECEIVE, headers=headers)
    response = operations.post(
        "/api/v1/stock/receive/", {**RECEIVE, "quantity": 6}, headers=headers
    )
    assert response.status_code == 422
    assert error_code(response) == "idempotency_conflict"
    # Same key on another endpoint is a different request too.
    other = operations.post(
        "/api/v1/stock/adjust/",
        {"sku": "TSHIRT-M", "warehouse": "BER", "delta": 1, "reason": "x"},
        headers=headers,
    )
    assert other.status_code == 422
    assert on_hand("BER") == 15


def test_idempotency_key_still_running_is_409_until_stale(operations, stocked, settings):
    client = ApiClient.objects.get(name="wms")
    from api.services import request_fingerprint

    record = IdempotencyRecord.objects.create(
        client=client,
        key="busy",
        fingerprint=request_fingerprint(method="POST", path="/api/v1/stock/receive/", body=RECEIVE),
    )
    headers = {"Idempotency-Key": "busy"}
    response = operations.post("/api/v1/stock/receive/", RECEIVE, headers=headers)
    assert response.status_code == 409
    assert error_code(response) == "idempotency_in_progress"
    assert on_hand("BER") == 10
    # The first request's process died: after the stale period the key is taken over.
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        updated_at=timezone.now()
        - timedelta(seconds=settings.STOCKROOM_IDEMPOTENCY_STALE_SECONDS + 1)
    )
    assert operations.post("/api/v1/stock/receive/", RECEIVE, headers=headers).status_code == 201
    assert on_hand("BER") == 15


def test_keys_belong_to_one_client(operations, stocked):
    from .conftest import make_caller

    other = make_caller("wms-2", "operations")
    headers = {"Idempotency-Key": "shared"}
    operations.post("/api/v1/stock/receive/", RECEIVE, headers=headers)
    assert other.post("/api/v1/stock/receive/", RECEIVE, headers=headers).status_code == 201
    assert on_hand("BER") == 20


def test_a_failed_request_frees_its_key(operations, stocked):
    headers = {"Idempotency-Key": "retry-me"}
    failed = operations.post(
        "/api/v1/stock/receive/", {**RECEIVE, "warehouse": "NOPE"}, headers=headers
    )
    assert failed.status_code == 400
    assert error_code(failed) == "unknown_warehouse"
    assert not IdempotencyRecord.objects.exists()
    assert operations.post("/api/v1/stock/receive/", RECEIVE, headers=headers).status_code == 201


def test_adjust_counted_and_delta(operations, stocked):
    counted = operations.post(
        "/api/v1/stock/adjust/",
        {"sku": "TSHIRT-M", "warehouse": "BER", "counted": 8, "reason": "cycle count"},
    )
    assert counted.status_code == 201
    assert on_hand("BER") == 8
    delta = operations.post(
        "/api/v1/stock/adjust/",
        {"sku": "TSHIRT-M", "warehouse": "BER", "delta": -3, "reason": "damaged"},
    )
    assert delta.status_code == 201
    assert delta.json()["transactions"][0]["on_hand_delta"] == -3
    assert on_hand("BER") == 5


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"counted": 8}, 400, "validation_error"),  # no reason
        ({"counted": 8, "reason": ""}, 400, "validation_error"),
        ({"reason": "x"}, 400, "validation_error"),  # neither counted nor delta
        ({"counted": 8, "delta": 1, "reason": "x"}, 400, "validation_error"),
        ({"delta": 0, "reason": "x"}, 400, "validation_error"),
        ({"delta": "1", "reason": "x"}, 400, "validation_error"),
        ({"counted": -1, "reason": "x"}, 400, "validation_error"),
        ({"delta": -11, "reason": "x"}, 400, "invalid_quantity"),
        ({"counted": 8, "expected_on_hand": 9, "reason": "x"}, 409, "stock_changed"),
    ],
)
def test_adjust_refusals_change_nothing(operations, stocked, body, status, code):
    response = operations.post(
        "/api/v1/stock/adjust/", {"sku": "TSHIRT-M", "warehouse": "BER", **body}
    )
    assert response.status_code == status, response.json()
    assert error_code(response) == code
    assert on_hand("BER") == 10


def test_adjust_below_reserved_is_409(operations, stocked):
    services.stock_reserve(order_id="o", lines=[ReserveLine("TSHIRT-M", "BER", 6)], actor="c")
    response = operations.post(
        "/api/v1/stock/adjust/",
        {"sku": "TSHIRT-M", "warehouse": "BER", "counted": 5, "reason": "count"},
    )
    assert response.status_code == 409
    assert error_code(response) == "below_reserved"


def test_transfer(operations, stocked):
    response = operations.post(
        "/api/v1/stock/transfer/",
        {"source": "BER", "destination": "HAM", "lines": [{"sku": "TSHIRT-M", "quantity": 4}]},
    )
    assert response.status_code == 201
    txns = response.json()["transactions"]
    assert sorted((t["warehouse"], t["on_hand_delta"]) for t in txns) == [("BER", -4), ("HAM", 4)]
    assert len({t["reference_id"] for t in txns}) == 1
    assert (on_hand("BER"), on_hand("HAM")) == (6, 8)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"source": "BER", "destination": "BER"}, 400, "same_warehouse"),
        ({"source": "BER", "destination": "HAM", "lines": []}, 400, "validation_error"),
        ({"source": "BER", "destination": "NOPE"}, 400, "unknown_warehouse"),
        ({"source": "HAM", "destination": "BER", "quantity": 5}, 409, "insufficient_stock"),
        ({"source": "BER", "destination": "HAM", "quantity": 2.5}, 400, "validation_error"),
    ],
)
def test_transfer_refusals_change_nothing(operations, stocked, body, status, code):
    quantity = body.pop("quantity", 1)
    body.setdefault("lines", [{"sku": "TSHIRT-M", "quantity": quantity}])
    response = operations.post("/api/v1/stock/transfer/", body)
    assert response.status_code == status, response.json()
    assert error_code(response) == code
    assert (on_hand("BER"), on_hand("HAM")) == (10, 4)


def test_transfer_to_an_inactive_warehouse_is_409(operations, stocked):
    from warehouses.models import Warehouse

    Warehouse.objects.filter(code="HAM").update(is_active=False)
    response = operations.post(
        "/api/v1/stock/transfer/",
        {"source": "BER", "destination": "HAM", "lines": [{"sku": "TSHIRT-M", "quantity": 1}]},
    )
    assert response.status_code == 409
    assert error_code(response) == "warehouse_inactive"


@pytest.mark.parametrize(
    "body",
    [
        {**RECEIVE, "quantity": 0},
        {**RECEIVE, "quantity": -5},
        {**RECEIVE, "quantity": "5"},
        {**RECEIVE, "quantity": 5.0},
        {**RECEIVE, "quantity": True},
        {**RECEIVE, "quantity": 2**63},
        {**RECEIVE, "on_hand": 5},
        {**RECEIVE, "reference": {"type": "gift", "id": "x"}},
        {"sku": "TSHIRT-M", "quantity": 5},
    ],
)
def test_receive_bad_input_is_400(operations, stocked, body):
    response = operations.post("/api/v1/stock/receive/", body, headers={"Idempotency-Key": "b"})
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert on_hand("BER") == 10
    assert not IdempotencyRecord.objects.exists()


def test_stock_busy_is_503_with_retry_after(operations, stocked, monkeypatch):
    from inventory import errors

    def busy(**kwargs):
        raise errors.StockBusy()

    monkeypatch.setattr(services, "stock_receive", busy)
    response = operations.post("/api/v1/stock/receive/", RECEIVE, headers={"Idempotency-Key": "z"})
    assert response.status_code == 503
    assert error_code(response) == "stock_busy"
    assert response["Retry-After"] == "1"
    assert not IdempotencyRecord.objects.exists()  # the key can be retried


def test_old_idempotency_records_can_be_purged(operations, stocked):
    from api.services import idempotency_records_purge

    operations.post("/api/v1/stock/receive/", RECEIVE, headers={"Idempotency-Key": "old"})
    operations.post("/api/v1/stock/receive/", RECEIVE, headers={"Idempotency-Key": "new"})
    IdempotencyRecord.objects.filter(key="old").update(
        created_at=timezone.now() - timedelta(days=8)
    )
    assert idempotency_records_purge(older_than=timedelta(days=7)) == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


@pytest.mark.parametrize("key", ["", "k" * 201])
def test_idempotency_key_length_is_checked(operations, stocked, key):
    response = operations.post("/api/v1/stock/receive/", RECEIVE, headers={"Idempotency-Key": key})
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert on_hand("BER") == 10
