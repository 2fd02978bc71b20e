"""POST /reservations/{order_id}/confirm/ and POST /reservations/batch/confirm/:
holds that a payment confirms (or extends). Time moves with `inventory.clock`."""

from datetime import datetime, timedelta

import pytest

from inventory import clock, services
from inventory.models import InventoryTransaction, Reservation

from ..conftest import assert_invariants
from .conftest import error_code, make_caller

pytestmark = pytest.mark.django_db

URL = "/api/v1/reservations/"
BATCH = "/api/v1/reservations/batch/confirm/"


@pytest.fixture(autouse=True)
def _checked_after_and_real_time(db):
    yield
    clock.reset()
    assert_invariants()


def place(caller, order_id="o-1", expires_in=60, quantity=2):
    body = {
        "order_id": order_id,
        "lines": [{"sku": "TSHIRT-M", "quantity": quantity, "warehouse": "BER"}],
    }
    if expires_in:
        body["expires_in"] = expires_in
    response = caller.post(URL, body)
    assert response.status_code == 201, response.json()
    return response.json()


def confirm(caller, order_id="o-1", body=None, key=None):
    return caller.post(
        f"{URL}{order_id}/confirm/", body, headers={"Idempotency-Key": key} if key else None
    )


def when(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_confirm_clears_the_expiry_and_the_hold_no_longer_lapses(storefront, stocked):
    placed = place(storefront)
    assert placed["expires_at"] is not None and placed["confirmed_at"] is None
    ledger = InventoryTransaction.objects.count()

    response = confirm(storefront)

    assert response.status_code == 200
    body = response.json()
    assert body["expires_at"] is None
    assert body["confirmed_at"] is not None
    assert (body["status"], body["lines"]) == ("active", placed["lines"])
    assert InventoryTransaction.objects.count() == ledger
    assert Reservation.objects.get().confirmed_by == "client:shop"
    clock.advance(24 * 3600)
    assert services.reservations_expire(now=clock.now()) == 0
    assert storefront.post(f"{URL}o-1/fulfill/").json()["status"] == "fulfilled"


def test_confirming_again_is_200_with_the_same_body(storefront, stocked):
    place(storefront)
    first = confirm(storefront)
    clock.advance(30)
    again = confirm(storefront)
    assert (again.status_code, again.json()) == (200, first.json())
    assert storefront.get(f"{URL}o-1/").json() == first.json()


def test_expires_in_extends_the_hold_from_now(storefront, stocked):
    place(storefront, expires_in=60)
    clock.advance(50)
    response = confirm(storefront, body={"expires_in": 600})
    assert response.status_code == 200
    body = response.json()
    assert when(body["expires_at"]) - when(body["confirmed_at"]) == timedelta(seconds=600)
    clock.advance(500)  # past the original expiry, within the extension
    assert services.reservations_expire(now=clock.now()) == 0
    clock.advance(101)
    response = storefront.post(f"{URL}o-1/release/")
    assert response.status_code == 409
    assert response.json()["error"]["details"]["status"] == "expired"


def test_an_idempotency_key_replays_the_first_answer(storefront, stocked):
    place(storefront)
    first = confirm(storefront, body={"expires_in": 300}, key="pay-1")
    clock.advance(60)
    again = confirm(storefront, body={"expires_in": 300}, key="pay-1")
    assert (again.status_code, again.json()) == (200, first.json())
    assert again["Idempotent-Replayed"] == "true"
    assert when(first.json()["expires_at"]) == Reservation.objects.get().expires_at
    other_body = confirm(storefront, body={"expires_in": 301}, key="pay-1")
    assert (other_body.status_code, error_code(other_body)) == (422, "idempotency_conflict")


@pytest.mark.parametrize("close, status", [("release", "released"), ("fulfill", "fulfilled")])
def test_confirming_a_closed_order_is_409_order_closed(storefront, stocked, close, status):
    place(storefront)
    storefront.post(f"{URL}o-1/{close}/")
    response = confirm(storefront)
    assert response.status_code == 409
    assert error_code(response) == "order_closed"
    assert response.json()["error"]["details"] == {"order_id": "o-1", "status": status}


def test_confirming_a_lapsed_hold_is_409_expired_even_before_the_sweeper(
    storefront, stocked, django_capture_on_commit_callbacks
):
    place(storefront, expires_in=60)
    clock.advance(61)
    with django_capture_on_commit_callbacks(execute=True):
        response = confirm(storefront, key="pay-late")
    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"order_id": "o-1", "status": "expired"}
    assert Reservation.objects.get().status == "expired"
    assert storefront.get("/api/v1/availability/TSHIRT-M/").json()["available"] == 14
    again = confirm(storefront, key="pay-late")  # a refusal is not stored under the key
    assert again.status_code == 409
    assert "Idempotent-Replayed" not in again


def test_only_the_placing_storefront_confirms_operations_confirm_any(
    storefront, operations, stocked
):
    place(storefront)
    other = make_caller("other-shop", "storefront")
    response = confirm(other)
    assert (response.status_code, error_code(response)) == (404, "not_found")
    assert Reservation.objects.get().confirmed_at is None
    assert confirm(operations).status_code == 200
    assert Reservation.objects.get().confirmed_by == "client:wms"
    assert confirm(storefront, "nope").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"expires_in": 0},
        {"expires_in": "60"},
        {"expires_in": 1.5},
        {"expires_in": 30 * 24 * 3600 + 1},
        {"expires_in": None},
        {"until": "tomorrow"},
    ],
)
def test_a_bad_body_is_400_and_changes_nothing(storefront, stocked, body):
    place(storefront)
    response = confirm(storefront, body=body)
    assert (response.status_code, error_code(response)) == (400, "validation_error")
    assert Reservation.objects.get().confirmed_at is None


def test_a_reader_may_not_confirm(reader, storefront, stocked):
    place(storefront)
    response = confirm(reader)
    assert (response.status_code, error_code(response)) == (403, "permission_denied")


# --- Batch ------------------------------------------------------------------


def test_a_batch_confirms_each_order_on_its_own(storefront, stocked):
    for order_id in ("a", "b", "gone", "late"):
        place(storefront, order_id, expires_in=5 if order_id == "late" else 60, quantity=1)
    storefront.post(f"{URL}gone/release/")
    clock.advance(10)

    response = storefront.post(
        BATCH,
        {
            "orders": [
                {"order_id": "a"},
                {"order_id": "b", "expires_in": 300},
                {"order_id": "gone"},
                {"order_id": "late"},
                {"order_id": "nope"},
            ]
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["confirmed"], body["failed"]) == (2, 3)
    results = {r["order_id"]: r for r in body["results"]}
    assert [r["order_id"] for r in body["results"]] == ["a", "b", "gone", "late", "nope"]
    assert [(r["outcome"], r["status_code"], r["status"]) for r in body["results"]] == [
        ("confirmed", 200, "active"),
        ("confirmed", 200, "active"),
        ("error", 409, "released"),
        ("error", 409, "expired"),
        ("error", 404, None),
    ]
    assert results["a"]["expires_at"] is None
    assert results["a"]["confirmed_at"] == storefront.get(f"{URL}a/").json()["confirmed_at"]
    b = results["b"]
    assert when(b["expires_at"]) - when(b["confirmed_at"]) == timedelta(seconds=300)
    assert results["gone"]["error"]["code"] == "order_closed"
    assert results["nope"]["error"]["code"] == "not_found"
    assert Reservation.objects.get(order_id="late").status == "expired"
    # What the single endpoint answers for each order alone agrees.
    assert confirm(storefront, "a").json()["confirmed_at"] == results["a"]["confirmed_at"]
    assert confirm(storefront, "gone").status_code == 409


def test_a_batch_from_another_storefront_finds_none_of_the_orders(storefront, stocked):
    place(storefront, "a")
    other = make_caller("other-shop", "storefront")
    response = other.post(BATCH, {"orders": [{"order_id": "a"}]})
    assert [r["status_code"] for r in response.json()["results"]] == [404]
    assert Reservation.objects.get().confirmed_at is None


@pytest.mark.parametrize(
    "body",
    [
        {"orders": []},
        {"orders": [{"order_id": "a"}, {"order_id": "a"}]},
        {"orders": [{"order_id": "a"}, {"order_id": "b", "expires_in": 0}]},
        {"orders": [{"order_id": "a", "confirm": True}]},
        {"orders": "a"},
    ],
)
def test_bad_input_refuses_the_whole_batch(storefront, stocked, body):
    place(storefront, "a")
    place(storefront, "b")
    response = storefront.post(BATCH, body)
    assert (response.status_code, error_code(response)) == (400, "validation_error")
    assert not Reservation.objects.filter(confirmed_at__isnull=False).exists()


def test_the_batch_size_follows_the_setting(storefront, stocked, settings):
    settings.STOCKROOM_MAX_BATCH_ORDERS = 2
    response = storefront.post(BATCH, {"orders": [{"order_id": str(i)} for i in range(3)]})
    assert (response.status_code, error_code(response)) == (400, "validation_error")


def test_an_order_named_batch_can_still_be_confirmed_alone(storefront, stocked):
    place(storefront, "batch")
    response = storefront.post(BATCH, {})
    assert response.status_code == 200
    assert response.json()["order_id"] == "batch"
    assert response.json()["expires_at"] is None
    batch = storefront.post(BATCH, {"orders": [{"order_id": "batch"}]})
    assert batch.json()["results"][0]["outcome"] == "confirmed"
