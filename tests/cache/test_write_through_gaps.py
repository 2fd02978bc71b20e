"""Read-model behaviour a mutation probe of the suite found unguarded (#13 item 8).

Each test fails if its behaviour is removed: a write-through that creates an
entry gives it a TTL, one publication carrying two versions of a row leaves the
newest, and the sold-out gate refuses nothing for a SKU that some warehouse can
still sell. Writes run their after-commit callbacks (the write-through lives
there).
"""

import pytest
from django.db import transaction
from django_redis import get_redis_connection

from inventory import availability_cache, errors, routing, services
from inventory.models import Inventory
from inventory.services import CommittedChange, ReserveLine

from ..api.conftest import make_caller
from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def warehouses(db):
    WarehouseFactory(code="BER", latitude=52.52, longitude=13.405)
    WarehouseFactory(code="HAM", latitude=53.55, longitude=9.993)


def cached_view(sku):
    snap = availability_cache.read_cached([sku]).get(sku)
    return None if snap is None else snap.warehouses


def db_view(sku):
    return {
        row.warehouse.code: row.available
        for row in Inventory.objects.filter(product__sku=sku).select_related("warehouse")
    }


# --- a write-through's entry expires ----------------------------------------


def test_a_write_through_to_a_never_read_sku_sets_a_ttl(
    warehouses, settings, django_capture_on_commit_callbacks
):
    """The write-through creates a (partial) entry for a SKU nobody has read; it
    must expire like a filled one, or Redis grows without bound."""
    settings.STOCKROOM_AVAILABILITY_TTL = 60
    ProductFactory(sku="NEVER-READ")
    redis = get_redis_connection("default")
    assert redis.dbsize() == 0
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        receive("NEVER-READ", "BER", 5)
    assert callbacks, "the write-through runs after commit"

    key = availability_cache._key("NEVER-READ")
    assert redis.exists(key), "the write-through created the entry"
    assert 0 < redis.ttl(key) <= 60
    # And nothing it wrote lives forever (TTL -1 = no expiry).
    assert {k: redis.ttl(k) for k in redis.scan_iter("*") if redis.ttl(k) < 0} == {}


def test_a_write_through_to_an_expired_entry_sets_a_ttl_again(
    warehouses, settings, django_capture_on_commit_callbacks
):
    settings.STOCKROOM_AVAILABILITY_TTL = 60
    ProductFactory(sku="P")
    with django_capture_on_commit_callbacks(execute=True):
        receive("P", "BER", 5)
    availability_cache.get_many(["P"])  # filled: complete entry
    redis = get_redis_connection("default")
    redis.delete(availability_cache._key("P"))  # as if it had expired
    with django_capture_on_commit_callbacks(execute=True):
        receive("P", "HAM", 1)
    assert 0 < redis.ttl(availability_cache._key("P")) <= 60


# --- one publication, two versions of a row ---------------------------------


def change(version, available, sku="P", code="BER"):
    return CommittedChange(
        inventory_id=None,
        product_id=None,
        warehouse_id=None,
        type="RECEIVE",
        on_hand=available,
        reserved=0,
        version=version,
        sku=sku,
        warehouse_code=code,
    )


@pytest.mark.parametrize("order", ["newest_first", "newest_last"])
def test_two_versions_of_one_row_in_one_publication_leave_the_newest(
    warehouses, order, django_capture_on_commit_callbacks
):
    ProductFactory(sku="P")
    with django_capture_on_commit_callbacks(execute=True):
        receive("P", "BER", 5)
    availability_cache.get_many(["P"])
    version = Inventory.objects.get(product__sku="P").version
    newer, older = change(version + 2, 1), change(version + 1, 7)
    changes = [newer, older] if order == "newest_first" else [older, newer]

    availability_cache.apply_committed_changes(changes)

    assert cached_view("P") == {"BER": 1}


def test_one_transaction_changing_a_row_twice_leaves_its_last_balance(
    warehouses, django_capture_on_commit_callbacks
):
    ProductFactory(sku="P")
    with django_capture_on_commit_callbacks(execute=True):
        receive("P", "BER", 5)
    availability_cache.get_many(["P"])
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        receive("P", "BER", 3)
        services.stock_reserve(order_id="o", lines=[ReserveLine("P", "BER", 6)], actor="c")
        receive("P", "BER", 1)
    assert cached_view("P") == db_view("P") == {"BER": 3}


# --- the sold-out gate and a partly available SKU -----------------------------


@pytest.fixture
def partly_sold_out(warehouses, django_capture_on_commit_callbacks):
    """P: sold out in BER (1 received, 1 reserved), 2 available in HAM; cached."""
    ProductFactory(sku="P")
    with django_capture_on_commit_callbacks(execute=True):
        receive("P", "BER", 1)
        receive("P", "HAM", 2)
        services.stock_reserve(order_id="ber", lines=[ReserveLine("P", "BER", 1)], actor="c")
    availability_cache.get_many(["P"])
    assert cached_view("P") == {"BER": 0, "HAM": 2}


def test_gate_refuses_the_sold_out_warehouse_only(partly_sold_out):
    assert availability_cache.sold_out_lines([("P", "BER", 1)]) == [
        {"sku": "P", "warehouse": "BER", "requested": 1, "available": 0}
    ]
    assert availability_cache.sold_out_lines([("P", "HAM", 1)]) is None
    # More than HAM has is for the database to refuse (with the real figure).
    assert availability_cache.sold_out_lines([("P", "HAM", 3)]) is None
    # One line still sellable: the order reaches the database.
    assert availability_cache.sold_out_lines([("P", "BER", 1), ("P", "HAM", 1)]) is None


@pytest.mark.parametrize("quantity", [1, 2, 3])
def test_gate_lets_a_routed_order_through_when_any_warehouse_has_stock(partly_sold_out, quantity):
    """Routed (no warehouse): not sold out while HAM has 2, whatever is asked,
    including more than one warehouse (or all of them) has."""
    assert availability_cache.sold_out_lines([("P", None, quantity)]) is None


def test_routed_orders_on_a_partly_sold_out_sku_through_the_services(
    partly_sold_out, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(errors.InsufficientStock) as refused:
            routing.reserve_order(
                order_id="three", lines=[routing.RequestedLine("P", 3, None)], actor="c"
            )
        assert not isinstance(refused.value, errors.SoldOut)  # the database said so
        placed = routing.reserve_order(
            order_id="two", lines=[routing.RequestedLine("P", 2, None)], actor="c"
        )
    assert placed.created is True
    assert cached_view("P") == db_view("P") == {"BER": 0, "HAM": 0}
    # Now every warehouse is sold out: the gate refuses a routed order too.
    assert availability_cache.sold_out_lines([("P", None, 1)]) is not None
    assert_invariants()


def test_routed_order_on_a_partly_sold_out_sku_over_http(
    partly_sold_out, settings, django_capture_on_commit_callbacks
):
    settings.STOCKROOM_API_THROTTLE_RATE = "100000/min"
    shop = make_caller("shop", "storefront")
    with django_capture_on_commit_callbacks(execute=True):
        named = shop.post(
            "/api/v1/reservations/",
            {"order_id": "b", "lines": [{"sku": "P", "quantity": 1, "warehouse": "BER"}]},
        )
        routed = shop.post(
            "/api/v1/reservations/", {"order_id": "r", "lines": [{"sku": "P", "quantity": 2}]}
        )
    assert named.status_code == 409, named.json()
    assert routed.status_code == 201, routed.json()
    assert [(line["warehouse"], line["quantity"]) for line in routed.json()["lines"]] == [
        ("HAM", 2)
    ]
    assert_invariants()


# --- entries filled together do not expire together -------------------------


def test_entries_filled_in_one_call_expire_spread_over_a_fifth_of_the_ttl(warehouses, settings):
    """A warm-up (or a page of misses) fills many entries in one call. With one
    TTL for all, they would all expire in the same second and every reader of
    that second would go to the database at once (the open-loop bench saw a
    100-SKU page's p99 jump from 11 to 635 ms at that instant). Each fill's TTL
    is the TTL less up to a fifth of it, spread by key: never longer than the
    TTL (the staleness bound), rarely equal for two keys."""
    settings.STOCKROOM_AVAILABILITY_TTL = 600
    skus = [f"SPREAD-{i:03d}" for i in range(200)]
    for sku in skus:
        ProductFactory(sku=sku)
    availability_cache.get_many(skus)  # one fill call for all of them
    redis = get_redis_connection("default")
    ttls = [redis.ttl(availability_cache._key(sku)) for sku in skus]
    assert all(480 <= ttl <= 600 for ttl in ttls), (min(ttls), max(ttls))
    # Spread, not bunched: over 200 keys, 121 possible values.
    assert len(set(ttls)) > 50, sorted(set(ttls))
    assert max(ttls) - min(ttls) > 90
