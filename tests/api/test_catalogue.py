"""Catalogue sync: products (create, replace, patch, bulk upsert), warehouses, reorder settings."""

import pytest

from inventory import services
from inventory.models import Inventory, InventoryTransaction, Product
from inventory.services import ReserveLine
from warehouses.models import Warehouse

from ..conftest import assert_invariants, receive
from ..factories import BackorderProductFactory, ProductFactory, WarehouseFactory
from .conftest import error_code

pytestmark = pytest.mark.django_db

PRODUCT = {
    "sku": "MUG-1",
    "name": "Mug",
    "category": "kitchen",
    "weight_g": 350,
    "length_mm": 90,
    "width_mm": 90,
    "height_mm": 100,
    "stock_policy": "backorder",
    "backorder_limit": 4,
}


def test_create_product(operations, db):
    response = operations.post("/api/v1/products/", PRODUCT)
    assert response.status_code == 201
    body = response.json()
    assert {k: body[k] for k in PRODUCT} == PRODUCT
    assert Product.objects.get(sku="MUG-1").allowance == 4


def test_create_existing_product_is_409(operations, db):
    operations.post("/api/v1/products/", PRODUCT)
    response = operations.post("/api/v1/products/", {**PRODUCT, "name": "Other"})
    assert response.status_code == 409
    assert error_code(response) == "already_exists"
    assert Product.objects.get().name == "Mug"


@pytest.mark.parametrize(
    "change",
    [
        {"sku": ""},
        {"sku": "-bad"},
        {"sku": "x" * 65},
        {"sku": "bulk"},  # /products/bulk/ is the bulk upsert
        {"name": ""},
        {"name": 5},
        # 256 characters as sent: over the schema's maxLength even though trimming
        # the tab would leave 255 (schemathesis found it accepted)
        {"name": "\t" + "x" * 255},
        {"weight_g": -1},
        {"weight_g": "350"},
        {"stock_policy": "sometimes"},
        {"stock_policy": "normal", "backorder_limit": 3},
        {"backorder_limit": -1},
        {"colour": "red"},
    ],
)
def test_create_product_bad_input_is_400(operations, db, change):
    response = operations.post("/api/v1/products/", {**PRODUCT, **change})
    assert response.status_code == 400, response.json()
    assert error_code(response) == "validation_error"
    assert not Product.objects.exists()


def test_patch_product_and_stock_policy_copies_the_allowance(operations, stocked):
    response = operations.patch(
        "/api/v1/products/TSHIRT-M/",
        {"name": "T-shirt M", "stock_policy": "backorder", "backorder_limit": 2},
    )
    assert response.status_code == 200
    assert response.json()["name"] == "T-shirt M"
    assert set(Inventory.objects.values_list("backorder_allowance", flat=True)) == {2}
    # Back to normal: allowance 0 again.
    operations.patch("/api/v1/products/TSHIRT-M/", {"stock_policy": "normal"})
    assert set(Inventory.objects.values_list("backorder_allowance", flat=True)) == {0}


def test_lowering_the_allowance_below_backorders_is_409(operations, db):
    BackorderProductFactory(sku="BACK", backorder_limit=5)
    WarehouseFactory(code="BER")
    services.stock_reserve(order_id="o", lines=[ReserveLine("BACK", "BER", 4)], actor="c")
    response = operations.patch("/api/v1/products/BACK/", {"backorder_limit": 1})
    assert response.status_code == 409
    assert error_code(response) == "allowance_below_backorders"
    assert Product.objects.get().backorder_limit == 5


def test_put_replaces_every_field(operations, db):
    operations.post("/api/v1/products/", PRODUCT)
    response = operations.put("/api/v1/products/MUG-1/", {"name": "Mug v2"})
    assert response.status_code == 200
    product = Product.objects.get()
    assert (product.name, product.category, product.weight_g, product.stock_policy) == (
        "Mug v2",
        "",
        None,
        "normal",
    )
    assert product.backorder_limit == 0
    missing = operations.put("/api/v1/products/MUG-1/", {})
    assert missing.status_code == 400


def test_catalogue_never_changes_stock(operations, stocked):
    response = operations.patch("/api/v1/products/TSHIRT-M/", {"on_hand": 99})
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    response = operations.patch("/api/v1/inventory/TSHIRT-M/BER/", {"on_hand": 99})
    assert response.status_code == 400
    assert Inventory.objects.get(warehouse__code="BER").on_hand == 10


def test_unknown_product_is_404(operations, db):
    for call in (
        operations.get("/api/v1/products/NOPE/"),
        operations.patch("/api/v1/products/NOPE/", {"name": "x"}),
    ):
        assert call.status_code == 404
        assert error_code(call) == "not_found"


def test_sku_with_a_slash(operations, reader, db):
    assert operations.post("/api/v1/products/", {**PRODUCT, "sku": "A/B"}).status_code == 201
    assert reader.get("/api/v1/products/A/B/").json()["sku"] == "A/B"
    assert reader.get("/api/v1/availability/A/B/").json()["sku"] == "A/B"


def test_bulk_upsert_creates_and_updates(operations, db):
    BackorderProductFactory(sku="OLD", backorder_limit=5)
    WarehouseFactory(code="BER")
    receive("OLD", "BER", 1)
    items = [{"sku": f"NEW-{i}", "name": f"New {i}"} for i in range(999)]
    items.append(
        {"sku": "OLD", "name": "Renamed", "stock_policy": "preorder", "backorder_limit": 7}
    )
    response = operations.post("/api/v1/products/bulk/", {"products": items})
    assert response.status_code == 200
    assert response.json() == {"created": 999, "updated": 1}
    old = Product.objects.get(sku="OLD")
    assert (old.name, old.stock_policy, old.backorder_limit) == ("Renamed", "preorder", 7)
    assert Inventory.objects.get().backorder_allowance == 7
    assert Product.objects.count() == 1000
    assert_invariants()


def test_bulk_upsert_over_the_limit_is_400(operations, db):
    items = [{"sku": f"N-{i}", "name": "n"} for i in range(1001)]
    response = operations.post("/api/v1/products/bulk/", {"products": items})
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert not Product.objects.exists()


@pytest.mark.parametrize(
    "items",
    [
        [],
        [{"sku": "A", "name": "a"}, {"sku": "A", "name": "again"}],
        [
            {"sku": "A", "name": "a"},
            {"sku": "B", "name": "b", "stock_policy": "normal", "backorder_limit": 2},
        ],
        [{"sku": "A", "name": "a"}, {"sku": "B", "name": ""}],
        [{"sku": "A", "name": "a"}, {"sku": "B", "name": "b", "weight_g": 1.5}],
    ],
)
def test_bulk_upsert_is_all_or_nothing(operations, db, items):
    response = operations.post("/api/v1/products/bulk/", {"products": items})
    assert response.status_code == 400, response.json()
    assert error_code(response) == "validation_error"
    assert not Product.objects.exists()


WAREHOUSE = {
    "code": "LEJ",
    "name": "Leipzig",
    "address": "Leipzig, Germany",
    "latitude": 51.339695,
    "longitude": 12.373075,
    "capacity": 50000,
    "active": True,
}


def test_create_and_patch_warehouse(operations, reader, db):
    response = operations.post("/api/v1/warehouses/", WAREHOUSE)
    assert response.status_code == 201
    assert response.json() == WAREHOUSE
    duplicate = operations.post("/api/v1/warehouses/", WAREHOUSE)
    assert duplicate.status_code == 409
    assert error_code(duplicate) == "already_exists"
    patched = operations.patch("/api/v1/warehouses/LEJ/", {"active": False, "capacity": 10})
    assert patched.status_code == 200
    assert (patched.json()["active"], patched.json()["capacity"]) == (False, 10)
    assert Warehouse.objects.get().is_active is False
    assert reader.get("/api/v1/warehouses/LEJ/").json()["active"] is False


@pytest.mark.parametrize(
    "change",
    [
        {"code": "bad code"},
        {"latitude": 91},
        {"longitude": "12"},
        {"active": "yes"},
        {"capacity": -1},
        {"manager": "x"},
    ],
)
def test_warehouse_bad_input_is_400(operations, db, change):
    response = operations.post("/api/v1/warehouses/", {**WAREHOUSE, **change})
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert not Warehouse.objects.exists()


def test_inventory_reorder_settings(operations, stocked):
    response = operations.patch(
        "/api/v1/inventory/TSHIRT-M/BER/", {"reorder_threshold": 20, "reorder_quantity": 100}
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["reorder_threshold"], body["reorder_quantity"], body["on_hand"]) == (20, 100, 10)
    assert not InventoryTransaction.objects.filter(type="ADJUST").exists()


def test_inventory_reorder_settings_on_a_new_row(operations, stocked):
    ProductFactory(sku="MUG")
    response = operations.patch("/api/v1/inventory/MUG/HAM/", {"reorder_threshold": 3})
    assert response.status_code == 200
    assert response.json()["on_hand"] == 0
    assert operations.get("/api/v1/inventory/MUG/HAM/").json()["reorder_threshold"] == 3


@pytest.mark.parametrize(
    ("url", "body", "status", "code"),
    [
        ("/api/v1/inventory/TSHIRT-M/BER/", {}, 400, "validation_error"),
        ("/api/v1/inventory/TSHIRT-M/BER/", {"reorder_threshold": -1}, 400, "validation_error"),
        ("/api/v1/inventory/TSHIRT-M/BER/", {"reorder_threshold": "3"}, 400, "validation_error"),
        ("/api/v1/inventory/NOPE/BER/", {"reorder_threshold": 1}, 400, "unknown_sku"),
        ("/api/v1/inventory/TSHIRT-M/NOPE/", {"reorder_threshold": 1}, 400, "unknown_warehouse"),
    ],
)
def test_inventory_patch_refusals(operations, stocked, url, body, status, code):
    response = operations.patch(url, body)
    assert response.status_code == status
    assert error_code(response) == code
    assert Inventory.objects.get(warehouse__code="BER").reorder_threshold == 0


def test_an_oversized_body_is_400(operations, db, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    items = [{"sku": f"A{i}", "name": "x" * 50} for i in range(100)]
    response = operations.post("/api/v1/products/bulk/", {"products": items})
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert not Product.objects.exists()


def test_bulk_upsert_refuses_the_reserved_sku_too(operations, db):
    response = operations.post("/api/v1/products/bulk/", {"products": [{**PRODUCT, "sku": "bulk"}]})
    assert response.status_code == 400
    assert not Product.objects.exists()


def test_a_storefront_reads_the_catalogue_it_sells_from(storefront, stocked):
    """Issue #20 item 3: products and warehouses (lists and details) are readable with the
    storefront scope; stock rows, the ledger and catalogue writes stay closed to it."""
    products = storefront.get("/api/v1/products/")
    assert products.status_code == 200, products.json()
    assert [p["sku"] for p in products.json()["results"]] == ["TSHIRT-M"]
    assert storefront.get("/api/v1/products/TSHIRT-M/").json()["sku"] == "TSHIRT-M"
    warehouses = storefront.get("/api/v1/warehouses/", {"is_active": "true"})
    assert [w["code"] for w in warehouses.json()["results"]] == ["BER", "HAM"]
    assert storefront.get("/api/v1/warehouses/BER/").status_code == 200
    for url in ("/api/v1/inventory/", "/api/v1/inventory/TSHIRT-M/BER/", "/api/v1/transactions/"):
        assert storefront.get(url).status_code == 403, url
    assert storefront.post("/api/v1/products/", {"sku": "X-1", "name": "X"}).status_code == 403
    assert storefront.patch("/api/v1/warehouses/BER/", {"active": False}).status_code == 403
