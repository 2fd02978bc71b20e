"""Races around compositions (issue #16, item 1), interleaved deterministically:
a session holds its transaction open until the other is seen waiting for its lock
(tests/concurrency/helpers.py: no tuned sleeps; `pg_blocking_pids` names who waits
for whom)."""

import json
import threading

import pytest
from django.db import connection, transaction

from inventory import errors, services
from inventory.models import BundleComponent, Inventory, Product, Reservation, ReservationLine
from inventory.services import ReserveLine

from ..bundle_invariants import (
    bundle_line_violations,
    gate_off_unless_it_knows_bundles,
    stale_bundle_lines,
)
from ..concurrency.helpers import (
    Session,
    blocked_by,
    wait_event,
    wait_until,
    waiting_for_a_lock,
)
from ..conftest import receive
from ..factories import ProductFactory, WarehouseFactory
from .conftest import make_bundle

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks"),
]


def composition(sku):
    return dict(
        BundleComponent.objects.filter(bundle__sku=sku).values_list("component__sku", "quantity")
    )


def holding(body, inside: threading.Event, release: threading.Event):
    """A session body: run `body` in a transaction, then hold it open until `release`."""

    def run():
        with transaction.atomic():
            outcome = body()
            inside.set()
            assert release.wait(120)
        return outcome

    return run


def test_two_composition_changes_of_one_bundle_apply_one_after_the_other():
    for sku in ("MUG", "TEA"):
        ProductFactory(sku=sku)
    box = make_bundle("BOX", {"MUG": 2})
    inside, release = threading.Event(), threading.Event()
    first = Session(
        holding(
            lambda: services.bundle_set_components(
                product=Product.objects.get(sku="BOX"), components=[{"sku": "MUG", "quantity": 3}]
            ),
            inside,
            release,
        ),
        "first",
    ).begin()
    wait_event(inside, first, "the first change is made (uncommitted)")
    second = Session(
        lambda: services.bundle_set_components(
            product=Product.objects.get(sku="BOX"), components=[{"sku": "TEA", "quantity": 2}]
        ),
        "second",
    ).begin()
    wait_until(lambda: waiting_for_a_lock(second.pid), "the second waits for the bundle's lock")
    release.set()
    first.finish()
    second.finish()
    assert (first.error, second.error) == (None, None)
    assert composition("BOX") == {"TEA": 2}  # the later one, whole: never a mix
    assert Product.objects.get(pk=box.pk).is_bundle


def test_becoming_a_bundle_racing_a_first_stock_row_is_refused_after_it():
    """The row's creation holds the product FOR SHARE; the service's FOR UPDATE waits,
    then sees the row and refuses (409 bundle_conflict): never a bundle with stock."""
    WarehouseFactory(code="BER")
    ProductFactory(sku="MUG")
    ProductFactory(sku="SPOON")
    inside, release = threading.Event(), threading.Event()
    rows = Session(
        holding(lambda: services.stock_rows_create([("SPOON", "BER")]), inside, release), "rows"
    ).begin()
    wait_event(inside, rows, "the row is created (uncommitted)")
    flip = Session(
        lambda: services.bundle_set_components(
            product=Product.objects.get(sku="SPOON"), components=[{"sku": "MUG", "quantity": 1}]
        ),
        "flip",
    ).begin()
    wait_until(lambda: waiting_for_a_lock(flip.pid), "the flip waits for the product's lock")
    release.set()
    rows.finish()
    flip.finish()
    assert rows.error is None
    assert isinstance(flip.error, errors.BundleConflict)
    assert not Product.objects.get(sku="SPOON").is_bundle
    assert Inventory.objects.filter(product__sku="SPOON").count() == 1
    assert composition("SPOON") == {}


# The composition race: a reservation reads a bundle's composition, a change of it
# commits, the reservation commits. Both orders of the two, on both engines.


@pytest.fixture(params=["sql", "python"])
def engine(request, settings):
    settings.STOCKROOM_RESERVE_ENGINE = request.param
    gate_off_unless_it_knows_bundles(settings)
    return request.param


@pytest.fixture
def box(db):
    """BOX = 2 x MUG; BER stocks 10 mugs and 10 teas."""
    WarehouseFactory(code="BER")
    for sku in ("MUG", "TEA"):
        ProductFactory(sku=sku)
        receive(sku, "BER", 10)
    return make_bundle("BOX", {"MUG": 2})


def reserve_box(order_id="o-1", units=1):
    return services.stock_reserve(
        order_id=order_id, lines=[ReserveLine("BOX", "BER", units)], actor="shop"
    )


def change_box():
    return services.bundle_set_components(
        product=Product.objects.get(sku="BOX"), components=[{"sku": "TEA", "quantity": 3}]
    )


def lines(order_id="o-1"):
    return dict(
        ReservationLine.objects.filter(reservation__order_id=order_id).values_list(
            "product__sku", "quantity"
        )
    )


def test_a_change_committed_after_the_read_is_used_by_the_reservation(engine, box):
    """The change holds the bundle FOR UPDATE; the reservation reads the old
    composition (MVCC), then waits for the bundle's row (pg_blocking_pids); the
    change commits (no open line yet: allowed); the reservation then uses the new
    composition (SQL: 'stale', re-read, called again; ORM: re-read under the lock)."""
    inside, release = threading.Event(), threading.Event()
    change = Session(holding(change_box, inside, release), "change").begin()
    wait_event(inside, change, "the change is made (uncommitted)")
    reserve = Session(reserve_box, "reserve").begin()
    wait_until(
        lambda: blocked_by(reserve.pid, change.pid) or reserve.done.is_set(),
        "the reservation waits for the change",
    )
    waited = not reserve.done.is_set()
    release.set()
    change.finish()
    reserve.finish()
    assert (change.error, reserve.error) == (None, None)
    assert composition("BOX") == {"TEA": 3}
    assert lines() == {"TEA": 3}  # the new composition, never {"MUG": 2}
    assert waited  # for the bundle's row, FOR SHARE after the read
    assert Inventory.objects.get(product__sku="MUG").reserved == 0
    assert Inventory.objects.get(product__sku="TEA").reserved == 3
    assert stale_bundle_lines() == [] and bundle_line_violations() == []


def test_a_change_after_the_reservation_waits_for_it_and_is_refused(engine, box):
    """The reservation holds the bundle FOR SHARE until it commits; the change's
    FOR UPDATE waits for it (pg_blocking_pids), then finds its open lines: 409
    bundle_in_use, the composition unchanged."""
    inside, release = threading.Event(), threading.Event()
    reserve = Session(holding(reserve_box, inside, release), "reserve").begin()
    wait_event(inside, reserve, "the reservation is made (uncommitted)")
    change = Session(change_box, "change").begin()
    wait_until(
        lambda: blocked_by(change.pid, reserve.pid) or change.done.is_set(),
        "the change waits for the reservation",
    )
    assert not change.done.is_set(), change.error
    release.set()
    reserve.finish()
    change.finish()
    assert reserve.error is None
    assert isinstance(change.error, errors.BundleInUse)
    assert composition("BOX") == {"MUG": 2}
    assert lines() == {"MUG": 2}
    assert stale_bundle_lines() == [] and bundle_line_violations() == []


def test_the_function_answers_stale_for_an_old_composition_and_does_nothing(box):
    """The SQL check itself: lines expanded with a composition that is not the
    stored one reserve nothing, claim no order id, and answer 'stale' with the SKU."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT stockroom_reserve_orders(%s, %s, %s::timestamptz[], %s, %s, %s, %s,"
            " %s, %s, now(), %s::text[], %s::jsonb)",
            [
                ["o-1"],
                ["fp"],
                [None],
                [1],
                ["TEA"],
                ["BER"],
                [3],
                "shop",
                "r",
                ["BOX"],
                '{"BOX": [["TEA", 3]]}',
            ],
        )
        (payload,) = cursor.fetchone()
    payload = json.loads(payload) if isinstance(payload, str) else payload
    assert payload["orders"] == [["stale", None, ["BOX"]]]
    assert not Reservation.objects.exists()
    assert Inventory.objects.get(product__sku="TEA").reserved == 0


def test_the_stale_line_checker_sees_a_planted_old_composition(box, settings):
    """The checker is proven by planting the fault: a reservation made with
    {MUG: 2}, then the composition changed behind the guards' back (triggers off
    for that one transaction)."""
    settings.STOCKROOM_RESERVE_ENGINE = "sql"
    gate_off_unless_it_knows_bundles(settings)
    reserve_box()
    assert stale_bundle_lines() == []
    tea = Product.objects.get(sku="TEA")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = 'replica'")
        cursor.execute(
            "UPDATE inventory_bundlecomponent SET component_id = %s"
            " WHERE bundle_id = (SELECT id FROM inventory_product WHERE sku = 'BOX')",
            [tea.pk],
        )
    assert len(stale_bundle_lines()) == 1


def test_a_composition_changed_at_every_read_is_stock_busy_and_applies_nothing(
    box, settings, monkeypatch
):
    """SQL engine: a change commits right after each of the adapter's composition
    reads (another session, scheduled by wrapping the read), so the function
    answers 'stale' twice: 503 stock_busy (bundle_composition_changed), nothing
    reserved, no order id claimed."""
    from inventory.services import reserve_sql

    settings.STOCKROOM_RESERVE_ENGINE = "sql"
    gate_off_unless_it_knows_bundles(settings)
    real = reserve_sql.bundle_compositions
    changes = iter([{"TEA": 3}, {"MUG": 1}, {"TEA": 1}])

    def read_then_change(skus):
        found = real(skus)
        components = [{"sku": s, "quantity": q} for s, q in next(changes).items()]
        change = Session(
            lambda: services.bundle_set_components(
                product=Product.objects.get(sku="BOX"), components=components
            ),
            "change",
        ).begin()
        assert change.finish().error is None
        return found

    monkeypatch.setattr(reserve_sql, "bundle_compositions", read_then_change)
    with pytest.raises(errors.StockBusy) as refused:
        reserve_box()
    assert refused.value.details["reason"] == "bundle_composition_changed"
    assert not Reservation.objects.exists()
    assert not Inventory.objects.filter(reserved__gt=0).exists()
    assert composition("BOX") == {"MUG": 1}


# Remembered compositions (issue #16, item 5): the same races with the order
# expanded from the process's memory, before any statement.


def test_a_change_committed_while_a_remembered_order_waits_is_used(engine, box):
    """The memory says BOX = 2 x MUG; the change to 3 x TEA holds the bundle FOR
    UPDATE. The order, expanded from the memory, waits for the bundle's row in
    its first statement (SQL: the function's FOR SHARE; ORM: `lock_bundles`),
    the change commits, and the order is made with 3 teas (SQL: 'stale', read
    again, called again; ORM: read again under the lock)."""
    from inventory.services import bundle_lines

    bundle_lines.bundle_compositions(["BOX"])
    inside, release = threading.Event(), threading.Event()
    change = Session(holding(change_box, inside, release), "change").begin()
    wait_event(inside, change, "the change is made (uncommitted)")
    reserve = Session(reserve_box, "reserve").begin()
    wait_until(
        lambda: blocked_by(reserve.pid, change.pid) or reserve.done.is_set(),
        "the reservation waits for the change",
    )
    waited = not reserve.done.is_set()
    release.set()
    change.finish()
    reserve.finish()
    assert (change.error, reserve.error) == (None, None)
    assert waited
    assert lines() == {"TEA": 3}  # never the remembered {"MUG": 2}
    assert Inventory.objects.get(product__sku="MUG").reserved == 0
    assert bundle_lines.remembered_bundles(["BOX"])["BOX"].components == (("TEA", 3),)
    assert stale_bundle_lines() == [] and bundle_line_violations() == []


def test_an_out_of_date_memory_costs_a_read_not_the_one_retry_a_race_gets(
    box, settings, monkeypatch
):
    """SQL engine. The memory is out of date (BOX changed to 3 x TEA after it was
    read), and a change commits right after the adapter's first composition read
    (another session): 'stale' (the memory's), read, 'stale' (the race's), read,
    reserved with the composition as it is then. With a change after each of the
    first two reads, the race has changed it twice: 503 stock_busy, nothing
    applied, as without a memory."""
    from inventory.services import bundle_lines, reserve_sql

    settings.STOCKROOM_RESERVE_ENGINE = "sql"
    gate_off_unless_it_knows_bundles(settings)
    real = reserve_sql.bundle_compositions

    def reads_then_changes(changes):
        pending = iter(changes)

        def read_then_change(skus):
            found = real(skus)
            components = next(pending, None)
            if components is not None:
                change = Session(
                    lambda: services.bundle_set_components(
                        product=Product.objects.get(sku="BOX"),
                        components=[{"sku": s, "quantity": q} for s, q in components.items()],
                    ),
                    "change",
                ).begin()
                assert change.finish().error is None
            return found

        return read_then_change

    bundle_lines.bundle_compositions(["BOX"])
    change_box()  # the memory still says 2 x MUG
    monkeypatch.setattr(reserve_sql, "bundle_compositions", reads_then_changes([{"MUG": 1}]))

    reserve_box("o-1")

    assert lines("o-1") == {"MUG": 1}
    services.reservation_release(order_id="o-1", actor="shop")

    bundle_lines.bundle_compositions(["BOX"])  # remembers 1 x MUG
    change_box()  # out of date again
    monkeypatch.setattr(
        reserve_sql, "bundle_compositions", reads_then_changes([{"MUG": 2}, {"MUG": 3}])
    )
    with pytest.raises(errors.StockBusy) as refused:
        reserve_box("o-2")
    assert refused.value.details["reason"] == "bundle_composition_changed"
    assert not Reservation.objects.filter(order_id="o-2").exists()
    assert not Inventory.objects.filter(reserved__gt=0).exists()
    assert composition("BOX") == {"MUG": 3}
