"""POST /reservations/batch/: many orders in one call, each all-or-nothing on its own."""

import pytest

from inventory.models import Inventory, InventoryTransaction, Reservation
from warehouses.models import Warehouse

from ..conftest import assert_invariants
from ..factories import ProductFactory
from .conftest import error_code

pytestmark = pytest.mark.django_db

URL = "/api/v1/reservations/batch/"


@pytest.fixture(autouse=True)
def _ledger_matches_after_each_test(db):
    yield
    assert_invariants()


def order(order_id, quantity=1, sku="TSHIRT-M", warehouse="BER", **extra):
    return {
        "order_id": order_id,
        "lines": [{"sku": sku, "quantity": quantity, "warehouse": warehouse}],
        **extra,
    }


def reserved(code, sku="TSHIRT-M"):
    return Inventory.objects.get(product__sku=sku, warehouse__code=code).reserved


def outcomes(response):
    return [(r["order_id"], r["outcome"], r["status_code"]) for r in response.json()["results"]]


def test_a_batch_reserves_every_order_and_answers_one_result_each_in_order(storefront, stocked):
    response = storefront.post(
        URL,
        {
            "orders": [
                order("b-2", 3, expires_in=900),
                order("b-1", 2, warehouse="HAM"),
                {
                    "order_id": "b-3",
                    "lines": [
                        {"sku": "TSHIRT-M", "quantity": 1, "warehouse": "BER"},
                        {"sku": "TSHIRT-M", "quantity": 1, "warehouse": "HAM"},
                    ],
                },
            ]
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert outcomes(response) == [
        ("b-2", "created", 201),
        ("b-1", "created", 201),
        ("b-3", "created", 201),
    ]
    assert (body["created"], body["exists"], body["failed"]) == (3, 0, 0)
    first = body["results"][0]
    assert (first["status"], first["error"]) == ("active", None)
    assert first["expires_at"] is not None
    assert body["results"][1]["expires_at"] is None
    assert (reserved("BER"), reserved("HAM")) == (4, 3)
    assert Reservation.objects.count() == 3
    txns = InventoryTransaction.objects.filter(type="RESERVE")
    assert txns.count() == 4
    assert {t.created_by for t in txns} == {"client:shop"}
    detail = storefront.get("/api/v1/reservations/b-3/").json()
    assert sorted((x["warehouse"], x["quantity"]) for x in detail["lines"]) == [
        ("BER", 1),
        ("HAM", 1),
    ]


def test_a_short_order_fails_alone_with_the_single_endpoints_error(storefront, stocked):
    single = storefront.post(
        "/api/v1/reservations/", order("alone", 5, warehouse="HAM")
    )  # 4 in Hamburg
    assert single.status_code == 409

    response = storefront.post(
        URL, {"orders": [order("ok-1", 2), order("short", 5, warehouse="HAM"), order("ok-2", 1)]}
    )

    assert response.status_code == 200
    assert outcomes(response) == [
        ("ok-1", "created", 201),
        ("short", "error", 409),
        ("ok-2", "created", 201),
    ]
    failed = response.json()["results"][1]
    assert failed["error"] == single.json()["error"]
    assert failed["error"]["details"]["lines"] == [
        {"sku": "TSHIRT-M", "warehouse": "HAM", "requested": 5, "available": 4}
    ]
    assert (failed["status"], failed["expires_at"]) == (None, None)
    assert (reserved("BER"), reserved("HAM")) == (3, 0)
    assert not Reservation.objects.filter(order_id="short").exists()


def test_orders_compete_for_stock_in_request_order(storefront, stocked):
    # Berlin has 10: the first two orders fit, the third finds 1 left.
    response = storefront.post(
        URL, {"orders": [order("a", 6), order("b", 3), order("c", 2), order("d", 1)]}
    )
    assert outcomes(response) == [
        ("a", "created", 201),
        ("b", "created", 201),
        ("c", "error", 409),
        ("d", "created", 201),
    ]
    assert response.json()["results"][2]["error"]["details"]["lines"][0]["available"] == 1
    assert reserved("BER") == 10


def test_the_same_batch_again_reserves_nothing_more(storefront, stocked):
    batch = {"orders": [order("r-1", 2), order("r-2", 1, warehouse="HAM")]}
    first = storefront.post(URL, batch)
    again = storefront.post(URL, batch)
    assert [o[1] for o in outcomes(first)] == ["created", "created"]
    assert outcomes(again) == [("r-1", "exists", 200), ("r-2", "exists", 200)]
    assert again.json()["created"] == 0
    assert again.json()["exists"] == 2
    assert (reserved("BER"), reserved("HAM")) == (2, 1)
    assert Reservation.objects.count() == 2


def test_an_order_reserved_by_the_single_endpoint_exists_in_a_batch(storefront, stocked):
    storefront.post("/api/v1/reservations/", order("single", 2))
    response = storefront.post(URL, {"orders": [order("single", 2), order("new", 1)]})
    assert outcomes(response) == [("single", "exists", 200), ("new", "created", 201)]
    assert reserved("BER") == 3


def test_an_existing_order_id_with_other_lines_is_order_conflict(storefront, stocked):
    storefront.post(URL, {"orders": [order("c-1", 2)]})
    response = storefront.post(URL, {"orders": [order("c-1", 3), order("c-2", 1)]})
    assert outcomes(response) == [("c-1", "error", 409), ("c-2", "created", 201)]
    assert response.json()["results"][0]["error"]["code"] == "order_conflict"
    assert reserved("BER") == 3


def test_unknown_sku_warehouse_and_inactive_warehouse_fail_their_order_only(storefront, stocked):
    Warehouse.objects.filter(code="HAM").update(is_active=False)
    response = storefront.post(
        URL,
        {
            "orders": [
                order("u-1", sku="NOPE"),
                order("u-2", warehouse="XXX"),
                order("u-3", warehouse="HAM"),
                order("u-4"),
            ]
        },
    )
    results = response.json()["results"]
    assert [(r["outcome"], r["status_code"]) for r in results] == [
        ("error", 400),
        ("error", 400),
        ("error", 409),
        ("created", 201),
    ]
    assert [r["error"]["code"] for r in results[:3]] == [
        "unknown_sku",
        "unknown_warehouse",
        "warehouse_inactive",
    ]
    assert results[0]["error"]["details"] == {"skus": ["NOPE"]}
    assert Reservation.objects.get().order_id == "u-4"


def test_a_backorder_sku_in_a_warehouse_without_a_stock_row_is_reserved(storefront, stocked):
    ProductFactory(sku="PRE", stock_policy="backorder", backorder_limit=5)
    response = storefront.post(URL, {"orders": [order("pre", 3, sku="PRE"), order("t", 1)]})
    assert [o[1] for o in outcomes(response)] == ["created", "created"]
    assert reserved("BER", sku="PRE") == 3


def test_a_sold_out_sku_is_refused_in_a_batch_too(
    storefront, stocked, django_capture_on_commit_callbacks
):
    storefront.get("/api/v1/availability/TSHIRT-M/")  # cached, so the gate can see it
    with django_capture_on_commit_callbacks(execute=True):  # the cache hears the sale
        storefront.post(URL, {"orders": [order("all-ber", 10)]})
        response = storefront.post(URL, {"orders": [order("late", 1)]})
    assert outcomes(response) == [("late", "error", 409)]
    assert reserved("BER") == 10


LINE = {"sku": "TSHIRT-M", "quantity": 1, "warehouse": "BER"}


@pytest.mark.parametrize(
    ("case", "body"),
    [
        ("no orders", {"orders": []}),
        ("orders missing", {}),
        ("orders not a list", {"orders": {"order_id": "x"}}),
        ("unknown top-level field", {"orders": [order("x")], "ship_to": {}}),
        ("unknown order field", {"orders": [{**order("x"), "ship_to": {}}]}),
        ("unknown line field", {"orders": [{"order_id": "x", "lines": [{**LINE, "note": 1}]}]}),
        (
            "line without a warehouse",
            {"orders": [{"order_id": "x", "lines": [{"sku": "TSHIRT-M", "quantity": 1}]}]},
        ),
        ("no lines", {"orders": [{"order_id": "x", "lines": []}]}),
        ("string quantity", {"orders": [{"order_id": "x", "lines": [{**LINE, "quantity": "1"}]}]}),
        ("zero quantity", {"orders": [{"order_id": "x", "lines": [{**LINE, "quantity": 0}]}]}),
        ("blank order id", {"orders": [order(" ")]}),
        ("order id too long", {"orders": [order("x" * 101)]}),
        ("expires_in 0", {"orders": [order("x", expires_in=0)]}),
        ("the same order id twice", {"orders": [order("x"), order("y"), order("x")]}),
        ("too many lines", {"orders": [{"order_id": "x", "lines": [LINE] * 101}]}),
        ("too many orders", {"orders": [order(f"o-{i}") for i in range(501)]}),
        ("a bad order after good ones", {"orders": [order("g-1"), order("g-2", quantity=-1)]}),
    ],
)
def test_bad_input_refuses_the_whole_batch_and_changes_nothing(storefront, stocked, case, body):
    response = storefront.post(URL, body)
    assert response.status_code == 400, case
    assert error_code(response) == "validation_error"
    assert not Reservation.objects.exists()
    assert reserved("BER") == 0


def test_the_whole_batch_error_names_the_order_and_field(storefront, stocked):
    response = storefront.post(
        URL,
        {"orders": [order("ok"), {"order_id": "x", "lines": [{"sku": "TSHIRT-M", "quantity": 1}]}]},
    )
    details = response.json()["error"]["details"]
    # Errors are keyed by the position of the order and of its line.
    assert details == {
        "orders": {"1": {"lines": {"0": {"warehouse": ["This field is required."]}}}}
    }


def test_merged_lines_over_the_quantity_limit_are_refused(storefront, stocked, settings):
    settings.STOCKROOM_MAX_QUANTITY = 10
    lines = [{**LINE, "quantity": 6}, {**LINE, "quantity": 6}]
    body = {"orders": [{"order_id": "x", "lines": lines}]}
    response = storefront.post(URL, body)
    assert response.status_code == 400
    assert error_code(response) == "invalid_quantity"
    assert not Reservation.objects.exists()


def test_the_batch_size_follows_the_setting(storefront, stocked, settings):
    settings.STOCKROOM_MAX_BATCH_ORDERS = 2
    response = storefront.post(URL, {"orders": [order("1"), order("2"), order("3")]})
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"orders": ["At most 2 per call."]}


@pytest.mark.parametrize("caller", ["operations", "reader"])
def test_only_storefront_clients_may_reserve(request, stocked, caller):
    response = request.getfixturevalue(caller).post(URL, {"orders": [order("x")]})
    assert response.status_code == 403
    assert error_code(response) == "permission_denied"
    assert not Reservation.objects.exists()


def test_without_a_token_is_401(anonymous, stocked):
    response = anonymous.post(URL, {"orders": [order("x")]})
    assert response.status_code == 401


def test_an_order_named_batch_can_still_be_read(storefront, stocked):
    storefront.post("/api/v1/reservations/", order("batch", 1))
    response = storefront.get(URL)
    assert response.status_code == 200
    assert response.json()["order_id"] == "batch"
    assert storefront.post("/api/v1/reservations/batch/release/").status_code == 200
    assert reserved("BER") == 0


def test_ping_answers_any_authenticated_client(storefront, reader, anonymous):
    assert storefront.get("/api/v1/ping/").json() == {"ok": True}
    assert reader.get("/api/v1/ping/").status_code == 200
    assert anonymous.get("/api/v1/ping/").status_code == 401
