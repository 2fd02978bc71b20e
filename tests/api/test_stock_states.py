"""Stock states over HTTP (issue #15): POST /stock/move/, POST /returns/,
safety stock on PATCH /inventory/, the states in GET /availability/."""

from datetime import date

import pytest

from inventory import services
from inventory.models import Inventory
from inventory.services import ReserveLine

from ..conftest import assert_invariants
from .conftest import error_code

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _ledger_matches_after_each_test(db):
    yield
    assert_invariants()


def row(code="BER", sku="TSHIRT-M") -> Inventory:
    return Inventory.objects.get(product__sku=sku, warehouse__code=code)


MOVE = {
    "sku": "TSHIRT-M",
    "warehouse": "BER",
    "from_state": "sellable",
    "to_state": "damaged",
    "quantity": 2,
    "reason": "crushed",
}


def test_move_to_damaged_and_back(operations, stocked):
    response = operations.post("/api/v1/stock/move/", MOVE)
    assert response.status_code == 201, response.json()
    [txn] = response.json()["transactions"]
    assert (txn["type"], txn["damaged_delta"], txn["on_hand_delta"]) == ("MOVE", 2, 0)
    assert (row().damaged, row().available) == (2, 8)
    again = operations.post(
        "/api/v1/stock/move/",
        {**MOVE, "from_state": "damaged", "to_state": "written_off", "quantity": 1},
        headers={"Idempotency-Key": "w-1"},
    )
    assert again.status_code == 201
    assert (row().on_hand, row().damaged) == (9, 1)


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({**MOVE, "to_state": "sellable"}, 400, "validation_error"),
        ({**MOVE, "from_state": "written_off"}, 400, "validation_error"),
        ({**MOVE, "reason": ""}, 400, "validation_error"),
        ({**MOVE, "quantity": 0}, 400, "validation_error"),
        ({**MOVE, "quantity": 11}, 409, "insufficient_stock"),
        ({**MOVE, "from_state": "damaged", "to_state": "sellable"}, 409, "insufficient_state"),
        ({**MOVE, "sku": "NOPE"}, 400, "unknown_sku"),
    ],
)
def test_bad_moves_answer_4xx_with_a_code(operations, stocked, body, status, code):
    response = operations.post("/api/v1/stock/move/", body)
    assert response.status_code == status, response.json()
    assert error_code(response) == code
    assert row().damaged == 0


def test_storefronts_cannot_move_or_return(storefront, stocked):
    assert storefront.post("/api/v1/stock/move/", MOVE).status_code == 403
    assert storefront.post("/api/v1/returns/", {}).status_code == 403


def test_returns_are_idempotent_and_bounded_by_what_shipped(operations, stocked):
    services.stock_reserve(
        order_id="o-1", lines=[ReserveLine("TSHIRT-M", "BER", 3)], actor="client:shop"
    )
    services.reservation_fulfill(order_id="o-1", actor="client:shop")
    body = {
        "return_id": "RMA-1",
        "lines": [
            {
                "sku": "TSHIRT-M",
                "warehouse": "BER",
                "quantity": 2,
                "disposition": "quality_control",
                "order_id": "o-1",
            }
        ],
    }
    first = operations.post("/api/v1/returns/", body)
    assert first.status_code == 201, first.json()
    data = first.json()
    assert data["return_id"] == "RMA-1" and data["replayed"] is False
    assert data["lines"][0]["disposition"] == "quality_control"
    assert data["transactions"][0]["quality_control_delta"] == 2
    repeat = operations.post("/api/v1/returns/", body)
    assert repeat.status_code == 200 and repeat.json()["replayed"] is True
    assert (row().on_hand, row().quality_control) == (9, 2)
    other = {**body, "lines": [{**body["lines"][0], "quantity": 1}]}
    conflict = operations.post("/api/v1/returns/", other)
    assert (conflict.status_code, error_code(conflict)) == (409, "return_conflict")
    over = operations.post("/api/v1/returns/", {**other, "return_id": "RMA-2", "lines": [
        {**body["lines"][0], "quantity": 2}
    ]})  # fmt: skip
    assert (over.status_code, error_code(over)) == (409, "exceeds_fulfilled")
    bad = operations.post("/api/v1/returns/", {**body, "return_id": "RMA-3", "lines": [
        {**body["lines"][0], "disposition": "lost"}
    ]})  # fmt: skip
    assert (bad.status_code, error_code(bad)) == (400, "validation_error")


def test_safety_stock_is_set_on_the_inventory_row(operations, stocked):
    response = operations.patch("/api/v1/inventory/TSHIRT-M/BER/", {"safety_stock": 3})
    assert response.status_code == 200, response.json()
    assert (response.json()["safety_stock"], response.json()["available"]) == (3, 7)
    availability = operations.get("/api/v1/availability/TSHIRT-M/").json()
    assert availability["available"] == 7 + 4


def test_availability_shows_states_to_operations_and_read_clients_only(
    operations, reader, storefront, stocked
):
    from purchasing.models import PurchaseOrder, PurchaseOrderLine, Supplier
    from warehouses.models import Warehouse

    services.stock_move_state(
        sku="TSHIRT-M",
        warehouse="BER",
        from_state="sellable",
        to_state="quality_control",
        quantity=4,
        reason="inspect",
        actor="user:qc",
    )
    supplier = Supplier.objects.create(name="Acme", lead_time_min_days=2, lead_time_max_days=4)
    ber = Warehouse.objects.get(code="BER")
    po = PurchaseOrder.objects.create(
        number="PO-T1",
        supplier=supplier,
        warehouse=ber,
        status="ordered",
        expected_arrival_date=date(2031, 5, 1),
        created_by="user:buyer",
    )
    PurchaseOrderLine.objects.create(
        purchase_order=po,
        product=row().product,
        warehouse=ber,
        quantity_ordered=12,
    )
    for client in (operations, reader):
        body = client.get("/api/v1/availability/TSHIRT-M/").json()
        assert body["available"] == 6 + 4
        assert body["stock"][0] == {
            "code": "BER",
            "on_hand": 10,
            "reserved": 0,
            "safety_stock": 0,
            "damaged": 0,
            "quality_control": 4,
            "available": 6,
            "incoming": 12,
            "incoming_expected": "2031-05-01",
        }
        batch = client.get("/api/v1/availability/", {"sku": ["TSHIRT-M"]}).json()
        assert batch["results"][0]["stock"][1]["code"] == "HAM"
    shop = storefront.get("/api/v1/availability/TSHIRT-M/").json()
    assert "stock" not in shop and shop["available"] == 10
