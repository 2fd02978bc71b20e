"""Over HTTP: a hold past its `expires_at` counts nowhere (issue 13, item 2), and a
storefront request runs no separate expiry transactions (item 10).

The reported scenario: a SKU with 3 units; order A holds all 3 with
`expires_in: 1`; 3 s later (sweeper not yet run) order B for 1 unit got 409
`insufficient_stock`, `available: 0`, routed or naming the warehouse, and
`GET /availability/` showed the lapsed hold as taken. Time moves with
`inventory.clock.advance()`; the write-through runs after each commit.
"""

from datetime import timedelta

import pytest
from django.db import connection

from inventory import clock, services
from inventory.models import Reservation

from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/reservations/"


@pytest.fixture(autouse=True)
def _clock():
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(params=["sql", "python"])
def engine(request, settings):
    settings.STOCKROOM_RESERVE_ENGINE = request.param
    return request.param


@pytest.fixture(params=[True, False], ids=["cached", "uncached"])
def cache_on(request, settings):
    settings.STOCKROOM_AVAILABILITY_CACHE = request.param
    return request.param


@pytest.fixture
def held(db, storefront, django_capture_on_commit_callbacks):
    ProductFactory(sku="HOT")
    WarehouseFactory(code="BER", latitude=52.52, longitude=13.405)
    WarehouseFactory(code="HAM", latitude=53.55, longitude=9.993)
    with django_capture_on_commit_callbacks(execute=True):
        receive("HOT", "BER", 3)
    storefront.get("/api/v1/availability/HOT/")  # warm
    with django_capture_on_commit_callbacks(execute=True):
        response = storefront.post(
            URL,
            {"order_id": "A", "lines": [{"sku": "HOT", "quantity": 3}], "expires_in": 1},
        )
    assert response.status_code == 201, response.json()
    return storefront


def available(storefront):
    single = storefront.get("/api/v1/availability/HOT/").json()
    batch = storefront.get("/api/v1/availability/", {"sku": ["HOT"]}).json()["results"][0]
    assert single == batch
    return single["available"]


@pytest.mark.parametrize("where", ["routed", "named"])
def test_the_reported_scenario_over_http(
    held, engine, cache_on, where, django_capture_on_commit_callbacks
):
    storefront = held
    assert available(storefront) == 0
    clock.advance(3)  # A lapsed; the sweeper has not run
    assert available(storefront) == 3
    line = {"sku": "HOT", "quantity": 1}
    if where == "named":
        line["warehouse"] = "BER"
    with django_capture_on_commit_callbacks(execute=True):
        response = storefront.post(URL, {"order_id": "B", "lines": [line]})
    assert response.status_code == 201, response.json()
    assert response.json()["lines"][0]["warehouse"] == "BER"
    assert Reservation.objects.get(order_id="A").status == "expired"
    assert available(storefront) == 2
    assert_invariants()


def test_the_batch_endpoint_takes_lapsed_units(held, engine, django_capture_on_commit_callbacks):
    storefront = held
    clock.advance(3)
    with django_capture_on_commit_callbacks(execute=True):
        response = storefront.post(
            URL + "batch/",
            {
                "orders": [
                    {
                        "order_id": "B1",
                        "lines": [{"sku": "HOT", "quantity": 2, "warehouse": "BER"}],
                    },
                    {
                        "order_id": "B2",
                        "lines": [{"sku": "HOT", "quantity": 2, "warehouse": "BER"}],
                    },
                ]
            },
        )
    body = response.json()
    assert [r["outcome"] for r in body["results"]] == ["created", "error"]
    assert body["results"][1]["error"]["details"]["lines"][0]["available"] == 1
    assert available(storefront) == 1
    assert_invariants()


def test_expires_in_is_counted_from_the_stock_clock(held):
    clock.advance(3600)
    response = held.post(
        URL, {"order_id": "L", "lines": [{"sku": "HOT", "quantity": 1}], "expires_in": 60}
    )
    assert response.status_code == 201
    expires_at = Reservation.objects.get(order_id="L").expires_at
    assert abs((expires_at - clock.now()).total_seconds() - 60) < 5


def test_one_request_runs_no_separate_expiry_transactions(
    storefront, engine, settings, django_capture_on_commit_callbacks
):
    """30 lapsed one-unit carts; an order for 25 units releases the 25 earliest, in
    its own transaction: no transaction (savepoint) per lapsed order. (Before, the
    routed retry ran `reservations_expire`, one transaction per lapsed order, up
    to 500.) The gate is off so that the order reaches the database either way."""
    settings.STOCKROOM_SOLD_OUT_GATE = False
    ProductFactory(sku="HOT")
    WarehouseFactory(code="BER")
    with django_capture_on_commit_callbacks(execute=True):
        receive("HOT", "BER", 30)
        for n in range(30):
            services.stock_reserve(
                order_id=f"cart-{n:02d}",
                lines=[services.ReserveLine("HOT", "BER", 1)],
                actor="client:shop",
                expires_at=clock.now() - timedelta(seconds=100 - n),  # lapsed
            )
    transactions = []

    def count(execute, sql, params, many, context):
        if sql.startswith(("SAVEPOINT", "BEGIN")):
            transactions.append(sql)
        return execute(sql, params, many, context)

    with django_capture_on_commit_callbacks(execute=True), connection.execute_wrapper(count):
        response = storefront.post(
            URL, {"order_id": "big", "lines": [{"sku": "HOT", "quantity": 25}]}
        )
    assert response.status_code == 201, response.json()
    assert len(transactions) <= 2, transactions  # the reservation's own
    expired = set(Reservation.objects.filter(status="expired").values_list("order_id", flat=True))
    assert expired == {f"cart-{n:02d}" for n in range(25)}  # earliest first, only as needed
    assert_invariants()
