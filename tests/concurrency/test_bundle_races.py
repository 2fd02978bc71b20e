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
from ..factories import BundleFactory, WarehouseFactory
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
