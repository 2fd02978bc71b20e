"""Over HTTP: closing an order that holds nothing is 409 `order_closed`, never a
silent 200; a retry with the same Idempotency-Key replays the first answer.

After-commit callbacks run (the availability cache hears every change), time
moves with `inventory.clock`, both reservation engines.
"""

import pytest

from inventory import clock, services
from inventory.actors import SYSTEM_SWEEPER
from inventory.models import Inventory, InventoryTransaction, Reservation

from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory
from .conftest import error_code

pytestmark = pytest.mark.django_db

URL = "/api/v1/reservations/"


@pytest.fixture(params=["sql", "python"], autouse=True)
def engine(request, settings):
    settings.STOCKROOM_RESERVE_ENGINE = request.param
    return request.param


@pytest.fixture(autouse=True)
def _checked_after_and_real_time(db):
    yield
    clock.reset()
    assert_invariants()


@pytest.fixture
def two_units(db, django_capture_on_commit_callbacks):
    """CAM-1: 2 units in Berlin, nothing else; every callback after commit runs."""
    ProductFactory(sku="CAM-1")
    WarehouseFactory(code="BER")
    receive("CAM-1", "BER", 2)
    with django_capture_on_commit_callbacks(execute=True):
        yield


def place(caller, order_id, quantity=2, **extra):
    lines = [{"sku": "CAM-1", "quantity": quantity, "warehouse": "BER"}]
    response = caller.post(URL, {"order_id": order_id, "lines": lines, **extra})
    assert response.status_code == 201, response.json()
    return response.json()


def closed(response, status):
    assert response.status_code == 409, response.json()
    assert error_code(response) == "order_closed"
    assert response.json()["error"]["details"] == {"order_id": response.order_id, "status": status}
    return True


def post(caller, order_id, action, body=None, key=None):
    response = caller.post(
        f"{URL}{order_id}/{action}/", body, headers={"Idempotency-Key": key} if key else None
    )
    response.order_id = order_id
    return response


def berlin():
    row = Inventory.objects.get(product__sku="CAM-1", warehouse__code="BER")
    return row.on_hand, row.reserved


def test_fulfilling_a_lapsed_hold_sold_to_another_order_is_409_and_ships_nothing(
    storefront, operations, two_units
):
    """The reported scenario: it answered 200 `status: expired` with no FULFILL row."""
    place(storefront, "L1", expires_in=1)
    clock.advance(2)
    assert services.reservations_expire(now=clock.now()) == 1
    place(storefront, "L2")

    assert closed(post(operations, "L1", "fulfill"), "expired")

    assert not InventoryTransaction.objects.filter(reference_id="L1", type="FULFILL").exists()
    assert berlin() == (2, 2)
    assert post(operations, "L2", "fulfill").status_code == 200
    assert berlin() == (0, 0)


def test_a_lapsed_hold_the_sweeper_has_not_seen_is_expired_by_the_fulfil(
    storefront, operations, two_units
):
    place(storefront, "L1", expires_in=60)
    clock.advance(60)

    assert closed(post(operations, "L1", "fulfill"), "expired")

    assert berlin() == (2, 0)
    assert list(
        InventoryTransaction.objects.filter(reference_id="L1").values_list("type", "created_by")
    ) == [("RELEASE", SYSTEM_SWEEPER), ("RESERVE", "client:shop")]
    assert storefront.get(f"{URL}L1/").json()["status"] == "expired"
    # Its units are sellable at once, and the cache heard of them after commit.
    assert storefront.get("/api/v1/availability/CAM-1/").json()["available"] == 2
    place(storefront, "L2")


@pytest.mark.parametrize(
    "first, then, status",
    [("release", "fulfill", "released"), ("fulfill", "release", "fulfilled")],
)
def test_a_close_after_a_close_is_409_naming_how_it_was_closed(
    storefront, two_units, first, then, status
):
    place(storefront, "o-1")
    assert post(storefront, "o-1", first).status_code == 200
    before = (berlin(), InventoryTransaction.objects.count())
    assert closed(post(storefront, "o-1", then), status)
    assert closed(post(storefront, "o-1", first), status)
    partial = {"lines": [{"sku": "CAM-1", "quantity": 1}]}
    assert closed(post(storefront, "o-1", then, partial), status)
    assert (berlin(), InventoryTransaction.objects.count()) == before


def test_a_retry_with_the_same_idempotency_key_replays_the_first_200(storefront, two_units):
    place(storefront, "o-1")
    first = post(storefront, "o-1", "fulfill", key="ship-1")
    assert first.status_code == 200
    again = post(storefront, "o-1", "fulfill", key="ship-1")
    assert (again.status_code, again.json()) == (200, first.json())
    assert closed(post(storefront, "o-1", "fulfill"), "fulfilled")
    assert closed(post(storefront, "o-1", "fulfill", key="ship-2"), "fulfilled")
    assert InventoryTransaction.objects.filter(type="FULFILL").count() == 1
    assert berlin() == (0, 0)


def test_a_refused_keyed_close_is_refused_again_on_retry(storefront, two_units):
    place(storefront, "o-1", expires_in=5)
    clock.advance(5)
    assert closed(post(storefront, "o-1", "fulfill", key="k"), "expired")
    assert closed(post(storefront, "o-1", "fulfill", key="k"), "expired")
    assert berlin() == (2, 0)


def test_another_storefronts_closed_order_is_still_404(storefront, two_units):
    from .conftest import make_caller

    place(storefront, "o-1")
    post(storefront, "o-1", "release")
    other = make_caller("other-shop", "storefront")
    for action in ("release", "fulfill", "confirm"):
        response = post(other, "o-1", action)
        assert response.status_code == 404
        assert error_code(response) == "not_found"
    assert Reservation.objects.get().status == "released"
