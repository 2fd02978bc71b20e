"""The reservation endpoint's database work: one statement reserves the order."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ..conftest import assert_invariants, receive
from .conftest import make_caller

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(settings):
    from ..factories import ProductFactory, WarehouseFactory

    settings.STOCKROOM_API_THROTTLE_RATE = "100000/min"
    ProductFactory(sku="A")
    WarehouseFactory(code="BER", latitude=52.52, longitude=13.405)
    receive("A", "BER", 100)
    caller = make_caller("shop", "storefront")
    caller.get("/api/v1/availability/A/")  # authenticated client and read model warm
    return caller


def test_order_naming_its_warehouse_is_one_database_statement(shop):
    with CaptureQueriesContext(connection) as queries:
        response = shop.post(
            "/api/v1/reservations/",
            {"order_id": "o-1", "lines": [{"sku": "A", "quantity": 2, "warehouse": "BER"}]},
        )
    assert response.status_code == 201
    assert response.json()["lines"] == [
        {
            "sku": "A",
            "warehouse": "BER",
            "quantity": 2,
            "quantity_fulfilled": 0,
            "quantity_released": 0,
            "status": "active",
        }
    ]
    # One statement: the reserve function (its parameters bound server-side, $1...).
    assert [q["sql"][:32] for q in queries] == ["SELECT stockroom_reserve_orders("]
    assert_invariants()


def test_routed_order_plans_from_the_read_model(shop):
    with CaptureQueriesContext(connection) as queries:
        response = shop.post(
            "/api/v1/reservations/",
            {
                "order_id": "o-2",
                "lines": [{"sku": "A", "quantity": 1}],
                "ship_to": {"latitude": 52.0, "longitude": 13.0},
            },
        )
    assert response.status_code == 201
    assert response.json()["lines"][0]["warehouse"] == "BER"
    # The retry check for a routed order, then the reservation itself.
    assert len(queries) == 2
    assert queries[-1]["sql"].startswith("SELECT stockroom_reserve_orders(")
    assert_invariants()


def test_an_order_for_a_remembered_bundle_is_one_database_statement(shop, settings):
    """Issue #16, item 5: the first order for a bundle finds no row for its SKU,
    reads the composition and reserves (three statements); the process then
    remembers the composition, and the next order for the bundle is expanded
    before its one statement (which checks the composition under the bundle's
    lock)."""
    from ..bundle_invariants import gate_off_unless_it_knows_bundles, stale_bundle_lines
    from ..factories import BundleFactory

    gate_off_unless_it_knows_bundles(settings)
    BundleFactory("PAIR", {"A": 2})
    statements = []
    for order_id in ("o-1", "o-2"):
        with CaptureQueriesContext(connection) as queries:
            response = shop.post(
                "/api/v1/reservations/",
                {
                    "order_id": order_id,
                    "lines": [{"sku": "PAIR", "quantity": 1, "warehouse": "BER"}],
                },
            )
        assert response.status_code == 201, response.json()
        statements.append([q["sql"][:36] for q in queries])
    assert len(statements[0]) == 3
    assert len(statements[1]) == 1
    assert statements[1][0].startswith("SELECT stockroom_reserve_orders(")
    assert stale_bundle_lines() == []
    assert_invariants()
