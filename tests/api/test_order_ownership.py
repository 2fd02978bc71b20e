"""A storefront client reads, releases and fulfils only the orders it placed.

Another storefront's order is answered as unknown (404 `not_found`, nothing
changed), and reserving a taken order id, even with the same lines, is a 409
`order_conflict` that never hands out the other's reservation. An operations
client (the warehouse system) acts on every order. Both reservation engines.
"""

import pytest

from inventory.models import Inventory, InventoryTransaction, Reservation

from .conftest import make_caller

pytestmark = pytest.mark.django_db

ORDER = {"order_id": "SHOP-A-1", "lines": [{"sku": "TSHIRT-M", "warehouse": "BER", "quantity": 2}]}


@pytest.fixture(params=["sql", "python"])
def engine(request, settings):
    settings.STOCKROOM_RESERVE_ENGINE = request.param
    return request.param


@pytest.fixture
def other_shop(db):
    return make_caller("other-shop", "storefront")


@pytest.fixture
def placed(storefront, stocked, engine):
    response = storefront.post("/api/v1/reservations/", ORDER)
    assert response.status_code == 201
    return response.json()


def berlin() -> Inventory:
    return Inventory.objects.get(product__sku="TSHIRT-M", warehouse__code="BER")


def test_another_storefront_cannot_see_release_or_fulfil_the_order(placed, other_shop):
    ledger = InventoryTransaction.objects.count()
    url = "/api/v1/reservations/SHOP-A-1/"

    for response in (
        other_shop.get(url),
        other_shop.post(url + "release/"),
        other_shop.post(url + "fulfill/"),
        other_shop.post(
            url + "release/",
            {"lines": [{"sku": "TSHIRT-M", "quantity": 1}]},
            headers={"Idempotency-Key": "k1"},
        ),
    ):
        assert response.status_code == 404, response.content
        assert response.json()["error"]["code"] == "not_found"

    assert Reservation.objects.get(order_id="SHOP-A-1").status == "active"
    assert (berlin().on_hand, berlin().reserved) == (10, 2)
    assert InventoryTransaction.objects.count() == ledger


def test_reserving_a_taken_order_id_is_a_conflict_even_with_the_same_lines(placed, other_shop):
    response = other_shop.post("/api/v1/reservations/", ORDER)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "order_conflict"
    assert "lines" not in response.json()  # the other's reservation is not handed out

    batch = other_shop.post("/api/v1/reservations/batch/", {"orders": [ORDER]})
    assert batch.status_code == 200
    [result] = batch.json()["results"]
    assert (result["outcome"], result["status_code"]) == ("error", 409)
    assert result["error"]["code"] == "order_conflict"
    assert berlin().reserved == 2


def test_the_placing_storefront_replays_reads_and_releases_its_own(storefront, placed):
    assert storefront.post("/api/v1/reservations/", ORDER).status_code == 200
    assert storefront.get("/api/v1/reservations/SHOP-A-1/").json()["order_id"] == "SHOP-A-1"
    released = storefront.post("/api/v1/reservations/SHOP-A-1/release/")
    assert released.status_code == 200
    assert released.json()["status"] == "released"
    assert berlin().reserved == 0


def test_an_operations_client_fulfils_any_order(placed, operations):
    assert operations.get("/api/v1/reservations/SHOP-A-1/").status_code == 200
    response = operations.post("/api/v1/reservations/SHOP-A-1/fulfill/")
    assert response.status_code == 200
    assert response.json()["status"] == "fulfilled"
    assert (berlin().on_hand, berlin().reserved) == (8, 0)
