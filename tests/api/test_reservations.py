"""POST /reservations/, GET /reservations/{order_id}/, release and fulfil."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inventory import clock
from inventory.models import Inventory, InventoryTransaction, Reservation

from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory
from .conftest import error_code

pytestmark = pytest.mark.django_db

URL = "/api/v1/reservations/"


@pytest.fixture(autouse=True)
def _ledger_matches_after_each_test(db):
    yield
    assert_invariants()


def order(order_id="o-1", **extra):
    return {"order_id": order_id, "lines": [{"sku": "TSHIRT-M", "quantity": 2}], **extra}


def reserved(code):
    return Inventory.objects.get(product__sku="TSHIRT-M", warehouse__code=code).reserved


def test_reserve_returns_201_with_the_lines(storefront, stocked):
    response = storefront.post(
        URL, order(lines=[{"sku": "TSHIRT-M", "quantity": 2, "warehouse": "HAM"}])
    )
    assert response.status_code == 201
    body = response.json()
    assert body["order_id"] == "o-1"
    assert body["status"] == "active"
    assert body["expires_at"] is None
    assert [(x["sku"], x["warehouse"], x["quantity"], x["status"]) for x in body["lines"]] == [
        ("TSHIRT-M", "HAM", 2, "active")
    ]
    assert reserved("HAM") == 2
    txn = InventoryTransaction.objects.get(type="RESERVE")
    assert (txn.created_by, txn.reference_id) == ("client:shop", "o-1")


def test_same_order_again_is_200_and_reserves_nothing_more(storefront, stocked):
    first = storefront.post(URL, order())
    again = storefront.post(URL, order())
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["lines"] == first.json()["lines"]
    assert reserved("BER") + reserved("HAM") == 2
    assert Reservation.objects.count() == 1


def test_retry_is_recognised_even_if_routing_would_now_pick_elsewhere(storefront, stocked):
    first = storefront.post(URL, order(ship_to={"latitude": 53.55, "longitude": 9.99}))
    assert first.json()["lines"][0]["warehouse"] == "HAM"
    # Hamburg sells out; a retry after a lost response still gets the same reservation.
    receive_out = storefront.post(
        URL, order("other", lines=[{"sku": "TSHIRT-M", "quantity": 2, "warehouse": "HAM"}])
    )
    assert receive_out.status_code == 201
    again = storefront.post(URL, order(ship_to={"latitude": 53.55, "longitude": 9.99}))
    assert again.status_code == 200
    assert again.json()["lines"][0]["warehouse"] == "HAM"


def test_same_order_with_different_lines_is_409_order_conflict(storefront, stocked):
    storefront.post(URL, order())
    response = storefront.post(URL, order(lines=[{"sku": "TSHIRT-M", "quantity": 3}]))
    assert response.status_code == 409
    assert error_code(response) == "order_conflict"
    assert reserved("BER") + reserved("HAM") == 2


def test_all_or_nothing_insufficient_stock_lists_short_lines(storefront, stocked):
    ProductFactory(sku="MUG")
    receive("MUG", "BER", 1)
    response = storefront.post(
        URL,
        order(
            lines=[
                {"sku": "TSHIRT-M", "quantity": 2, "warehouse": "BER"},
                {"sku": "MUG", "quantity": 5, "warehouse": "BER"},
            ]
        ),
    )
    assert response.status_code == 409
    assert error_code(response) == "insufficient_stock"
    assert response.json()["error"]["details"]["lines"] == [
        {"sku": "MUG", "warehouse": "BER", "requested": 5, "available": 1}
    ]
    assert reserved("BER") == 0
    assert not Reservation.objects.exists()
    # The order id stays free for a retry.
    ok = storefront.post(URL, order(lines=[{"sku": "MUG", "quantity": 1, "warehouse": "BER"}]))
    assert ok.status_code == 201


def test_routed_line_beyond_all_active_warehouses_is_409(storefront, stocked):
    response = storefront.post(URL, order(lines=[{"sku": "TSHIRT-M", "quantity": 15}]))
    assert response.status_code == 409
    assert error_code(response) == "insufficient_stock"
    line = response.json()["error"]["details"]["lines"][0]
    assert line == {"sku": "TSHIRT-M", "warehouse": None, "requested": 15, "available": 14}
    assert reserved("BER") + reserved("HAM") == 0


@pytest.mark.parametrize(
    ("lines", "code", "status"),
    [
        ([{"sku": "NOPE", "quantity": 1}], "unknown_sku", 400),
        ([{"sku": "NOPE", "quantity": 1, "warehouse": "BER"}], "unknown_sku", 400),
        ([{"sku": "TSHIRT-M", "quantity": 1, "warehouse": "XXX"}], "unknown_warehouse", 400),
    ],
)
def test_unknown_sku_or_warehouse(storefront, stocked, lines, code, status):
    response = storefront.post(URL, order(lines=lines))
    assert response.status_code == status
    assert error_code(response) == code
    assert not Reservation.objects.exists()


def test_inactive_warehouse_is_refused(storefront, stocked):
    WarehouseFactory._meta.model.objects.filter(code="HAM").update(is_active=False)
    response = storefront.post(
        URL, order(lines=[{"sku": "TSHIRT-M", "quantity": 1, "warehouse": "HAM"}])
    )
    assert response.status_code == 409
    assert error_code(response) == "warehouse_inactive"


def _bad_bodies():
    good_line = {"sku": "TSHIRT-M", "quantity": 1}
    bodies = {
        "string quantity": {"order_id": "o", "lines": [{"sku": "TSHIRT-M", "quantity": "1"}]},
        "float quantity": {"order_id": "o", "lines": [{"sku": "TSHIRT-M", "quantity": 1.0}]},
        "bool quantity": {"order_id": "o", "lines": [{"sku": "TSHIRT-M", "quantity": True}]},
        "zero": {"order_id": "o", "lines": [{"sku": "TSHIRT-M", "quantity": 0}]},
        "negative": {"order_id": "o", "lines": [{"sku": "TSHIRT-M", "quantity": -1}]},
        "huge": {"order_id": "o", "lines": [{"sku": "TSHIRT-M", "quantity": 10**30}]},
        "over max": {"order_id": "o", "lines": [{"sku": "TSHIRT-M", "quantity": 1_000_001}]},
        "null quantity": {"order_id": "o", "lines": [{"sku": "TSHIRT-M", "quantity": None}]},
        "no lines": {"order_id": "o", "lines": []},
        "lines not a list": {"order_id": "o", "lines": good_line},
        "no order id": {"lines": [good_line]},
        "numeric order id": {"order_id": 7, "lines": [good_line]},
        "long order id": {"order_id": "x" * 101, "lines": [good_line]},
        "unknown field": {"order_id": "o", "lines": [good_line], "coupon": "X"},
        "unknown line field": {"order_id": "o", "lines": [{**good_line, "price": 3}]},
        "too many lines": {"order_id": "o", "lines": [good_line] * 101},
        "bad ship_to": {
            "order_id": "o",
            "lines": [good_line],
            "ship_to": {"latitude": 91, "longitude": 0},
        },
        "string ship_to": {
            "order_id": "o",
            "lines": [good_line],
            "ship_to": {"latitude": "52", "longitude": 0},
        },
        "zero expires_in": {"order_id": "o", "lines": [good_line], "expires_in": 0},
        "float expires_in": {"order_id": "o", "lines": [good_line], "expires_in": 1.5},
        "bad sku": {"order_id": "o", "lines": [{"sku": "../etc", "quantity": 1}]},
        "list body": [good_line],
    }
    return list(bodies.items())


@pytest.mark.parametrize(("case", "body"), _bad_bodies(), ids=[c for c, _ in _bad_bodies()])
def test_bad_input_is_400_and_changes_nothing(storefront, stocked, case, body):
    response = storefront.post(URL, body)
    assert response.status_code == 400, response.json()
    assert error_code(response) == "validation_error"
    assert not Reservation.objects.exists()
    assert reserved("BER") == reserved("HAM") == 0


@pytest.mark.parametrize(
    "raw",
    [
        "{",
        "not json",
        '{"order_id": "o",}',
        "\xff",
        '{"order_id": "o", "lines": [], "ship_to": {"latitude": NaN, "longitude": 0}}',
        '{"order_id": "o", "lines": [{"sku": "TSHIRT-M", "quantity": ' + "9" * 5000 + "}]}",
        "[" * 100_000 + "]" * 100_000,
    ],
    ids=["open", "text", "trailing comma", "bad utf-8", "NaN", "5000 digits", "deep nesting"],
)
def test_malformed_json_is_400(storefront, stocked, raw):
    response = storefront.post(URL, raw=raw)
    assert response.status_code == 400
    assert error_code(response) == "validation_error"


def test_non_json_content_type_is_415(storefront, stocked):
    response = storefront.client.post(
        URL,
        "order_id=o",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Token {storefront.key}",
    )
    assert response.status_code == 415
    assert error_code(response) == "unsupported_media_type"


def test_expires_in_sets_expires_at(storefront, stocked):
    before = timezone.now()
    body = storefront.post(URL, order(expires_in=900)).json()
    expires_at = Reservation.objects.get().expires_at
    assert before + timedelta(seconds=899) < expires_at < timezone.now() + timedelta(seconds=901)
    assert body["expires_at"] is not None


def test_a_lapsed_hold_is_expired_when_an_order_needs_its_stock(
    storefront, stocked, django_capture_on_commit_callbacks
):
    WarehouseFactory._meta.model.objects.filter(code="HAM").update(is_active=False)
    with django_capture_on_commit_callbacks(execute=True):  # the cache and gate hear of it
        storefront.post(
            URL, order("cart", lines=[{"sku": "TSHIRT-M", "quantity": 10}], expires_in=60)
        )
    clock.advance(61)  # the hold lapses; the sweeper has not run
    with django_capture_on_commit_callbacks(execute=True):
        response = storefront.post(URL, order("paid", lines=[{"sku": "TSHIRT-M", "quantity": 10}]))
    assert response.status_code == 201
    assert Reservation.objects.get(order_id="cart").status == "expired"
    assert reserved("BER") == 10


def test_get_reservation(storefront, stocked):
    storefront.post(URL, order())
    response = storefront.get(f"{URL}o-1/")
    assert response.status_code == 200
    assert response.json()["lines"][0]["quantity"] == 2
    missing = storefront.get(f"{URL}nope/")
    assert missing.status_code == 404
    assert error_code(missing) == "not_found"


def test_release_whole_order(storefront, stocked):
    storefront.post(URL, order(lines=[{"sku": "TSHIRT-M", "quantity": 2, "warehouse": "BER"}]))
    response = storefront.post(f"{URL}o-1/release/")
    assert response.status_code == 200
    assert response.json()["status"] == "released"
    assert reserved("BER") == 0
    # Releasing again is refused, naming how the order was closed; nothing changes.
    again = storefront.post(f"{URL}o-1/release/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "order_closed"
    assert again.json()["error"]["details"] == {"order_id": "o-1", "status": "released"}
    assert InventoryTransaction.objects.filter(type="RELEASE").count() == 1


def test_partial_release_and_fulfil(storefront, operations, stocked):
    storefront.post(URL, order(lines=[{"sku": "TSHIRT-M", "quantity": 5, "warehouse": "BER"}]))
    partial = {"lines": [{"sku": "TSHIRT-M", "quantity": 2}]}
    response = storefront.post(f"{URL}o-1/release/", partial, headers={"Idempotency-Key": "r1"})
    assert response.status_code == 200
    assert response.json()["lines"][0]["quantity_released"] == 2
    # The same partial release retried with its key does nothing more.
    storefront.post(f"{URL}o-1/release/", partial, headers={"Idempotency-Key": "r1"})
    assert reserved("BER") == 3
    shipped = operations.post(f"{URL}o-1/fulfill/", {"lines": [{"sku": "TSHIRT-M", "quantity": 1}]})
    assert shipped.status_code == 200
    row = Inventory.objects.get(warehouse__code="BER")
    assert (row.on_hand, row.reserved) == (9, 2)
    rest = operations.post(f"{URL}o-1/fulfill/")
    assert rest.json()["status"] == "fulfilled"
    row.refresh_from_db()
    assert (row.on_hand, row.reserved) == (7, 0)


def test_release_more_than_held_is_409(storefront, stocked):
    storefront.post(URL, order())
    response = storefront.post(
        f"{URL}o-1/release/", {"lines": [{"sku": "TSHIRT-M", "quantity": 3}]}
    )
    assert response.status_code == 409
    assert error_code(response) == "exceeds_reservation"
    assert reserved("BER") + reserved("HAM") == 2


def test_release_of_unknown_order_is_404(storefront, stocked):
    response = storefront.post(f"{URL}nope/release/")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


@pytest.mark.parametrize(
    "body",
    [
        {"lines": []},
        {"lines": [{"sku": "TSHIRT-M", "quantity": 0}]},
        {"lines": [{"sku": "TSHIRT-M", "quantity": "1"}]},
        {"everything": True},
    ],
)
def test_release_bad_input_is_400(storefront, stocked, body):
    storefront.post(URL, order())
    response = storefront.post(f"{URL}o-1/release/", body)
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert reserved("BER") + reserved("HAM") == 2


def test_fulfil_backordered_line_without_stock_is_409(storefront, db):
    from ..factories import BackorderProductFactory

    BackorderProductFactory(sku="BACK", backorder_limit=5)
    WarehouseFactory(code="BER")
    storefront.post(URL, {"order_id": "b", "lines": [{"sku": "BACK", "quantity": 3}]})
    response = storefront.post(f"{URL}b/fulfill/")
    assert response.status_code == 409
    assert error_code(response) == "insufficient_on_hand"
    receive("BACK", "BER", 3)
    assert storefront.post(f"{URL}b/fulfill/").status_code == 200


def test_the_direct_representation_equals_the_documented_serializer(storefront, stocked):
    """The views build reservation answers without the serializer (CPU); the
    serializer stays the schema. Both must say the same, before and after a
    partial release."""
    from api.renderers import reservation_data
    from api.views.reservations import ReservationOutput
    from inventory import selectors

    storefront.post(
        URL,
        order(
            lines=[
                {"sku": "TSHIRT-M", "quantity": 2, "warehouse": "HAM"},
                {"sku": "TSHIRT-M", "quantity": 1, "warehouse": "BER"},
            ],
            expires_in=900,
        ),
    )
    reservation = selectors.reservation_get(order_id="o-1")
    assert reservation_data(reservation) == ReservationOutput(reservation).data
    storefront.post(
        f"{URL}o-1/release/", {"lines": [{"sku": "TSHIRT-M", "quantity": 1, "warehouse": "HAM"}]}
    )
    reservation = selectors.reservation_get(order_id="o-1")
    assert reservation_data(reservation) == ReservationOutput(reservation).data
    assert storefront.get(f"{URL}o-1/").json() == ReservationOutput(reservation).data


def test_a_plan_short_only_in_the_read_model_is_retried_from_the_database(
    storefront, stocked, django_capture_on_commit_callbacks
):
    WarehouseFactory._meta.model.objects.filter(code="HAM").update(is_active=False)
    with django_capture_on_commit_callbacks(execute=True):  # the read model hears: 1 left
        cart = order("cart", lines=[{"sku": "TSHIRT-M", "quantity": 9}], expires_in=60)
        assert storefront.post(URL, cart).status_code == 201
    Reservation.objects.filter(order_id="cart").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    # The read model still counts the lapsed hold (1 available); the database
    # plan, after expiring it, has 10.
    response = storefront.post(URL, order("paid", lines=[{"sku": "TSHIRT-M", "quantity": 3}]))

    assert response.status_code == 201, response.json()
    assert Reservation.objects.get(order_id="cart").status == "expired"
    assert reserved("BER") == 3


def test_an_order_id_with_a_slash_is_refused_since_its_url_could_not_name_it(storefront, stocked):
    for url, body in (
        (URL, order("SHOP/1")),
        (
            URL + "batch/",
            {
                "orders": [
                    {
                        "order_id": "SHOP/2",
                        "lines": [{"sku": "TSHIRT-M", "warehouse": "BER", "quantity": 1}],
                    }
                ]
            },
        ),
    ):
        response = storefront.post(url, body)
        assert response.status_code == 400, response.content
        assert error_code(response) == "validation_error"
    assert not Reservation.objects.exists()
    assert reserved("BER") == 0
