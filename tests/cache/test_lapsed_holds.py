"""A hold past its `expires_at` counts nowhere, at once, at cache speed (issue 13, item 2).

Time moves with `inventory.clock.advance()`, never by sleeping. Cache tests run
the after-commit write-through (`django_capture_on_commit_callbacks(execute=True)`).
Both reservation engines (the PL/pgSQL function and the ORM path) run each
service scenario.
"""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory import availability_cache, clock, errors, selectors, services
from inventory.models import Inventory, Reservation, StockPolicy
from inventory.services import ReserveLine

from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clock():
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(params=["sql", "python"])
def engine(request, settings):
    settings.STOCKROOM_RESERVE_ENGINE = request.param
    return request.param


@pytest.fixture
def three_units(warehouse, django_capture_on_commit_callbacks):
    """HOT: 3 units in BER; order A holds all 3 for one second; the cache is warm."""
    ProductFactory(sku="HOT")
    with django_capture_on_commit_callbacks(execute=True):
        receive("HOT", "BER", 3)
    availability_cache.get_many(["HOT"])
    with django_capture_on_commit_callbacks(execute=True):
        services.stock_reserve(
            order_id="A",
            lines=[ReserveLine("HOT", "BER", 3)],
            actor="c",
            expires_at=clock.now() + timedelta(seconds=1),
        )
    return "HOT"


def stock_queries(captured):
    return [
        q
        for q in captured
        if "inventory_inventory" in q["sql"] or "inventory_reservation" in q["sql"]
    ]


def cached_available(sku, code="BER"):
    snap = availability_cache.read_cached([sku]).get(sku)
    return None if snap is None else snap.warehouses.get(code)


def test_the_reported_scenario_a_lapsed_hold_no_longer_blocks_a_paying_order(
    three_units, engine, django_capture_on_commit_callbacks
):
    assert cached_available("HOT") == 0
    assert availability_cache.sold_out_lines([("HOT", "BER", 1)]) is not None  # really sold out
    clock.advance(3)  # A's hold lapsed; the sweeper has not run

    # The cached read counts it nowhere, without touching the database.
    selectors.availability_for_skus(["HOT"])  # the active-warehouse list, once
    with CaptureQueriesContext(connection) as captured:
        found = selectors.availability_for_skus(["HOT"])["HOT"]
        assert availability_cache.sold_out_lines([("HOT", "BER", 1)], order_id="B") is None
    assert stock_queries(captured) == []
    assert (found.available, found.status) == (3, "low_stock")

    with django_capture_on_commit_callbacks(execute=True):
        result = services.stock_reserve(
            order_id="B", lines=[ReserveLine("HOT", "BER", 1)], actor="c"
        )
    assert result.created
    assert Reservation.objects.get(order_id="A").status == "expired"
    row = Inventory.objects.get(product__sku="HOT")
    assert (row.on_hand, row.reserved) == (3, 1)
    assert cached_available("HOT") == 2
    assert_invariants()


def test_a_lapsed_hold_is_released_only_as_far_as_the_order_needs(
    warehouse, engine, django_capture_on_commit_callbacks
):
    ProductFactory(sku="HOT")
    with django_capture_on_commit_callbacks(execute=True):
        receive("HOT", "BER", 4)
        for n, seconds in enumerate([5, 1, 3]):  # expiry order: o1, o2, o0
            services.stock_reserve(
                order_id=f"o{n}",
                lines=[ReserveLine("HOT", "BER", 1)],
                actor="c",
                expires_at=clock.now() + timedelta(seconds=seconds),
            )
    availability_cache.get_many(["HOT"])
    clock.advance(10)
    assert cached_available("HOT") == 4
    with django_capture_on_commit_callbacks(execute=True):
        services.stock_reserve(order_id="new", lines=[ReserveLine("HOT", "BER", 3)], actor="c")
    statuses = dict(Reservation.objects.values_list("order_id", "status"))
    # 1 unit was free; two lapsed holds, earliest expiry first, make room.
    assert statuses == {"o0": "active", "o1": "expired", "o2": "expired", "new": "active"}
    assert cached_available("HOT") == 1  # o0 lapsed too: it counts nowhere
    assert selectors.availability_from_database(["HOT"])["HOT"].available == 1
    assert_invariants()


def test_a_batch_reservation_takes_lapsed_units(
    three_units, engine, django_capture_on_commit_callbacks
):
    clock.advance(3)
    with django_capture_on_commit_callbacks(execute=True):
        outcomes = services.stock_reserve_batch(
            orders=[
                services.OrderRequest(f"b{n}", [ReserveLine("HOT", "BER", 1)]) for n in range(4)
            ],
            actor="c",
        )
    assert [o.created for o in outcomes[:3]] == [True, True, True]
    assert isinstance(outcomes[3].error, errors.InsufficientStock)
    assert outcomes[3].error.lines[0]["available"] == 0
    assert cached_available("HOT") == 0
    assert_invariants()


def test_uncached_availability_and_routing_supply_use_the_stock_clock(three_units, settings):
    settings.STOCKROOM_AVAILABILITY_CACHE = False
    assert selectors.availability_for_skus(["HOT"])["HOT"].available == 0
    clock.advance(3)
    assert selectors.availability_for_skus(["HOT"])["HOT"].available == 3
    assert selectors.supply_for_skus(["HOT"]).can_supply("HOT", "BER") == 3


def test_the_gate_does_not_refuse_what_lapsed_holds_would_satisfy(three_units, engine):
    with pytest.raises(errors.SoldOut):
        services.stock_reserve(order_id="early", lines=[ReserveLine("HOT", "BER", 1)], actor="c")
    clock.advance(3)
    assert services.stock_reserve(
        order_id="late", lines=[ReserveLine("HOT", "BER", 1)], actor="c"
    ).created


def test_an_entry_refilled_from_the_database_does_not_count_lapsed_holds(three_units):
    clock.advance(3)
    from django_redis import get_redis_connection

    get_redis_connection("default").delete(availability_cache._key("HOT"))  # the TTL ran out
    assert availability_cache.get_many(["HOT"])["HOT"].warehouses == {"BER": 3}
    assert cached_available("HOT") == 3  # the refilled entry, read again


def test_the_cache_follows_the_sweeper_and_a_release(
    three_units, other_warehouse, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        receive("HOT", "HAM", 2)
    with django_capture_on_commit_callbacks(execute=True):
        services.stock_reserve(
            order_id="live",
            lines=[ReserveLine("HOT", "HAM", 1)],
            actor="c",
            expires_at=clock.now() + timedelta(hours=1),
        )
    clock.advance(3)
    assert availability_cache.get_many(["HOT"])["HOT"].warehouses == {"BER": 3, "HAM": 1}
    with django_capture_on_commit_callbacks(execute=True):
        assert services.reservations_expire(now=clock.now()) == 1
        services.reservation_release(order_id="live", actor="c")
    assert availability_cache.get_many(["HOT"])["HOT"].warehouses == {"BER": 3, "HAM": 2}
    clock.advance(7200)
    assert availability_cache.get_many(["HOT"])["HOT"].warehouses == {"BER": 3, "HAM": 2}


def test_a_row_keeps_a_bounded_number_of_expiry_instants_and_stays_exact(
    warehouse, settings, django_capture_on_commit_callbacks
):
    settings.STOCKROOM_AVAILABILITY_HOLDS = 2
    ProductFactory(sku="HOT")
    with django_capture_on_commit_callbacks(execute=True):
        receive("HOT", "BER", 10)
    availability_cache.get_many(["HOT"])
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(5):  # holds lapsing after 1, 2, ... 5 seconds
            services.stock_reserve(
                order_id=f"o{n}",
                lines=[ReserveLine("HOT", "BER", 1)],
                actor="c",
                expires_at=clock.now() + timedelta(seconds=n + 1),
            )
    fills = availability_cache.STATS["fills"]
    for step in range(7):
        expected = selectors.availability_from_database(["HOT"])["HOT"].available
        assert expected == 5 + min(step, 5)
        assert availability_cache.get_many(["HOT"])["HOT"].warehouses["BER"] == expected
        clock.advance(1)
    # Two instants are known at a time: past the horizon the entry is refilled.
    assert availability_cache.STATS["fills"] > fills


def test_lua_and_in_process_stores_keep_the_same_hold_strings():
    """The Redis script and the in-process store apply the same writes to the same
    strings (hold deltas, out-of-order and missed versions, fills)."""
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st

    now = availability_cache.now_micros()
    instants = st.integers(now - 5_000_000, now + 5_000_000)
    delta = st.lists(st.tuples(instants, st.integers(-3, 3)), max_size=4)
    write = st.tuples(
        st.integers(0, 6),  # version
        st.sampled_from(["+", "?", "="]),
        delta,
    )

    @hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(write, min_size=1, max_size=8))
    def check(writes):
        redis_store = availability_cache._RedisStore()
        local = availability_cache._LocalStore()
        key = availability_cache._key("PROP")
        redis_store.client.delete(key)
        for version, mode, holds in writes:
            pairs = [(t, q) for t, q in holds if q]
            if mode == "=":
                text = availability_cache.hold_string(
                    [(t, abs(q)) for t, q in pairs], now, availability_cache._hold_cap()
                )
                fields = [("BER", version, 5, "=", text)]
                meta = "{}"
            else:
                text = availability_cache._delta_string(pairs) if mode == "+" else ""
                fields = [("BER", version, 5, mode, text)]
                meta = ""
            for store in (redis_store, local):
                store.apply([(key, meta, "", fields)])
        stored = {k.decode(): v.decode() for k, v in redis_store.client.hgetall(key).items()}
        assert stored.get("h:BER") == local.data[key][1].get("h:BER")

    check()


# --- item 10: a fill racing the invalidation of a policy change ---------------


@pytest.mark.django_db(transaction=True)
def test_a_fill_that_read_the_old_policy_cannot_write_it_back_after_the_invalidation(
    monkeypatch,
):
    WarehouseFactory(code="BER")
    product = ProductFactory(sku="POLICY")
    receive("POLICY", "BER", 1)
    loaded, proceed = threading.Event(), threading.Event()
    original = availability_cache.load_from_database

    def load_then_wait(skus):
        snapshots = original(skus)  # the database read: still the old policy
        loaded.set()
        assert proceed.wait(30)
        return snapshots

    monkeypatch.setattr(availability_cache, "load_from_database", load_then_wait)
    seen = {}

    def reader():
        try:
            seen["policy"] = availability_cache.get_many(["POLICY"])["POLICY"].stock_policy
        finally:
            from django.db import connections

            connections.close_all()

    thread = threading.Thread(target=reader)
    thread.start()
    assert loaded.wait(30)
    # The policy change commits and its after-commit invalidation runs...
    services.product_set_stock_policy(
        product=product, stock_policy=StockPolicy.BACKORDER, backorder_limit=5
    )
    proceed.set()  # ...then the fill that read the old policy tries to write.
    thread.join(30)
    assert seen["policy"] == "normal"  # that reader's own answer was its snapshot
    monkeypatch.setattr(availability_cache, "load_from_database", original)
    assert availability_cache.read_cached(["POLICY"]) == {}  # the old policy was not written
    snap = availability_cache.get_many(["POLICY"])["POLICY"]
    assert (snap.stock_policy, snap.allowance) == ("backorder", 5)


def test_hold_changes_add_up_whatever_order_their_write_throughs_arrive_in(warehouse):
    """Concurrent commits run their after-commit write-throughs in any order: the
    newest balance wins by version, and hold changes newer than the entry's fill
    are added whenever they arrive (a release before its reservation included)."""
    from inventory.services import CommittedChange

    ProductFactory(sku="HOT")
    receive("HOT", "BER", 10)
    availability_cache.get_many(["HOT"])
    v = Inventory.objects.get(product__sku="HOT").version
    t = clock.now() + timedelta(seconds=5)

    def change(version, reserved, holds, type="RESERVE"):
        return CommittedChange(
            None, None, None, type, 10, reserved, version, "HOT", "BER", holds=holds
        )

    # v+1 reserves 2 until t, v+2 reserves 3 until t, v+3 releases the first 2.
    availability_cache.apply_committed_changes([change(v + 3, 3, ((t, -2),), "RELEASE")])
    assert cached_available("HOT") == 7  # the balance of v+3; nothing has lapsed yet
    clock.advance(10)
    assert cached_available("HOT") is None  # -2 at t: a reservation is in flight
    availability_cache.apply_committed_changes([change(v + 1, 2, ((t, 2),))])
    availability_cache.apply_committed_changes([change(v + 2, 5, ((t, 3),))])  # older than v+3
    assert cached_available("HOT") == 10  # 7, and the 3 units held until t lapsed


@pytest.mark.parametrize("extend", [None, 600])
def test_a_confirmed_hold_is_not_counted_as_lapsed_at_its_old_expiry(
    three_units, engine, extend, django_capture_on_commit_callbacks
):
    """A confirmation (or extension) moves the hold's expiry; the read model must
    not free the units at the old `expires_at` (the cache hears the hold change
    after commit and refills the SKU)."""
    assert availability_cache.get_many(["HOT"])["HOT"].total_available() == 0
    with django_capture_on_commit_callbacks(execute=True):
        services.reservation_confirm(order_id="A", actor="c", expires_in=extend)
    clock.advance(5)  # past the old expiry, before any new one
    cached = availability_cache.get_many(["HOT"])["HOT"]
    assert cached.total_available() == 0
    assert selectors.availability_from_database(["HOT"])["HOT"].available == 0
    with pytest.raises(errors.InsufficientStock):
        services.stock_reserve(order_id="B", lines=[ReserveLine("HOT", "BER", 1)], actor="c")
    assert_invariants()
