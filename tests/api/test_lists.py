"""Read lists with cursor pagination and filters; unknown endpoints and methods."""

import base64

import pytest
from django.utils import timezone

from inventory import services
from inventory.services import ReserveLine

from ..conftest import receive
from ..factories import ProductFactory, WarehouseFactory
from .conftest import error_code

pytestmark = pytest.mark.django_db


def walk(caller, url, params=None):
    """Every item of a list, following `next` cursors."""
    items, pages = [], 0
    response = caller.get(url, params)
    while True:
        assert response.status_code == 200, response.json()
        body = response.json()
        items += body["results"]
        pages += 1
        if not body["next"]:
            return items, pages
        response = caller.get(body["next"])


def test_products_are_paginated_by_cursor(reader, db):
    for i in range(25):
        ProductFactory(sku=f"P{i:02d}", category="mugs" if i % 2 else "shirts")
    items, pages = walk(reader, "/api/v1/products/", {"limit": 10})
    assert [p["sku"] for p in items] == [f"P{i:02d}" for i in range(25)]
    assert pages == 3
    mugs, _ = walk(reader, "/api/v1/products/", {"category": "mugs"})
    assert len(mugs) == 12


def test_warehouses_list_and_filter(reader, db):
    WarehouseFactory(code="A")
    WarehouseFactory(code="B", is_active=False)
    items, _ = walk(reader, "/api/v1/warehouses/")
    assert [w["code"] for w in items] == ["A", "B"]
    active, _ = walk(reader, "/api/v1/warehouses/", {"is_active": "true"})
    assert [w["code"] for w in active] == ["A"]


def test_warehouses_filter_is_named_active_like_the_field_and_is_active_still_works(reader, db):
    """One name: the list filter is `active`, as in the warehouse's body; the old
    `is_active` stays accepted (deprecated, for one release); bad values are 400."""
    WarehouseFactory(code="A")
    WarehouseFactory(code="B", is_active=False)
    for name in ("active", "is_active"):
        on, _ = walk(reader, "/api/v1/warehouses/", {name: "true"})
        off, _ = walk(reader, "/api/v1/warehouses/", {name: "false"})
        assert ([w["code"] for w in on], [w["code"] for w in off]) == (["A"], ["B"])
        assert all(w["active"] for w in on)
        response = reader.get("/api/v1/warehouses/", {name: "yes"})
        assert (response.status_code, error_code(response)) == (400, "validation_error")


def test_inventory_filters(reader, stocked):
    services.inventory_set_reorder(sku="TSHIRT-M", warehouse="HAM", reorder_threshold=5)
    services.inventory_set_reorder(sku="TSHIRT-M", warehouse="BER", reorder_threshold=5)
    items, _ = walk(reader, "/api/v1/inventory/", {"warehouse": "BER"})
    assert [(r["sku"], r["warehouse"], r["on_hand"]) for r in items] == [("TSHIRT-M", "BER", 10)]
    below, _ = walk(reader, "/api/v1/inventory/", {"below_threshold": "true"})
    assert [r["warehouse"] for r in below] == ["HAM"]
    above, _ = walk(reader, "/api/v1/inventory/", {"below_threshold": "false"})
    assert [r["warehouse"] for r in above] == ["BER"]
    by_sku, _ = walk(reader, "/api/v1/inventory/", {"sku": "TSHIRT-M"})
    assert len(by_sku) == 2


def test_transactions_filters_newest_first(reader, stocked):
    since = timezone.now()
    services.stock_reserve(order_id="o-9", lines=[ReserveLine("TSHIRT-M", "BER", 2)], actor="c")
    receive("TSHIRT-M", "HAM", 1)
    everything, _ = walk(reader, "/api/v1/transactions/", {"limit": 1})
    assert [t["type"] for t in everything] == ["RECEIVE", "RESERVE", "RECEIVE", "RECEIVE"]
    recent, _ = walk(reader, "/api/v1/transactions/", {"since": since.isoformat()})
    assert len(recent) == 2
    order, _ = walk(reader, "/api/v1/transactions/", {"reference": "o-9", "type": "RESERVE"})
    assert [(t["reference_id"], t["reserved_delta"]) for t in order] == [("o-9", 2)]
    ham, _ = walk(reader, "/api/v1/transactions/", {"warehouse": "HAM", "sku": "TSHIRT-M"})
    assert len(ham) == 2


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("/api/v1/transactions/", {"type": "STEAL"}),
        ("/api/v1/transactions/", {"since": "yesterday"}),
        ("/api/v1/transactions/", {"colour": "red"}),
        ("/api/v1/inventory/", {"below_threshold": "maybe"}),
        ("/api/v1/products/", {"stock_policy": "sometimes"}),
        ("/api/v1/products/", {"limit": "0"}),
        ("/api/v1/products/", {"limit": "501"}),
        ("/api/v1/products/", {"limit": "ten"}),
        ("/api/v1/products/", {"cursor": "garbage"}),
        ("/api/v1/products/", {"limit": "\u00b2"}),
        ("/api/v1/transactions/", {"cursor": base64.b64encode(b"p=not-a-uuid").decode()}),
        ("/api/v1/inventory/", {"cursor": base64.b64encode(b"o=1&p=zz").decode()}),
        ("/api/v1/products/", {"cursor": base64.b64encode(b"o=-5").decode()}),
    ],
)
def test_bad_list_parameters_are_400(reader, db, url, params):
    response = reader.get(url, params)
    assert response.status_code == 400, response.json()
    assert error_code(response) == "validation_error"


def test_unknown_endpoint_is_a_json_404(reader, db):
    response = reader.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_wrong_method_is_405(reader, operations, db):
    response = operations.client.delete(
        "/api/v1/products/", HTTP_AUTHORIZATION=f"Token {operations.key}"
    )
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"


def test_unknown_endpoint_is_a_json_404_for_writes_too(operations, db):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    for path in ("/api/v1/nothing/", "/api/v1/products/a%0Ab/"):
        response = client.put(path, "{}", content_type="application/json")
        assert response.status_code == 404
        assert error_code(response) == "not_found"


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/v1/availability/a%00b/"),
        ("get", "/api/v1/reservations/a%00/"),
        ("post", "/api/v1/reservations/a%00/release/"),
        ("get", "/api/v1/products/%00/"),
        ("patch", "/api/v1/warehouses/%00/"),
        ("patch", "/api/v1/inventory/A/%00/"),
    ],
)
def test_nul_in_a_path_is_404(operations, storefront, db, method, url):
    caller = storefront if "reservations" in url or "availability" in url else operations
    response = caller.get(url) if method == "get" else getattr(caller, method)(url, {})
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_nul_in_a_batch_sku_is_400(reader, db):
    response = reader.get("/api/v1/availability/", {"sku": ["A", "B\x00"]})
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
