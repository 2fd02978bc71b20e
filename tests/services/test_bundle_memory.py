"""Remembered compositions (issue #16, item 5): an order naming a bundle this
process has read before is expanded without a composition query, and a memory
that is out of date can never make an order with an old composition. Every
test runs on both engines (tests/services/conftest.py); the SQL engine's
statements are counted (one for a remembered bundle), the ORM engine's
composition reads placed (only under the bundles' locks, none for a plain
order). Each out-of-date case is made with real rows, changed between calls."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory import errors, services
from inventory.models import BundleComponent, Inventory, Product, Reservation, ReservationLine
from inventory.services import OrderRequest, ReserveLine, bundle_lines

from ..bundle_invariants import (
    bundle_line_violations,
    gate_off_unless_it_knows_bundles,
    stale_bundle_lines,
)
from ..conftest import receive
from ..factories import BundleFactory, ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db

RESERVE_CALL = "SELECT stockroom_reserve_orders("


@pytest.fixture(autouse=True)
def _gate_knows_bundles_or_is_off(settings):
    gate_off_unless_it_knows_bundles(settings)


@pytest.fixture(autouse=True)
def _every_open_line_has_the_current_composition(db):
    yield
    assert bundle_line_violations() == []
    assert stale_bundle_lines() == []


@pytest.fixture
def box(db):
    """BOX = 2 x MUG + 1 x TEA; BER stocks 20 mugs, 20 teas and 20 spoons."""
    WarehouseFactory(code="BER")
    bundle = BundleFactory("BOX", {"MUG": 2, "TEA": 1})
    ProductFactory(sku="SPOON")
    for sku in ("MUG", "TEA", "SPOON"):
        receive(sku, "BER", 20)
    return bundle


def reserve(order_id, *lines):
    return services.stock_reserve(
        order_id=order_id, lines=[ReserveLine(*line) for line in lines], actor="client:shop"
    )


def lines_of(order_id):
    return sorted(
        (line.product.sku, line.bundle.sku if line.bundle_id else "", line.quantity)
        for line in ReservationLine.objects.select_related("product", "bundle").filter(
            reservation__order_id=order_id
        )
    )


def reserved():
    return dict(Inventory.objects.values_list("product__sku", "reserved"))


def composition_reads(queries):
    return [i for i, q in enumerate(queries) if "inventory_bundlecomponent" in q["sql"]]


def set_box(components):
    services.bundle_set_components(
        product=Product.objects.get(sku="BOX"),
        components=[{"sku": s, "quantity": q} for s, q in components.items()],
    )


def test_a_plain_order_never_reads_a_composition(box, reserve_engine):
    reserve("o-box", ("BOX", "BER", 1))  # the process now remembers a bundle

    with CaptureQueriesContext(connection) as queries:
        reserve("o-1", ("MUG", "BER", 1), ("TEA", "BER", 2))

    assert composition_reads(queries) == []
    if reserve_engine == "sql":
        assert [q["sql"][: len(RESERVE_CALL)] for q in queries] == [RESERVE_CALL]
    assert lines_of("o-1") == [("MUG", "", 1), ("TEA", "", 2)]


def test_a_remembered_bundle_is_expanded_before_the_first_statement(box, reserve_engine):
    with CaptureQueriesContext(connection) as first:
        reserve("o-1", ("BOX", "BER", 1))
    with CaptureQueriesContext(connection) as second:
        reserve("o-2", ("BOX", "BER", 2))

    assert lines_of("o-2") == [("MUG", "BOX", 4), ("TEA", "BOX", 2)]
    if reserve_engine == "sql":
        # not remembered: 'missing', the composition read, the reservation
        assert len(first) == 3 and len(composition_reads(first)) == 1
        # remembered: one statement
        assert [q["sql"][: len(RESERVE_CALL)] for q in second] == [RESERVE_CALL]
    else:
        # the ORM engine reads the composition only under the bundle's FOR SHARE
        # lock: once it is remembered, no read before it
        (read,) = composition_reads(second)
        locks = [i for i, q in enumerate(second) if q["sql"].rstrip().endswith("FOR SHARE")]
        assert locks and locks[0] < read
    assert bundle_lines.remembered_bundles(["BOX", "MUG"]) == {
        "BOX": bundle_lines.Bundle("BOX", box.pk, (("MUG", 2), ("TEA", 1)))
    }


def test_a_batch_of_remembered_bundle_orders_is_one_statement(box, reserve_engine):
    reserve("o-0", ("BOX", "BER", 1))
    orders = [OrderRequest(f"o-{i}", [ReserveLine("BOX", "BER", 1)]) for i in (1, 2, 3)]

    with CaptureQueriesContext(connection) as queries:
        outcomes = services.stock_reserve_batch(orders=orders, actor="client:shop")

    assert [o.error for o in outcomes] == [None, None, None]
    assert reserved() == {"MUG": 8, "TEA": 4, "SPOON": 0}
    if reserve_engine == "sql":
        assert len(queries) == 1


def test_a_remembered_composition_changed_since_is_read_again(box, reserve_engine):
    """The memory says 2 x MUG + 1 x TEA; the stored composition is 3 x SPOON now
    (changed in this process after the read: nothing tells the memory). The
    order is made with 3 spoons, never with mugs."""
    reserve("o-1", ("BOX", "BER", 1))
    services.reservation_release(order_id="o-1", actor="client:shop")
    set_box({"SPOON": 3})
    assert bundle_lines.remembered_bundles(["BOX"])["BOX"].components == (("MUG", 2), ("TEA", 1))

    with CaptureQueriesContext(connection) as queries:
        reserve("o-2", ("BOX", "BER", 2))

    assert lines_of("o-2") == [("SPOON", "BOX", 6)]
    assert reserved() == {"MUG": 0, "TEA": 0, "SPOON": 6}
    if reserve_engine == "sql":
        # 'stale' (nothing done), the composition read again, the reservation
        assert len(queries) == 3 and composition_reads(queries) == [1]
    assert bundle_lines.remembered_bundles(["BOX"])["BOX"].components == (("SPOON", 3),)


def test_a_remembered_bundle_that_became_plain_reserves_its_own_rows(box, reserve_engine):
    reserve("o-1", ("BOX", "BER", 1))
    services.reservation_release(order_id="o-1", actor="client:shop")
    set_box({})  # a plain product now, which may have stock rows
    receive("BOX", "BER", 5)

    reserve("o-2", ("BOX", "BER", 2))

    assert lines_of("o-2") == [("BOX", "", 2)]
    assert reserved() == {"MUG": 0, "TEA": 0, "SPOON": 0, "BOX": 2}
    assert bundle_lines.remembered_bundles(["BOX"]) == {}


def test_a_remembered_bundle_without_components_is_refused_as_before(box, reserve_engine):
    """A bundle whose component rows were deleted behind the services' back (raw
    SQL; the services make an empty composition a plain product): 409
    sku_is_bundle, as when it was never remembered; nothing reserved."""
    reserve("o-1", ("BOX", "BER", 1))
    services.reservation_release(order_id="o-1", actor="client:shop")
    BundleComponent.objects.filter(bundle=box).delete()

    with pytest.raises(errors.SkuIsBundle):
        reserve("o-2", ("BOX", "BER", 1))

    assert not Reservation.objects.filter(order_id="o-2").exists()
    assert set(reserved().values()) == {0}
    assert bundle_lines.remembered_bundles(["BOX"]) == {}


def test_a_remembered_sku_that_is_unknown_now_is_an_unknown_sku(box, reserve_engine):
    """Products are never deleted by the services; a remembered bundle that is gone
    all the same (deleted with raw ORM) is refused like any unknown SKU."""
    BundleFactory("GONE", {"MUG": 1})
    bundle_lines.bundle_compositions(["GONE"])
    Product.objects.filter(sku="GONE").delete()

    with pytest.raises(errors.UnknownSku) as refused:
        reserve("o-1", ("GONE", "BER", 1), ("MUG", "BER", 1))

    assert refused.value.details == {"skus": ["GONE"]}
    assert not Reservation.objects.exists()
    assert set(reserved().values()) == {0}
    assert bundle_lines.remembered_bundles(["GONE"]) == {}


def test_an_order_with_a_remembered_and_a_new_bundle_keeps_each_lines_bundle(box, reserve_engine):
    """BOX is remembered, DUO (made after) is not: the order is expanded with BOX
    first, DUO is found (SQL 'missing' / ORM sku_is_bundle) and read, and the
    order is expanded again from its lines as they came: each component line
    names its own bundle, the mug sold alone none."""
    reserve("o-0", ("BOX", "BER", 1))
    BundleFactory("DUO", {"MUG": 1, "SPOON": 1})

    reserve("o-1", ("BOX", "BER", 1), ("DUO", "BER", 2), ("MUG", "BER", 1))

    assert lines_of("o-1") == [
        ("MUG", "", 1),
        ("MUG", "BOX", 2),
        ("MUG", "DUO", 2),
        ("SPOON", "DUO", 2),
        ("TEA", "BOX", 1),
    ]
    assert reserved() == {"MUG": 7, "TEA": 2, "SPOON": 2}
    assert set(bundle_lines.remembered_bundles(["BOX", "DUO", "MUG"])) == {"BOX", "DUO"}


def test_the_memory_is_bounded_least_recently_used_forgotten_first(box, monkeypatch):
    monkeypatch.setattr(bundle_lines, "REMEMBERED_BUNDLES_MAX", 2)
    BundleFactory("DUO", {"MUG": 1})
    BundleFactory("TRIO", {"TEA": 3})

    bundle_lines.bundle_compositions(["BOX", "DUO"])
    bundle_lines.remembered_bundles(["BOX"])  # used: DUO is now the least recent
    bundle_lines.bundle_compositions(["TRIO"])

    assert set(bundle_lines.remembered_bundles(["BOX", "DUO", "TRIO"])) == {"BOX", "TRIO"}
