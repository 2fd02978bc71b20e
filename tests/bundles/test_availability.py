"""A bundle's availability, derived from its components (issue #16, item 2).

Per warehouse: min over components of ⌊component sellable / quantity⌋; total: the
sum. The cached path (the Redis read model) and the database path give the same
answer; the cached one reads the components' entries in the same round trip as
the bundle's (no extra round trip on a hit), so a bundle is never stale relative
to its components. Write-throughs run (`django_capture_on_commit_callbacks(execute=True)`).
"""

from datetime import timedelta

import pytest

from inventory import availability_cache, clock, selectors, services
from inventory.models import StockPolicy
from inventory.services import ReserveLine

from ..conftest import receive
from ..factories import BackorderProductFactory, ProductFactory
from .conftest import make_bundle

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clock():
    clock.reset()
    yield
    clock.reset()


def both_paths(skus):
    """(cached answer, database answer) for `skus`, compared field by field."""
    cached = selectors.availability_for_skus(skus)
    database = selectors.availability_from_database(skus)
    return cached, database


def summary(found):
    if found is None:
        return None
    return (
        found.available,
        found.status,
        [(w.code, w.available) for w in found.warehouses],
        found.ships_in_days,
    )


def assert_same(skus):
    cached, database = both_paths(skus)
    assert {s: summary(a) for s, a in cached.items()} == {
        s: summary(a) for s, a in database.items()
    }
    return cached


def test_per_warehouse_min_of_floors_and_total_over_warehouses(gift_box):
    found = assert_same(["GIFT-BOX"])["GIFT-BOX"]
    # BER: min(7 // 2, 5 // 1) = 3; HAM: min(4 // 2, 1 // 1) = 1.
    assert summary(found) == (4, "low_stock", [("BER", 3), ("HAM", 1)], None)


def test_the_api_answers_a_bundle_like_any_sku(gift_box, storefront):
    body = storefront.get("/api/v1/availability/GIFT-BOX/").json()
    assert body == {
        "sku": "GIFT-BOX",
        "available": 4,
        "status": "low_stock",
        "warehouses": [{"code": "BER", "available": 3}, {"code": "HAM", "available": 1}],
        "ships_in_days": None,
    }


def test_batch_mixes_bundles_and_plain_skus(gift_box, storefront):
    response = storefront.get("/api/v1/availability/", {"sku": ["MUG", "GIFT-BOX", "NOPE", "TEA"]})
    body = response.json()
    assert [r["sku"] for r in body["results"]] == ["MUG", "GIFT-BOX", "TEA"]
    assert [r["available"] for r in body["results"]] == [11, 4, 6]
    assert body["unknown_skus"] == ["NOPE"]
    # A bundle, its components and plain SKUs in one batch: same as the database path.
    assert_same(["MUG", "GIFT-BOX", "TEA"])


def test_a_hit_reads_the_components_in_the_same_round_trip(gift_box):
    selectors.availability_for_skus(["GIFT-BOX"])  # fills the entries
    before = availability_cache.STATS["round_trips"]
    hits = availability_cache.STATS["hits"]
    misses = availability_cache.STATS["misses"]
    found = selectors.availability_for_skus(["GIFT-BOX"])["GIFT-BOX"]
    assert found.available == 4
    assert availability_cache.STATS["round_trips"] - before == 1
    assert availability_cache.STATS["hits"] - hits == 1
    assert availability_cache.STATS["misses"] == misses


def test_never_stale_after_component_changes_hit_and_miss_agree(
    gift_box, django_capture_on_commit_callbacks
):
    assert selectors.availability_for_skus(["GIFT-BOX"])["GIFT-BOX"].available == 4
    with django_capture_on_commit_callbacks(execute=True):
        receive("TEA", "HAM", 3)  # HAM: min(4 // 2, 4) = 2
        services.stock_reserve(
            order_id="O-1", lines=[ReserveLine("MUG", "BER", 2)], actor="c"
        )  # BER: min(5 // 2, 5) = 2
    misses = availability_cache.STATS["misses"]
    found = assert_same(["GIFT-BOX"])["GIFT-BOX"]
    assert availability_cache.STATS["misses"] == misses  # served from the read model
    assert summary(found)[:3] == (4, "low_stock", [("BER", 2), ("HAM", 2)])
    # And a cold read (every entry dropped) gives the same.
    availability_cache.reset_store()
    availability_cache.get_many([])  # a fresh client
    from django_redis import get_redis_connection

    get_redis_connection("default").flushdb()
    assert summary(selectors.availability_for_skus(["GIFT-BOX"])["GIFT-BOX"]) == summary(found)


def test_a_composition_change_shows_at_once(gift_box, django_capture_on_commit_callbacks):
    assert selectors.availability_for_skus(["GIFT-BOX"])["GIFT-BOX"].available == 4
    with django_capture_on_commit_callbacks(execute=True):
        services.bundle_set_components(product=gift_box, components=[{"sku": "MUG", "quantity": 1}])
    found = assert_same(["GIFT-BOX"])["GIFT-BOX"]
    assert [(w.code, w.available) for w in found.warehouses] == [("BER", 7), ("HAM", 4)]
    # The next read predicts the new component list: one round trip again.
    before = availability_cache.STATS["round_trips"]
    selectors.availability_for_skus(["GIFT-BOX"])
    assert availability_cache.STATS["round_trips"] - before == 1


def test_lapsed_holds_count_nowhere_for_a_bundle(gift_box, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.stock_reserve(
            order_id="HOLD",
            lines=[ReserveLine("TEA", "BER", 5), ReserveLine("TEA", "HAM", 1)],
            actor="c",
            expires_at=clock.now() + timedelta(seconds=1),
        )
    assert summary(assert_same(["GIFT-BOX"])["GIFT-BOX"])[:2] == (0, "out_of_stock")
    clock.advance(3)  # the hold lapsed; the sweeper has not run
    assert summary(assert_same(["GIFT-BOX"])["GIFT-BOX"])[:3] == (
        4,
        "low_stock",
        [("BER", 3), ("HAM", 1)],
    )


@pytest.mark.parametrize(
    ("tea_policy", "mug_stock", "status"),
    [
        (StockPolicy.BACKORDER, 7, "backorder"),
        (StockPolicy.PREORDER, 7, "preorder"),
        (StockPolicy.BACKORDER, 1, "out_of_stock"),  # a normal component caps it
        (StockPolicy.NORMAL, 7, "out_of_stock"),
    ],
)
def test_backorder_follows_the_components(tea_policy, mug_stock, status, warehouse):
    ProductFactory(sku="MUG")
    BackorderProductFactory(sku="TEA", stock_policy=tea_policy, backorder_limit=3) if (
        tea_policy != StockPolicy.NORMAL
    ) else ProductFactory(sku="TEA")
    receive("MUG", "BER", mug_stock)
    make_bundle("BOX", {"MUG": 2, "TEA": 1})
    found = assert_same(["BOX"])["BOX"]
    assert (found.available, found.status) == (0, status)


def test_sellable_excludes_safety_stock_and_inactive_warehouses(gift_box):
    services.inventory_set_reorder(sku="TEA", warehouse="BER", safety_stock=3)  # BER: 2 teas
    found = assert_same(["GIFT-BOX"])["GIFT-BOX"]
    assert [(w.code, w.available) for w in found.warehouses] == [("BER", 2), ("HAM", 1)]


def test_the_gate_refuses_a_bundle_only_when_components_are_truly_out(
    gift_box, django_capture_on_commit_callbacks
):
    gate = availability_cache.sold_out_lines
    assert gate([("GIFT-BOX", None, 1)]) is None  # not cached yet: never refused
    selectors.availability_for_skus(["GIFT-BOX", "MUG"])  # the read model is warm
    assert gate([("GIFT-BOX", None, 1)]) is None
    with django_capture_on_commit_callbacks(execute=True):
        # TEA sold out in BER, one tea left in HAM: still one box in HAM.
        services.stock_reserve(order_id="T1", lines=[ReserveLine("TEA", "BER", 5)], actor="c")
    assert gate([("GIFT-BOX", None, 1)]) is None
    assert gate([("GIFT-BOX", "BER", 1)]) == [
        {"sku": "GIFT-BOX", "warehouse": "BER", "requested": 1, "available": 0}
    ]
    with django_capture_on_commit_callbacks(execute=True):
        # One mug left in HAM: half a box.
        services.stock_reserve(order_id="M1", lines=[ReserveLine("MUG", "HAM", 3)], actor="c")
    # HAM: min(1 // 2, 1) = 0; BER: no tea. Every component-limited warehouse is out.
    assert gate([("GIFT-BOX", None, 2)]) == [
        {"sku": "GIFT-BOX", "warehouse": None, "requested": 2, "available": 0}
    ]
    # The mugs alone are not out: a mixed order passes to the database.
    assert gate([("GIFT-BOX", None, 1), ("MUG", None, 1)]) is None


def test_the_gate_leaves_a_bundle_with_a_backorder_component_to_the_database(warehouse):
    ProductFactory(sku="MUG")
    BackorderProductFactory(sku="TEA", backorder_limit=3)
    make_bundle("BOX", {"MUG": 1, "TEA": 1})
    selectors.availability_for_skus(["BOX"])  # warm
    assert availability_cache.sold_out_lines([("BOX", None, 1)]) is None


def test_a_component_policy_change_shows_in_the_bundle_at_once(
    warehouse, django_capture_on_commit_callbacks
):
    """The component's entry is invalidated (policy is not versioned per row): the
    bundle's next read refills that component alone and derives from it."""
    ProductFactory(sku="MUG")
    tea = ProductFactory(sku="TEA")
    with django_capture_on_commit_callbacks(execute=True):
        receive("MUG", "BER", 4)
    make_bundle("BOX", {"MUG": 2, "TEA": 1})
    assert selectors.availability_for_skus(["BOX"])["BOX"].status == "out_of_stock"
    with django_capture_on_commit_callbacks(execute=True):
        services.product_set_stock_policy(
            product=tea, stock_policy=StockPolicy.PREORDER, backorder_limit=10
        )
    found = assert_same(["BOX"])["BOX"]
    assert (found.available, found.status) == (0, "preorder")
