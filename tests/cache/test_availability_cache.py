"""The availability read model against the real Redis: write-through after commit,
versioned writes, fills, TTL, and degradation when Redis is unreachable."""

import time

import pytest
from django.db import transaction

from inventory import availability_cache, errors, services
from inventory.models import Inventory
from inventory.services import CommittedChange, OrderLine, ReserveLine, TransferLine

from ..conftest import receive
from ..factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def stocked(product, warehouse, other_warehouse, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        receive(product.sku, "BER", 10)
        receive(product.sku, "HAM", 5)
    return product


def db_view(sku):
    return {
        row.warehouse.code: row.available
        for row in Inventory.objects.filter(product__sku=sku).select_related("warehouse")
    }


def cached_view(sku):
    snap = availability_cache.read_cached([sku]).get(sku)
    return None if snap is None else snap.warehouses


def raw_entry(sku):
    from django_redis import get_redis_connection

    raw = get_redis_connection("default").hgetall(availability_cache._key(sku))
    return {k.decode(): v.decode() for k, v in raw.items()}


def warm(sku):
    availability_cache.get_many([sku])
    assert cached_view(sku) == db_view(sku)


OPERATIONS = {
    "receive": lambda: services.stock_receive(
        sku="TSHIRT-M", warehouse="BER", quantity=3, actor="u"
    ),
    "reserve": lambda: services.stock_reserve(
        order_id="o", lines=[ReserveLine("TSHIRT-M", "BER", 4)], actor="c"
    ),
    "adjust": lambda: services.stock_adjust(
        sku="TSHIRT-M", warehouse="HAM", counted=2, reason="count", actor="u"
    ),
    "transfer": lambda: services.stock_transfer(
        source="BER", destination="HAM", lines=[TransferLine("TSHIRT-M", 2)], actor="u"
    ),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_cache_equals_database_after_each_operation(
    stocked, operation, django_capture_on_commit_callbacks
):
    warm(stocked.sku)
    with django_capture_on_commit_callbacks(execute=True):
        OPERATIONS[operation]()
    assert cached_view(stocked.sku) == db_view(stocked.sku)


@pytest.mark.parametrize("close", ["release", "fulfill", "partial_fulfill"])
def test_cache_equals_database_after_release_and_fulfil(
    stocked, close, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.stock_reserve(order_id="o", lines=[ReserveLine("TSHIRT-M", "BER", 4)], actor="c")
    warm(stocked.sku)
    with django_capture_on_commit_callbacks(execute=True):
        if close == "release":
            services.reservation_release(order_id="o", actor="c")
        elif close == "fulfill":
            services.reservation_fulfill(order_id="o", actor="c")
        else:
            services.reservation_fulfill(order_id="o", actor="c", lines=[OrderLine("TSHIRT-M", 1)])
    row = Inventory.objects.get(warehouse__code="BER")
    entry = raw_entry(stocked.sku)  # the write-through wrote the committed balance
    assert (entry["v:BER"], entry["a:BER"]) == (str(row.version), str(row.available))
    # A close does not (yet) say which holds it closed: the row's holds are
    # unknown, so the next read refills the entry from the database.
    assert entry["h:BER"] == "?"
    assert availability_cache.get_many([stocked.sku])[stocked.sku].warehouses == db_view(
        stocked.sku
    )
    assert cached_view(stocked.sku) == db_view(stocked.sku)


def test_rolled_back_change_publishes_nothing(stocked, django_capture_on_commit_callbacks):
    warm(stocked.sku)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(errors.InsufficientStock):
            services.stock_reserve(
                order_id="big", lines=[ReserveLine("TSHIRT-M", "BER", 99)], actor="c"
            )
        with pytest.raises(RuntimeError), transaction.atomic():
            services.stock_receive(sku="TSHIRT-M", warehouse="BER", quantity=1, actor="u")
            raise RuntimeError("caller rolls back")
    assert callbacks == []
    assert cached_view(stocked.sku) == db_view(stocked.sku) == {"BER": 10, "HAM": 5}


def change(version, available, sku="TSHIRT-M", code="BER", holds=()):
    return CommittedChange(
        inventory_id=None,
        product_id=None,
        warehouse_id=None,
        type="RESERVE",
        on_hand=available,
        reserved=0,
        version=version,
        sku=sku,
        warehouse_code=code,
        holds=holds,
    )


def test_out_of_order_write_throughs_cannot_regress_the_cache(stocked):
    warm(stocked.sku)
    version = Inventory.objects.get(warehouse__code="BER").version
    availability_cache.apply_committed_changes([change(version + 2, 1)])
    availability_cache.apply_committed_changes([change(version + 1, 7)])  # late, older
    assert cached_view(stocked.sku)["BER"] == 1
    assert availability_cache.STATS["stale_writes"] == 1


def test_a_fill_from_an_older_snapshot_cannot_overwrite_a_newer_write_through(stocked):
    old_snapshot = availability_cache.load_from_database([stocked.sku])
    version = old_snapshot[stocked.sku].versions["BER"]
    availability_cache.apply_committed_changes([change(version + 1, 3)])  # newer, partial entry
    assert cached_view(stocked.sku) is None  # partial entries are never read
    availability_cache._fill(old_snapshot.values())
    entry = raw_entry(stocked.sku)
    assert (entry["v:BER"], entry["a:BER"]) == (str(version + 1), "3")  # the newer one stays
    assert (entry["a:HAM"], entry["h:HAM"]) == ("5", "")
    # The write-through created the entry: it could not know the row's earlier
    # holds, and the older fill may not supply them, so BER is read as a miss.
    assert entry["h:BER"] == "?"
    assert cached_view(stocked.sku) is None


def stock_queries(captured):
    return [q for q in captured if "inventory_inventory" in q["sql"]]


def test_miss_reads_database_and_fills_hit_does_not_query(stocked):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as cold:
        first = availability_cache.get_many([stocked.sku, "UNKNOWN"])
    assert len(stock_queries(cold)) == 1
    assert first[stocked.sku].warehouses == {"BER": 10, "HAM": 5}
    assert "UNKNOWN" not in first
    with CaptureQueriesContext(connection) as again:  # the unknown SKU is looked up again
        second = availability_cache.get_many([stocked.sku, "UNKNOWN"])
    assert len(stock_queries(again)) == 1
    assert second[stocked.sku].warehouses == {"BER": 10, "HAM": 5}
    with CaptureQueriesContext(connection) as warm:
        availability_cache.get_many([stocked.sku])
    assert len(warm) == 0


def test_batch_of_100_skus_is_one_query_for_the_misses(warehouse):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    skus = [f"B-{i}" for i in range(100)]
    for sku in skus:
        ProductFactory(sku=sku)
    for sku in skus[:40]:
        receive(sku, "BER", 10)
    availability_cache.get_many(skus[:50])
    with CaptureQueriesContext(connection) as captured:
        result = availability_cache.get_many(skus)
    assert len(stock_queries(captured)) == 1
    assert len(result) == 100
    assert result["B-0"].warehouses == {"BER": 10}
    assert result["B-99"].warehouses == {}


def test_entries_expire_so_a_lost_write_through_heals_within_the_ttl(
    stocked, settings, django_capture_on_commit_callbacks
):
    settings.STOCKROOM_AVAILABILITY_TTL = 1
    warm(stocked.sku)
    services.COMMITTED_CHANGE_LISTENERS.remove(availability_cache.apply_committed_changes)
    try:  # a write-through that never arrives
        with django_capture_on_commit_callbacks(execute=True):
            receive(stocked.sku, "BER", 1)
    finally:
        services.COMMITTED_CHANGE_LISTENERS.append(availability_cache.apply_committed_changes)
    assert cached_view(stocked.sku)["BER"] == 10  # stale...
    time.sleep(1.2)
    assert availability_cache.get_many([stocked.sku])[stocked.sku].warehouses["BER"] == 11


def test_flushed_redis_refills_from_the_database(stocked):
    from django_redis import get_redis_connection

    warm(stocked.sku)
    get_redis_connection("default").flushdb()
    assert cached_view(stocked.sku) is None
    assert availability_cache.get_many([stocked.sku])[stocked.sku].warehouses == db_view("TSHIRT-M")
    assert cached_view(stocked.sku) == db_view("TSHIRT-M")


def test_unreachable_redis_falls_back_to_the_database(
    stocked, settings, django_capture_on_commit_callbacks
):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.1, "SOCKET_TIMEOUT": 0.1},
        }
    }
    availability_cache.reset_store()
    result = availability_cache.get_many([stocked.sku])
    assert result[stocked.sku].warehouses == {"BER": 10, "HAM": 5}
    with django_capture_on_commit_callbacks(execute=True):
        services.stock_reserve(order_id="o", lines=[ReserveLine("TSHIRT-M", "BER", 1)], actor="c")
    assert availability_cache.sold_out_lines([("TSHIRT-M", "BER", 1)]) is None
    assert availability_cache.STATS["errors"] >= 3


def test_policy_change_drops_the_entry(stocked, django_capture_on_commit_callbacks):
    warm(stocked.sku)
    with django_capture_on_commit_callbacks(execute=True):
        services.product_set_stock_policy(
            product=stocked, stock_policy="backorder", backorder_limit=4
        )
    assert cached_view(stocked.sku) is None
    assert availability_cache.get_many([stocked.sku])[stocked.sku].allowance == 4


# --- the sold-out gate ------------------------------------------------------


def test_gate_refuses_only_when_every_line_is_sold_out(
    warehouse, django_capture_on_commit_callbacks
):
    ProductFactory(sku="HOT")
    ProductFactory(sku="COLD")
    with django_capture_on_commit_callbacks(execute=True):
        receive("HOT", "BER", 1)
        receive("COLD", "BER", 1)
        services.stock_reserve(order_id="o", lines=[ReserveLine("HOT", "BER", 1)], actor="c")
    availability_cache.get_many(["HOT", "COLD"])

    assert availability_cache.sold_out_lines([("HOT", "BER", 1)]) == [
        {"sku": "HOT", "warehouse": "BER", "requested": 1, "available": 0}
    ]
    assert availability_cache.sold_out_lines([("HOT", None, 1)]) is not None
    assert availability_cache.sold_out_lines([("HOT", "BER", 1), ("COLD", "BER", 1)]) is None
    assert availability_cache.sold_out_lines([("NOT-CACHED", "BER", 1)]) is None


def test_gate_never_refuses_backorder_skus(warehouse):
    ProductFactory(sku="BO", stock_policy="backorder", backorder_limit=5)
    availability_cache.get_many(["BO"])
    assert availability_cache.sold_out_lines([("BO", "BER", 1)]) is None


def test_gate_opens_as_soon_as_stock_is_committed(warehouse, django_capture_on_commit_callbacks):
    ProductFactory(sku="HOT")
    WarehouseFactory(code="HAM")
    availability_cache.get_many(["HOT"])
    assert availability_cache.sold_out_lines([("HOT", None, 1)]) is not None
    with django_capture_on_commit_callbacks(execute=True):
        receive("HOT", "HAM", 2)
    assert availability_cache.sold_out_lines([("HOT", None, 1)]) is None


def test_sold_out_reservation_is_refused_without_stock_work(
    warehouse, django_capture_on_commit_callbacks, django_assert_num_queries
):
    ProductFactory(sku="HOT")
    with django_capture_on_commit_callbacks(execute=True):
        receive("HOT", "BER", 1)
        services.stock_reserve(order_id="first", lines=[ReserveLine("HOT", "BER", 1)], actor="c")
    availability_cache.get_many(["HOT"])

    # One look-up of the order id (is it a retry of a placed order?), no stock work.
    with django_assert_num_queries(1) as queries, pytest.raises(errors.InsufficientStock) as exc:
        services.stock_reserve(order_id="late", lines=[ReserveLine("HOT", "BER", 1)], actor="c")
    assert exc.value.lines[0]["available"] == 0
    [lookup] = queries.captured_queries
    assert '"a" FROM "inventory_reservation"' in lookup["sql"]
    assert "FOR" not in lookup["sql"]

    # A retry of the order that got the last unit reaches the database and replays.
    retry = services.stock_reserve(
        order_id="first", lines=[ReserveLine("HOT", "BER", 1)], actor="c"
    )
    assert retry.created is False


def test_gate_can_be_switched_off(warehouse, settings, django_capture_on_commit_callbacks):
    settings.STOCKROOM_SOLD_OUT_GATE = False
    ProductFactory(sku="HOT")
    availability_cache.get_many(["HOT"])
    assert availability_cache.sold_out_lines([("HOT", "BER", 1)]) is None


def test_an_order_a_batch_reserved_passes_the_gate_on_its_retry(
    warehouse, settings, django_capture_on_commit_callbacks
):
    """The batch's one after-commit Redis call writes the rows and the orders'
    gate memory: a retry through the single path of an order that took the last
    unit replays it; a new order is refused by the gate. (The one-statement
    engine: the ORM engine reserves a batch order by order.)"""
    settings.STOCKROOM_RESERVE_ENGINE = "sql"
    ProductFactory(sku="HOT")
    with django_capture_on_commit_callbacks(execute=True):
        receive("HOT", "BER", 2)
    availability_cache.get_many(["HOT"])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        outcomes = services.stock_reserve_batch(
            orders=[
                services.OrderRequest(f"b-{n}", [ReserveLine("HOT", "BER", 1)]) for n in (1, 2)
            ],
            actor="c",
        )
    assert [o.created for o in outcomes] == [True, True]
    assert len(callbacks) == 1
    assert cached_view("HOT") == {"BER": 0}

    retry = services.stock_reserve(order_id="b-2", lines=[ReserveLine("HOT", "BER", 1)], actor="c")
    assert retry.created is False
    with pytest.raises(errors.SoldOut):
        services.stock_reserve(order_id="new", lines=[ReserveLine("HOT", "BER", 1)], actor="c")


def test_a_placed_order_whose_gate_memory_was_lost_is_replayed_not_refused(
    warehouse, django_capture_on_commit_callbacks
):
    """The process that reserved was killed between its commit and the after-commit
    Redis write: the read model then learns the row is sold out from later changes,
    but not that this order holds it. Its retry must get the reservation back."""
    from inventory import routing

    ProductFactory(sku="HOT")
    with django_capture_on_commit_callbacks(execute=True):
        receive("HOT", "BER", 1)
    availability_cache.get_many(["HOT"])
    # Committed; its write-through (rows and gate memory) never runs.
    services.stock_reserve(order_id="lost-1", lines=[ReserveLine("HOT", "BER", 1)], actor="c")
    availability_cache.invalidate(["HOT"])
    availability_cache.get_many(["HOT"])  # refilled from the database: sold out
    assert cached_view("HOT") == {"BER": 0}

    retry = services.stock_reserve(
        order_id="lost-1", lines=[ReserveLine("HOT", "BER", 1)], actor="c"
    )
    assert retry.created is False
    routed = routing.reserve_order(
        order_id="lost-1", lines=[routing.RequestedLine("HOT", 1, None)], actor="c"
    )
    assert routed.created is False
    with pytest.raises(errors.SoldOut):  # a new order is still refused by the gate
        services.stock_reserve(order_id="new", lines=[ReserveLine("HOT", "BER", 1)], actor="c")
