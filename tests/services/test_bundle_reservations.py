"""Bundles in reservations (issue #16): an order line for a bundle reserves its
components, all in one warehouse per bundle unit, all or nothing with the rest
of the order; a component wanted by several lines of one order is checked
summed; release and fulfil by bundle SKU act on its components. Every test runs
on both engines (tests/services/conftest.py) and ends with the ledger and
balance invariants checked, plus the bundle-line proportions
(`bundle_line_violations`, proven by planting a fault below)."""

from datetime import timedelta

import pytest

from inventory import clock, errors, routing, services
from inventory.models import (
    Inventory,
    InventoryTransaction,
    Reservation,
    ReservationLine,
    ReservationStatus,
    TransactionType,
)
from inventory.services import OrderLine, OrderRequest, ReserveLine

from ..bundle_invariants import bundle_line_violations, gate_off_unless_it_knows_bundles
from ..conftest import receive
from ..factories import BackorderProductFactory, BundleFactory, ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db

BOX = {"MUG": 2, "SAUCER": 1, "SPOON": 3}  # a gift box: per box 2 mugs, 1 saucer, 3 spoons


@pytest.fixture(autouse=True)
def _gate_knows_bundles_or_is_off(settings):
    gate_off_unless_it_knows_bundles(settings)


@pytest.fixture(autouse=True)
def _bundle_lines_are_whole_units(db):
    yield
    assert bundle_line_violations() == []


@pytest.fixture
def box(db):
    WarehouseFactory(code="BER", latitude=52.52, longitude=13.405)
    WarehouseFactory(code="HAM", latitude=53.55, longitude=9.993)
    return BundleFactory("BOX", BOX)


def row(sku, code="BER"):
    return Inventory.objects.get(product__sku=sku, warehouse__code=code)


def stock(code="BER", **units):
    for sku, qty in units.items():
        receive(sku, code, qty)


def lines_of(order_id):
    lines = ReservationLine.objects.select_related("product", "warehouse", "bundle").filter(
        reservation__order_id=order_id
    )
    return sorted(
        [
            (
                line.product.sku,
                line.warehouse.code,
                line.bundle.sku if line.bundle_id else None,
                line.quantity,
                line.quantity_fulfilled,
                line.quantity_released,
            )
            for line in lines
        ],
        key=lambda line: (line[0], line[1], line[2] or ""),
    )


def reserve(order_id, *lines):
    return services.stock_reserve(
        order_id=order_id, lines=[ReserveLine(*line) for line in lines], actor="client:shop"
    )


def test_a_bundle_line_reserves_its_components_with_a_ledger_row_each(box):
    stock(MUG=10, SAUCER=10, SPOON=10)

    result = reserve("o-1", ("BOX", "BER", 2))

    assert result.created
    assert lines_of("o-1") == [
        ("MUG", "BER", "BOX", 4, 0, 0),
        ("SAUCER", "BER", "BOX", 2, 0, 0),
        ("SPOON", "BER", "BOX", 6, 0, 0),
    ]
    # the answer's lines (built without a query on the SQL engine) name the bundle
    assert sorted(
        (line.product.sku, line.bundle.sku, line.quantity)
        for line in result.reservation.lines.all()
    ) == [("MUG", "BOX", 4), ("SAUCER", "BOX", 2), ("SPOON", "BOX", 6)]
    ledger = InventoryTransaction.objects.filter(type=TransactionType.RESERVE)
    assert sorted(
        (t.product.sku, t.reserved_delta, t.reference_type, t.reference_id, t.reason)
        for t in ledger.select_related("product")
    ) == [
        ("MUG", 4, "order", "o-1", "bundle:BOX"),
        ("SAUCER", 2, "order", "o-1", "bundle:BOX"),
        ("SPOON", 6, "order", "o-1", "bundle:BOX"),
    ]
    assert (row("MUG").reserved, row("SAUCER").reserved, row("SPOON").reserved) == (4, 2, 6)
    assert not Inventory.objects.filter(product__sku="BOX").exists()


def test_one_short_component_refuses_the_whole_order(box):
    ProductFactory(sku="TEA")
    stock(MUG=10, SAUCER=10, SPOON=5, TEA=3)

    with pytest.raises(errors.InsufficientStock) as exc:
        reserve("o-1", ("TEA", "BER", 1), ("BOX", "BER", 2))

    assert exc.value.lines == [{"sku": "SPOON", "warehouse": "BER", "requested": 6, "available": 5}]
    assert not Reservation.objects.exists()
    assert not InventoryTransaction.objects.filter(type=TransactionType.RESERVE).exists()
    assert all(r.reserved == 0 for r in Inventory.objects.all())


def test_a_bundle_and_its_component_sold_alone_are_checked_summed(box):
    """medusa#16502: 5 mugs; a box of 2 (4 mugs) and 2 mugs alone on separate lines
    is 6 mugs: refused; with 1 mug alone it is exactly 5: reserved."""
    stock(MUG=5, SAUCER=5, SPOON=9)

    with pytest.raises(errors.InsufficientStock) as exc:
        reserve("o-over", ("BOX", "BER", 2), ("MUG", "BER", 2))
    assert exc.value.lines == [{"sku": "MUG", "warehouse": "BER", "requested": 6, "available": 5}]
    assert row("MUG").reserved == 0

    reserve("o-limit", ("BOX", "BER", 2), ("MUG", "BER", 1))

    assert lines_of("o-limit") == [
        ("MUG", "BER", None, 1, 0, 0),
        ("MUG", "BER", "BOX", 4, 0, 0),
        ("SAUCER", "BER", "BOX", 2, 0, 0),
        ("SPOON", "BER", "BOX", 6, 0, 0),
    ]
    assert (row("MUG").reserved, row("MUG").available) == (5, 0)
    # one ledger row per line, the row's balance running through them
    mug = InventoryTransaction.objects.filter(product__sku="MUG", type=TransactionType.RESERVE)
    assert sorted((t.reserved_delta, t.reserved_after, t.reason) for t in mug) == [
        (1, 1, ""),
        (4, 5, "bundle:BOX"),
    ]


def test_two_bundles_sharing_a_component_in_one_order(box):
    BundleFactory("PAIR", {"MUG": 2})
    stock(MUG=7, SAUCER=5, SPOON=9)

    with pytest.raises(errors.InsufficientStock):
        reserve("o-over", ("BOX", "BER", 2), ("PAIR", "BER", 2))  # 4 + 4 mugs > 7

    reserve("o-1", ("BOX", "BER", 2), ("PAIR", "BER", 1))  # 4 + 2 mugs

    assert [line for line in lines_of("o-1") if line[0] == "MUG"] == [
        ("MUG", "BER", "BOX", 4, 0, 0),
        ("MUG", "BER", "PAIR", 2, 0, 0),
    ]
    assert row("MUG").reserved == 6


def test_a_batch_accepts_bundle_lines_each_order_all_or_nothing(box):
    stock(MUG=6, SAUCER=5, SPOON=9)

    outcomes = services.stock_reserve_batch(
        orders=[
            OrderRequest("o-1", [ReserveLine("BOX", "BER", 2)]),  # 4 mugs
            OrderRequest("o-2", [ReserveLine("BOX", "BER", 1), ReserveLine("MUG", "BER", 1)]),
            OrderRequest("o-3", [ReserveLine("MUG", "BER", 2)]),  # exactly the 2 left
        ],
        actor="client:oms",
    )

    assert [o.created for o in outcomes] == [True, None, True]
    assert isinstance(outcomes[1].error, errors.InsufficientStock)
    assert outcomes[1].error.lines == [
        {"sku": "MUG", "warehouse": "BER", "requested": 3, "available": 2}
    ]
    assert (row("MUG").reserved, row("SAUCER").reserved) == (6, 2)
    assert sorted(Reservation.objects.values_list("order_id", flat=True)) == ["o-1", "o-3"]


def test_a_retried_bundle_order_reserves_once_and_different_lines_conflict(box):
    stock(MUG=10, SAUCER=10, SPOON=10)
    first = reserve("o-1", ("BOX", "BER", 1), ("MUG", "BER", 1))

    again = reserve("o-1", ("MUG", "BER", 1), ("BOX", "BER", 1))
    batch = services.stock_reserve_batch(
        orders=[OrderRequest("o-1", [ReserveLine("BOX", "BER", 1), ReserveLine("MUG", "BER", 1)])],
        actor="client:shop",
    )

    assert (first.created, again.created, batch[0].created) == (True, False, False)
    assert row("MUG").reserved == 3
    assert InventoryTransaction.objects.filter(type=TransactionType.RESERVE).count() == 4
    with pytest.raises(errors.OrderConflict):
        reserve("o-1", ("BOX", "BER", 2))


def test_release_and_fulfil_by_bundle_act_on_its_components_in_whole_units(box):
    stock(MUG=10, SAUCER=10, SPOON=10)
    reserve("o-1", ("BOX", "BER", 3), ("MUG", "BER", 1))

    services.reservation_fulfill(
        order_id="o-1", actor="user:packer", lines=[OrderLine("BOX", 1)], reason="parcel 1"
    )
    assert lines_of("o-1") == [
        ("MUG", "BER", None, 1, 0, 0),
        ("MUG", "BER", "BOX", 6, 2, 0),
        ("SAUCER", "BER", "BOX", 3, 1, 0),
        ("SPOON", "BER", "BOX", 9, 3, 0),
    ]
    assert (row("MUG").on_hand, row("MUG").reserved) == (8, 5)
    fulfil = InventoryTransaction.objects.filter(type=TransactionType.FULFILL)
    assert sorted((t.product.sku, t.on_hand_delta, t.reason) for t in fulfil) == [
        ("MUG", -2, "bundle:BOX: parcel 1"),
        ("SAUCER", -1, "bundle:BOX: parcel 1"),
        ("SPOON", -3, "bundle:BOX: parcel 1"),
    ]

    services.reservation_release(order_id="o-1", actor="user:cs", lines=[OrderLine("BOX", 1)])
    assert [line[5] for line in lines_of("o-1")] == [0, 2, 1, 3]

    # more bundle units than it holds open: refused, nothing changes
    with pytest.raises(errors.ExceedsReservation) as exc:
        services.reservation_release(order_id="o-1", actor="user:cs", lines=[OrderLine("BOX", 2)])
    assert exc.value.details["lines"] == [
        {"sku": "BOX", "warehouse": None, "requested": 2, "held": 1}
    ]
    # the mug sold alone is released by its own SKU, never from the box's mugs
    with pytest.raises(errors.ExceedsReservation):
        services.reservation_release(order_id="o-1", actor="user:cs", lines=[OrderLine("MUG", 2)])
    services.reservation_release(order_id="o-1", actor="user:cs", lines=[OrderLine("MUG", 1)])
    assert lines_of("o-1")[0] == ("MUG", "BER", None, 1, 0, 1)

    # the whole rest: one box left, shipped by a whole-order fulfilment
    result = services.reservation_fulfill(order_id="o-1", actor="user:packer")
    assert result.reservation.status == ReservationStatus.FULFILLED
    assert lines_of("o-1") == [
        ("MUG", "BER", None, 1, 0, 1),
        ("MUG", "BER", "BOX", 6, 4, 2),
        ("SAUCER", "BER", "BOX", 3, 2, 1),
        ("SPOON", "BER", "BOX", 9, 6, 3),
    ]
    assert (row("MUG").on_hand, row("MUG").reserved) == (6, 0)


def test_a_whole_order_close_of_lines_sharing_a_row_moves_their_total(box):
    BundleFactory("PAIR", {"MUG": 2})
    stock(MUG=10, SAUCER=10, SPOON=10)
    reserve("o-1", ("BOX", "BER", 1), ("PAIR", "BER", 1), ("MUG", "BER", 1))  # 2 + 2 + 1 mugs

    result = services.reservation_fulfill(order_id="o-1", actor="user:packer", reason="shipped")

    assert (row("MUG").on_hand, row("MUG").reserved) == (5, 0)
    mug = [t for t in result.transactions if t.product_id == row("MUG").product_id]
    assert sorted((t.on_hand_delta, t.reason) for t in mug) == [
        (-2, "bundle:BOX: shipped"),
        (-2, "bundle:PAIR: shipped"),
        (-1, "shipped"),
    ]
    # balances after run through the row's lines in order and end at the row's
    # (line order: the mug alone, then the box's, then the pair's)
    assert sorted(t.on_hand_after for t in mug) == [5, 7, 9]
    assert sorted(t.reserved_after for t in mug) == [0, 2, 4]


def test_a_fulfilment_is_checked_against_the_rows_total_on_hand(box):
    """A backordered component: the order's two lines on its row ship 3 together
    with 2 on hand (each line alone would fit): refused, nothing ships."""
    BackorderProductFactory(sku="BMUG", backorder_limit=5)
    BundleFactory("DUO", {"BMUG": 2})
    stock(BMUG=2)
    reserve("o-1", ("DUO", "BER", 1), ("BMUG", "BER", 1))

    with pytest.raises(errors.InsufficientOnHand) as exc:
        services.reservation_fulfill(order_id="o-1", actor="user:packer")
    assert exc.value.lines == [{"sku": "BMUG", "warehouse": "BER", "requested": 3, "on_hand": 2}]
    assert (row("BMUG").on_hand, row("BMUG").reserved) == (2, 3)
    assert not InventoryTransaction.objects.filter(type=TransactionType.FULFILL).exists()


def test_routing_takes_the_closest_warehouse_with_the_whole_bundle(box):
    stock("BER", MUG=10, SAUCER=10, SPOON=2)  # closest, but short of spoons for a box
    stock("HAM", MUG=10, SAUCER=10, SPOON=10)

    routing.reserve_order(
        order_id="o-1",
        lines=[routing.RequestedLine("BOX", 1)],
        actor="client:shop",
        ship_to=routing.Coordinates(52.5, 13.4),  # Berlin
    )

    assert {line[1] for line in lines_of("o-1")} == {"HAM"}


def test_routing_splits_a_bundle_only_by_whole_units(box):
    stock("BER", MUG=4, SAUCER=9, SPOON=9)  # 2 boxes (mugs)
    stock("HAM", MUG=9, SAUCER=9, SPOON=3)  # 1 box (spoons)

    routing.reserve_order(
        order_id="o-1",
        lines=[routing.RequestedLine("BOX", 3)],
        actor="client:shop",
        ship_to=routing.Coordinates(52.5, 13.4),
    )

    assert lines_of("o-1") == [
        ("MUG", "BER", "BOX", 4, 0, 0),
        ("MUG", "HAM", "BOX", 2, 0, 0),
        ("SAUCER", "BER", "BOX", 2, 0, 0),
        ("SAUCER", "HAM", "BOX", 1, 0, 0),
        ("SPOON", "BER", "BOX", 6, 0, 0),
        ("SPOON", "HAM", "BOX", 3, 0, 0),
    ]
    # a retry of the routed order is recognised, whatever the split
    again = routing.reserve_order(
        order_id="o-1", lines=[routing.RequestedLine("BOX", 3)], actor="client:shop"
    )
    assert again.created is False
    # a fulfilment of 2 boxes takes whole boxes per warehouse
    services.reservation_fulfill(order_id="o-1", actor="user:packer", lines=[OrderLine("BOX", 2)])
    assert [line[4] for line in lines_of("o-1")] == [4, 0, 2, 0, 6, 0]


def test_routing_counts_a_component_shared_with_a_line_sold_alone_once(box):
    stock("BER", MUG=5, SAUCER=9, SPOON=9)
    stock("HAM", MUG=2)

    with pytest.raises(errors.InsufficientStock) as exc:
        routing.reserve_order(
            order_id="o-over",
            lines=[routing.RequestedLine("BOX", 2), routing.RequestedLine("MUG", 4)],
            actor="client:shop",
        )
    assert exc.value.lines[0]["sku"] == "MUG" and exc.value.lines[0]["requested"] == 8

    routing.reserve_order(
        order_id="o-1",
        lines=[routing.RequestedLine("BOX", 2), routing.RequestedLine("MUG", 3)],
        actor="client:shop",
    )
    assert lines_of("o-1")[:3] == [
        ("MUG", "BER", None, 1, 0, 0),
        ("MUG", "BER", "BOX", 4, 0, 0),
        ("MUG", "HAM", None, 2, 0, 0),
    ]


def test_the_bundle_line_checker_finds_a_planted_fault(box):
    """Planting: a box's spoon line one unit short of three per box."""
    stock(MUG=10, SAUCER=10, SPOON=10)
    reserve("o-1", ("BOX", "BER", 2))
    assert bundle_line_violations() == []
    ReservationLine.objects.filter(product__sku="SPOON").update(quantity=5)

    assert len(bundle_line_violations()) == 1
    ReservationLine.objects.filter(product__sku="SPOON").update(quantity=6)


def test_a_partial_fulfilment_by_bundle_with_a_key_applies_once(box):
    stock(MUG=10, SAUCER=10, SPOON=10)
    reserve("o-1", ("BOX", "BER", 2))

    for _ in range(2):  # a retry after a lost answer
        services.reservation_fulfill(
            order_id="o-1", actor="user:packer", lines=[OrderLine("BOX", 1)], idempotency_key="k1"
        )

    assert [line[4] for line in lines_of("o-1")] == [2, 1, 3]
    assert InventoryTransaction.objects.filter(type=TransactionType.FULFILL).count() == 3
    assert row("MUG").on_hand == 8


def test_a_lapsed_bundle_hold_released_for_another_order_names_its_bundle(box):
    stock(MUG=2, SAUCER=1, SPOON=3)
    services.stock_reserve(
        order_id="cart",
        lines=[ReserveLine("BOX", "BER", 1)],
        actor="client:shop",
        expires_at=clock.now() + timedelta(seconds=60),
    )
    clock.advance(120)

    reserve("o-2", ("MUG", "BER", 2))  # needs the lapsed box's mugs

    released = InventoryTransaction.objects.filter(type=TransactionType.RELEASE)
    assert [(t.product.sku, t.reserved_delta, t.reason) for t in released] == [
        ("MUG", -2, "bundle:BOX: reservation hold expired")
    ]
    assert lines_of("cart")[0] == ("MUG", "BER", "BOX", 2, 0, 2)
    # A lapsed hold's units are taken row by row as orders need them; the
    # sweeper releases the rest (then the box's lines are whole units again).
    services.reservations_expire()
    assert lines_of("cart") == [
        ("MUG", "BER", "BOX", 2, 0, 2),
        ("SAUCER", "BER", "BOX", 1, 0, 1),
        ("SPOON", "BER", "BOX", 3, 0, 3),
    ]
