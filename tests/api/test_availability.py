"""GET /availability/{sku}/ and the batch GET /availability/?sku=…"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inventory import selectors, services
from inventory.models import Inventory
from inventory.services import ReserveLine

from ..conftest import receive
from ..factories import BackorderProductFactory, ProductFactory, WarehouseFactory
from .conftest import error_code

pytestmark = pytest.mark.django_db


def test_one_sku_totals_and_per_warehouse(reader, stocked, django_capture_on_commit_callbacks):
    reader.get("/api/v1/availability/TSHIRT-M/")  # cached before the write
    with django_capture_on_commit_callbacks(execute=True):  # the cache hears after commit
        services.stock_reserve(
            order_id="o1", lines=[ReserveLine("TSHIRT-M", "BER", 3)], actor="client:test"
        )
    response = reader.get("/api/v1/availability/TSHIRT-M/")
    assert response.status_code == 200
    body = response.json()
    # Read and operations clients also get the per-warehouse states (issue #15,
    # tests/api/test_stock_states.py); the storefront's answer is the rest.
    assert [w["reserved"] for w in body.pop("stock")] == [3, 0]
    assert body == {
        "sku": "TSHIRT-M",
        "available": 11,
        "status": "in_stock",
        "warehouses": [{"code": "BER", "available": 7}, {"code": "HAM", "available": 4}],
        "ships_in_days": None,
    }


def test_unknown_sku_is_404(reader, db):
    response = reader.get("/api/v1/availability/NOPE/")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_inactive_warehouses_do_not_count(reader, stocked):
    WarehouseFactory(code="HAM").__class__.objects.filter(code="HAM").update(is_active=False)
    body = reader.get("/api/v1/availability/TSHIRT-M/").json()
    assert body["available"] == 10
    assert [w["code"] for w in body["warehouses"]] == ["BER"]


@pytest.mark.parametrize(
    ("on_hand", "threshold", "status"),
    [
        (0, 0, "out_of_stock"),
        (5, 0, "low_stock"),  # STOCKROOM_LOW_STOCK_UNITS (5) when no threshold is set
        (6, 0, "in_stock"),
        (20, 20, "low_stock"),  # at or below the reorder threshold
        (21, 20, "in_stock"),
    ],
)
def test_status_in_stock_low_stock_out_of_stock(
    reader, db, on_hand, threshold, status, django_capture_on_commit_callbacks
):
    ProductFactory(sku="MUG")
    WarehouseFactory(code="BER")
    with django_capture_on_commit_callbacks(execute=True):
        if on_hand:
            receive("MUG", "BER", on_hand)
        services.inventory_set_reorder(sku="MUG", warehouse="BER", reorder_threshold=threshold)
    assert reader.get("/api/v1/availability/MUG/").json()["status"] == status


def test_backorder_and_preorder_status_while_the_allowance_lasts(
    reader, db, django_capture_on_commit_callbacks
):
    WarehouseFactory(code="BER")
    BackorderProductFactory(sku="BACK", backorder_limit=2)
    BackorderProductFactory(sku="PRE", stock_policy="preorder", backorder_limit=2)
    assert reader.get("/api/v1/availability/BACK/").json()["status"] == "backorder"
    assert reader.get("/api/v1/availability/PRE/").json()["status"] == "preorder"
    with django_capture_on_commit_callbacks(execute=True):  # the cache hears after commit
        services.stock_reserve(order_id="o", lines=[ReserveLine("BACK", "BER", 2)], actor="c")
    body = reader.get("/api/v1/availability/BACK/").json()
    assert body["status"] == "out_of_stock"  # the allowance is used up
    assert body["available"] == 0
    assert body["warehouses"] == [{"code": "BER", "available": 0}]


def test_lapsed_holds_do_not_count_against_uncached_availability(reader, stocked, settings):
    settings.STOCKROOM_AVAILABILITY_CACHE = False
    services.stock_reserve(
        order_id="lapsed",
        lines=[ReserveLine("TSHIRT-M", "BER", 6)],
        actor="c",
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    services.stock_reserve(
        order_id="live",
        lines=[ReserveLine("TSHIRT-M", "BER", 1)],
        actor="c",
        expires_at=timezone.now() + timedelta(hours=1),
    )
    body = reader.get("/api/v1/availability/TSHIRT-M/").json()
    assert body["warehouses"][0] == {"code": "BER", "available": 9}
    # The row still holds them until the sweeper (or a reservation needing them) runs.
    assert Inventory.objects.get(warehouse__code="BER").reserved == 7


def test_cached_availability_does_not_count_lapsed_holds_before_or_after_the_sweeper(
    reader, stocked, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.stock_reserve(
            order_id="lapsed",
            lines=[ReserveLine("TSHIRT-M", "BER", 6)],
            actor="c",
            expires_at=timezone.now() - timedelta(seconds=1),
        )
    body = reader.get("/api/v1/availability/TSHIRT-M/").json()
    assert body["warehouses"][0] == {"code": "BER", "available": 10}  # not yet swept
    with django_capture_on_commit_callbacks(execute=True):
        assert services.reservations_expire() == 1
    body = reader.get("/api/v1/availability/TSHIRT-M/").json()
    assert body["warehouses"][0] == {"code": "BER", "available": 10}


def test_batch_reports_unknown_skus_and_keeps_order(reader, stocked):
    ProductFactory(sku="MUG")
    response = reader.get("/api/v1/availability/", {"sku": ["MUG", "NOPE", "TSHIRT-M"]})
    assert response.status_code == 200
    body = response.json()
    assert [r["sku"] for r in body["results"]] == ["MUG", "TSHIRT-M"]
    assert body["results"][0]["status"] == "out_of_stock"
    assert body["unknown_skus"] == ["NOPE"]


def test_batch_of_100_skus_is_one_stock_query_then_only_redis(reader, db, settings):
    warehouses = [WarehouseFactory(code=f"W{i}") for i in range(3)]
    skus = [ProductFactory(sku=f"S{i:03d}").sku for i in range(100)]
    for sku in skus[:30]:
        for w in warehouses:
            receive(sku, w.code, 2)
    with CaptureQueriesContext(connection) as cold:
        result = selectors.availability_for_skus(skus)
    # Every SKU's rows in one query (plus, once, the active warehouses and the
    # "ships in" lookups for the depleted SKUs).
    assert len([q for q in cold if "inventory_inventory" in q["sql"]]) == 1
    assert result["S000"].available == 6
    assert result["S099"].status == "out_of_stock"
    with CaptureQueriesContext(connection) as warm:
        assert selectors.availability_for_skus(skus) == result
    assert len(warm) == 0
    with CaptureQueriesContext(connection) as uncached:
        assert selectors.availability_from_database(skus) == result
    assert len([q for q in uncached if "inventory_inventory" in q["sql"]]) == 1
    # And over HTTP, the whole batch answers.
    response = reader.get("/api/v1/availability/", {"sku": skus})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 100


@pytest.mark.parametrize("count", [0, 101])
def test_batch_size_is_limited(reader, db, count):
    response = reader.get("/api/v1/availability/", {"sku": [f"S{i}" for i in range(count)]})
    assert response.status_code == 400
    assert error_code(response) == "validation_error"


def test_batch_refuses_unknown_query_parameters(reader, db):
    response = reader.get("/api/v1/availability/", {"sku": "A", "skus": "B"})
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"skus": ["Unknown query parameter."]}


def test_ships_in_days_comes_from_one_function(reader, db, monkeypatch):
    product = ProductFactory(sku="GONE")
    WarehouseFactory(code="BER")
    monkeypatch.setattr(
        selectors,
        "ships_in_days_for_products",
        lambda ids: {product.id: {"min": 3, "max": 5}} if product.id in ids else {},
    )
    assert reader.get("/api/v1/availability/GONE/").json()["ships_in_days"] == {"min": 3, "max": 5}


def test_ships_in_days_is_empty_until_purchasing_is_wired(db):
    assert selectors.ships_in_days_for_products([ProductFactory().id]) == {}


@pytest.mark.parametrize(
    "status, warehouses, ships",
    [
        ("in_stock", (("BER", 7), ("HAM", 3)), None),
        ("low_stock", (("BER", 1),), None),
        ("out_of_stock", (), {"min": 3, "max": 5}),
        ("backorder", (("BER", 0),), {"min": 0, "max": 2}),
    ],
)
def test_answers_are_built_exactly_as_the_documented_serializer_writes_them(
    status, warehouses, ships
):
    import uuid

    from api.renderers import availability_data
    from api.views.availability import AvailabilityOutput

    found = selectors.SkuAvailability(
        sku="S-1",
        product_id=uuid.uuid4(),
        available=sum(n for _, n in warehouses),
        status=status,
        warehouses=tuple(selectors.WarehouseAvailability(c, n) for c, n in warehouses),
        ships_in_days=ships,
    )
    assert availability_data(found) == AvailabilityOutput(found).data


def test_a_real_answer_equals_the_serializer_output(reader, stocked):
    from api.views.availability import AvailabilityOutput

    found = selectors.availability_for_skus(["TSHIRT-M"])["TSHIRT-M"]
    # (a read client's answer adds `stock`, issue #15: compared without it)
    single = reader.get("/api/v1/availability/TSHIRT-M/").json()
    single.pop("stock")
    assert single == AvailabilityOutput(found).data
    batch = reader.get("/api/v1/availability/", {"sku": ["TSHIRT-M"]}).json()
    batch["results"][0].pop("stock")
    assert batch == {"results": [AvailabilityOutput(found).data], "unknown_skus": []}
