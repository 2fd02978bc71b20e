"""Bundles over the catalogue API: create, read, update, and the refusals (issue #16, item 1)."""

import pytest

from inventory import services
from inventory.models import BundleComponent, Inventory, Product, ReservationLine

from ..api.conftest import error_code
from ..factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db

BOX = {
    "sku": "BOX",
    "name": "Gift box",
    "components": [{"sku": "MUG", "quantity": 2}, {"sku": "TEA", "quantity": 1}],
}


@pytest.fixture
def parts(db):
    ProductFactory(sku="MUG")
    ProductFactory(sku="TEA")
    ProductFactory(sku="SPOON")


def test_create_a_bundle_and_read_it_back(operations, parts):
    response = operations.post("/api/v1/products/", BOX)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["is_bundle"] is True
    assert body["components"] == BOX["components"]
    again = operations.get("/api/v1/products/BOX/").json()
    assert again["components"] == BOX["components"]
    listed = {p["sku"]: p for p in operations.get("/api/v1/products/").json()["results"]}
    assert listed["BOX"]["components"] == BOX["components"]
    assert listed["MUG"] == {**listed["MUG"], "is_bundle": False, "components": []}


def test_update_the_composition_with_patch_and_put(operations, parts):
    operations.post("/api/v1/products/", BOX)
    response = operations.patch(
        "/api/v1/products/BOX/", {"components": [{"sku": "SPOON", "quantity": 4}]}
    )
    assert response.status_code == 200, response.json()
    assert response.json()["components"] == [{"sku": "SPOON", "quantity": 4}]
    # PUT without components leaves the composition alone.
    response = operations.put("/api/v1/products/BOX/", {"name": "Spoons"})
    assert response.status_code == 200
    assert response.json()["components"] == [{"sku": "SPOON", "quantity": 4}]
    # [] makes it a plain product again.
    response = operations.patch("/api/v1/products/BOX/", {"components": []})
    assert response.json()["is_bundle"] is False
    assert not BundleComponent.objects.exists()


@pytest.mark.parametrize(
    ("components", "status", "code"),
    [
        ([{"sku": "MUG", "quantity": 0}], 400, "validation_error"),
        ([{"sku": "MUG", "quantity": "2"}], 400, "validation_error"),
        ([{"sku": "MUG"}], 400, "validation_error"),
        ([{"sku": "MUG", "quantity": 1, "colour": "red"}], 400, "validation_error"),
        ([{"sku": "MUG", "quantity": 1}, {"sku": "MUG", "quantity": 2}], 400,
         "invalid_bundle_component"),
        ([{"sku": "BOX", "quantity": 1}], 400, "invalid_bundle_component"),
        ([{"sku": "NOPE", "quantity": 1}], 400, "unknown_sku"),
        ([{"sku": "OTHER-BOX", "quantity": 1}], 400, "invalid_bundle_component"),
    ],
)  # fmt: skip
def test_bad_compositions_are_refused_and_change_nothing(
    operations, parts, components, status, code
):
    services.product_create(sku="OTHER-BOX", name="x", components=[{"sku": "TEA", "quantity": 1}])
    response = operations.post("/api/v1/products/", {**BOX, "components": components})
    assert response.status_code == status, response.json()
    assert error_code(response) == code
    assert not Product.objects.filter(sku="BOX").exists()


def test_a_partial_component_in_a_patch_is_refused(operations, parts):
    operations.post("/api/v1/products/", BOX)
    response = operations.patch("/api/v1/products/BOX/", {"components": [{"quantity": 1}]})
    assert response.status_code == 400
    assert Product.objects.get(sku="BOX").components.count() == 2


def test_a_bundle_is_not_a_component_nor_backorderable_itself(operations, parts):
    operations.post("/api/v1/products/", BOX)
    response = operations.patch(
        "/api/v1/products/BOX/", {"stock_policy": "backorder", "backorder_limit": 3}
    )
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    # A component cannot become a bundle (no nesting).
    response = operations.patch(
        "/api/v1/products/MUG/", {"components": [{"sku": "SPOON", "quantity": 1}]}
    )
    assert response.status_code == 409
    assert error_code(response) == "bundle_conflict"


def test_a_product_with_stock_rows_cannot_become_a_bundle(operations, parts):
    WarehouseFactory(code="BER")
    services.stock_receive(sku="SPOON", warehouse="BER", quantity=1, actor="user:test")
    response = operations.patch(
        "/api/v1/products/SPOON/", {"components": [{"sku": "MUG", "quantity": 1}]}
    )
    assert response.status_code == 409
    assert error_code(response) == "bundle_conflict"
    assert Product.objects.get(sku="SPOON").is_bundle is False


def test_receive_and_adjust_on_a_bundle_are_refused(operations, parts):
    WarehouseFactory(code="BER")
    operations.post("/api/v1/products/", BOX)
    for url, body in [
        ("/api/v1/stock/receive/", {"sku": "BOX", "warehouse": "BER", "quantity": 1}),
        (
            "/api/v1/stock/adjust/",
            {"sku": "BOX", "warehouse": "BER", "delta": 1, "reason": "found"},
        ),
    ]:
        response = operations.post(url, body)
        assert response.status_code == 409, response.json()
        assert error_code(response) == "sku_is_bundle"
    assert not Inventory.objects.filter(product__sku="BOX").exists()


def test_changing_a_composition_is_refused_while_a_reservation_holds_the_bundle(operations, parts):
    """No versioning: the lines reserved for the old composition must close first."""
    WarehouseFactory(code="BER")
    services.stock_receive(sku="MUG", warehouse="BER", quantity=5, actor="user:test")
    operations.post("/api/v1/products/", BOX)
    order = services.stock_reserve(
        order_id="O-1",
        lines=[services.ReserveLine(sku="MUG", warehouse="BER", quantity=2)],
        actor="user:test",
    )
    # The reserve of a bundle line (hD2's part) marks its component lines with the
    # bundle; marked by hand here, as the lines of a bundle order look.
    ReservationLine.objects.filter(reservation__order_id="O-1").update(
        bundle=Product.objects.get(sku="BOX")
    )
    change = {"components": [{"sku": "MUG", "quantity": 3}]}
    response = operations.patch("/api/v1/products/BOX/", change)
    assert response.status_code == 409
    assert error_code(response) == "bundle_in_use"
    assert dict(
        BundleComponent.objects.filter(bundle__sku="BOX").values_list("component__sku", "quantity")
    ) == {"MUG": 2, "TEA": 1}
    # The same composition again is a no-op, not a refusal (a catalogue re-sync).
    same = operations.patch("/api/v1/products/BOX/", {"components": BOX["components"]})
    assert same.status_code == 200
    services.reservation_release(order_id="O-1", actor="user:test")
    assert order is not None
    assert operations.patch("/api/v1/products/BOX/", change).status_code == 200


def test_a_bulk_receive_row_naming_a_bundle_is_a_bad_row(parts):
    """The CSV bulk receive reports it by line (the command exits non-zero on it)."""
    import io

    WarehouseFactory(code="BER")
    services.product_create(sku="BOX", name="x", components=[{"sku": "MUG", "quantity": 2}])
    result = services.stock_receive_bulk(
        source=io.StringIO("sku,warehouse,quantity\nMUG,BER,4\nBOX,BER,1\n", newline=""),
        actor="user:tester",
        reference="DN-1",
        atomic=False,
    )
    assert {row.line: row.error for row in result.bad_rows} == {3: "sku_is_bundle"}
    assert (result.applied, result.invalid) == (1, 1)
    assert not Inventory.objects.filter(product__sku="BOX").exists()
