"""Bundles over the API (issue #16): bundle SKUs in a reservation's lines (routed
and in a batch), the answer's component lines naming their bundle, release and
fulfil by bundle SKU, and a bad bundle request answered with a code."""

import pytest

from inventory.models import Inventory, Reservation

from ..bundle_invariants import gate_off_unless_it_knows_bundles
from ..conftest import assert_invariants, receive
from ..factories import BundleFactory, WarehouseFactory
from .conftest import error_code

pytestmark = pytest.mark.django_db

URL = "/api/v1/reservations/"


@pytest.fixture(autouse=True)
def _ledger_matches_after_each_test(db):
    yield
    assert_invariants()


@pytest.fixture(autouse=True)
def _gate_knows_bundles_or_is_off(settings):
    gate_off_unless_it_knows_bundles(settings)


@pytest.fixture
def box(db):
    WarehouseFactory(code="BER", latitude=52.52, longitude=13.405)
    WarehouseFactory(code="HAM", latitude=53.55, longitude=9.993)
    BundleFactory("BOX", {"MUG": 2, "SAUCER": 1})
    for sku in ("MUG", "SAUCER"):
        receive(sku, "BER", 10)


def reserved(sku, code="BER"):
    return Inventory.objects.get(product__sku=sku, warehouse__code=code).reserved


def test_a_routed_order_with_a_bundle_shows_its_component_lines(storefront, box):
    response = storefront.post(
        URL,
        {
            "order_id": "o-1",
            "lines": [{"sku": "BOX", "quantity": 2}, {"sku": "MUG", "quantity": 1}],
        },
    )

    assert response.status_code == 201, response.json()
    lines = sorted(response.json()["lines"], key=lambda x: (x["sku"], x.get("bundle", "")))
    assert [(x["sku"], x["warehouse"], x["quantity"], x.get("bundle")) for x in lines] == [
        ("MUG", "BER", 1, None),
        ("MUG", "BER", 4, "BOX"),
        ("SAUCER", "BER", 2, "BOX"),
    ]
    assert "bundle" not in lines[0]  # a plain line has no bundle key
    # the same order again: 200, the same lines, nothing twice
    again = storefront.post(
        URL,
        {
            "order_id": "o-1",
            "lines": [{"sku": "MUG", "quantity": 1}, {"sku": "BOX", "quantity": 2}],
        },
    )
    assert again.status_code == 200
    assert reserved("MUG") == 5
    got = storefront.get(f"{URL}o-1/").json()["lines"]
    assert sorted((x["sku"], x.get("bundle", "")) for x in got) == sorted(
        (x["sku"], x.get("bundle", "")) for x in lines
    )


def test_a_bundle_and_its_component_over_the_limit_is_refused_with_a_code(storefront, box):
    response = storefront.post(
        URL,
        {
            "order_id": "o-1",
            "lines": [
                {"sku": "BOX", "quantity": 4, "warehouse": "BER"},
                {"sku": "MUG", "quantity": 3, "warehouse": "BER"},
            ],
        },
    )

    assert response.status_code == 409
    assert error_code(response) == "insufficient_stock"
    assert response.json()["error"]["details"]["lines"] == [
        {"sku": "MUG", "warehouse": "BER", "requested": 11, "available": 10}
    ]
    assert not Reservation.objects.exists()


def test_release_and_fulfil_by_bundle_sku(storefront, box):
    created = storefront.post(URL, {"order_id": "o-1", "lines": [{"sku": "BOX", "quantity": 3}]})
    assert created.status_code == 201, created.json()

    fulfilled = storefront.post(f"{URL}o-1/fulfill/", {"lines": [{"sku": "BOX", "quantity": 1}]})
    assert fulfilled.status_code == 200, fulfilled.json()
    assert sorted((x["sku"], x["quantity_fulfilled"]) for x in fulfilled.json()["lines"]) == [
        ("MUG", 2),
        ("SAUCER", 1),
    ]
    released = storefront.post(f"{URL}o-1/release/", {"lines": [{"sku": "BOX", "quantity": 1}]})
    assert released.status_code == 200
    assert (reserved("MUG"), reserved("SAUCER")) == (2, 1)
    too_many = storefront.post(f"{URL}o-1/release/", {"lines": [{"sku": "BOX", "quantity": 2}]})
    assert too_many.status_code == 409
    assert error_code(too_many) == "exceeds_reservation"
    assert (reserved("MUG"), reserved("SAUCER")) == (2, 1)


def test_a_batch_accepts_bundle_lines(storefront, box):
    response = storefront.post(
        f"{URL}batch/",
        {
            "orders": [
                {"order_id": "b-1", "lines": [{"sku": "BOX", "quantity": 4, "warehouse": "BER"}]},
                {"order_id": "b-2", "lines": [{"sku": "BOX", "quantity": 2, "warehouse": "BER"}]},
                {"order_id": "b-3", "lines": [{"sku": "MUG", "quantity": 2, "warehouse": "BER"}]},
            ]
        },
    )

    assert response.status_code == 200, response.json()
    outcomes = [(r["order_id"], r["outcome"]) for r in response.json()["results"]]
    assert outcomes == [("b-1", "created"), ("b-2", "error"), ("b-3", "created")]
    assert (reserved("MUG"), reserved("SAUCER")) == (10, 4)
