"""50 concurrent orders for the last units of a component shared by bundles and
sold alone (issue #16): exactly as many granted as stock allows, on both engines.

Each order needs exactly 2 mugs, as a gift box (2 mugs + 1 saucer), as 2 mugs
alone, or as a duo (1 mug + 1 spoon) plus 1 mug alone on separate lines (the
summed check of medusa#16502). 20 mugs: exactly 10 orders win, whatever the
interleaving; ledger, balances and bundle-line proportions checked afterwards.
"""

import pytest
from django.db import connection

from inventory import errors, services
from inventory.models import Inventory, Reservation
from inventory.services import ReserveLine

from ..bundle_invariants import bundle_line_violations
from ..conftest import assert_invariants, receive
from ..factories import BundleFactory, ProductFactory, WarehouseFactory
from .test_races import run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)

KINDS = [
    [ReserveLine("BOX", "BER", 1)],
    [ReserveLine("MUG", "BER", 2)],
    [ReserveLine("DUO", "BER", 1), ReserveLine("MUG", "BER", 1)],
]


def test_fifty_orders_race_for_the_last_units_of_a_shared_component():
    WarehouseFactory(code="BER")
    BundleFactory("BOX", {"MUG": 2, "SAUCER": 1})
    BundleFactory("DUO", {"MUG": 1, "SPOON": 1})
    receive("MUG", "BER", 20)
    receive("SAUCER", "BER", 100)
    receive("SPOON", "BER", 100)

    def place(i):
        # Waiting on the row is the point; a loaded machine must not turn a
        # wait into StockBusy (DB_LOCK_TIMEOUT_MS), so this session waits long.
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '120s'")
        return services.stock_reserve(
            order_id=f"o-{i}", lines=KINDS[i % len(KINDS)], actor="client:shop"
        )

    results = run_concurrently(50, place)

    granted = [r for r in results if isinstance(r, services.ReservationResult)]
    refused = [r for r in results if isinstance(r, errors.InsufficientStock)]
    assert (len(granted), len(refused)) == (10, 40), [
        r
        for r in results
        if not isinstance(r, services.ReservationResult | errors.InsufficientStock)
    ]
    mug = Inventory.objects.get(product__sku="MUG")
    assert (mug.on_hand, mug.reserved, mug.available) == (20, 20, 0)
    assert Reservation.objects.count() == 10
    saucers = Inventory.objects.get(product__sku="SAUCER").reserved
    spoons = Inventory.objects.get(product__sku="SPOON").reserved
    boxes = sum(r.reservation.order_id in {f"o-{i}" for i in range(0, 50, 3)} for r in granted)
    duos = sum(r.reservation.order_id in {f"o-{i}" for i in range(2, 50, 3)} for r in granted)
    assert (saucers, spoons) == (boxes, duos)
    assert_invariants()
    assert bundle_line_violations() == []


def test_orders_expanded_from_memory_racing_a_composition_change_never_use_an_old_one(settings):
    """Remembered compositions (issue #16, item 5): every thread's process memory
    knows BOX; at a barrier one thread changes its composition while four reserve
    BOX from the memory. Whichever wins, every open line set has BOX's composition
    as stored afterwards (the change either commits first, and the orders find
    their memory stale and read again, or waits for them and is refused:
    bundle_in_use). Rounds alternate the composition, each round's orders
    released before the next, so the memory is out of date again and again (each
    round asks for a composition other than the current one)."""
    from inventory.models import BundleComponent, Product, ReservationLine
    from inventory.services import bundle_lines

    from ..bundle_invariants import gate_off_unless_it_knows_bundles, stale_bundle_lines

    gate_off_unless_it_knows_bundles(settings)
    WarehouseFactory(code="BER")
    BundleFactory("BOX", {"MUG": 2})
    ProductFactory(sku="SAUCER")
    receive("MUG", "BER", 1000)
    receive("SAUCER", "BER", 1000)
    compositions = [{"SAUCER": 3}, {"MUG": 1, "SAUCER": 1}, {"MUG": 2}]
    for r in range(6):
        bundle_lines.bundle_compositions(["BOX"])  # the memory, before the change
        current = dict(
            BundleComponent.objects.filter(bundle__sku="BOX").values_list(
                "component__sku", "quantity"
            )
        )
        wanted = next(c for c in compositions[r % 3 :] + compositions if c != current)

        def act(i, r=r, wanted=wanted):
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '120s'")
            if i == 0:
                return services.bundle_set_components(
                    product=Product.objects.get(sku="BOX"),
                    components=[{"sku": s, "quantity": q} for s, q in wanted.items()],
                )
            return services.stock_reserve(
                order_id=f"r{r}-{i}", lines=[ReserveLine("BOX", "BER", 1)], actor="client:shop"
            )

        change, *orders = run_concurrently(5, act)

        assert all(isinstance(o, services.ReservationResult) for o in orders), orders
        assert not isinstance(change, Exception) or isinstance(change, errors.BundleInUse), change
        assert stale_bundle_lines() == [], f"round {r}"
        # Each order: one BOX as stored now, exactly. (Not `bundle_line_violations`:
        # it also checks closed lines against today's composition, and the
        # released orders of earlier rounds hold earlier ones, rightly.)
        now = dict(
            BundleComponent.objects.filter(bundle__sku="BOX").values_list(
                "component__sku", "quantity"
            )
        )
        for i in range(1, 5):
            held = ReservationLine.objects.filter(
                reservation__order_id=f"r{r}-{i}", bundle__sku="BOX"
            )
            assert dict(held.values_list("product__sku", "quantity")) == now, f"round {r}"
        for i in range(1, 5):
            services.reservation_release(order_id=f"r{r}-{i}", actor="client:shop")
    assert_invariants()
    assert Inventory.objects.filter(reserved__gt=0).count() == 0
