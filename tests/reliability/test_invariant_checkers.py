"""The invariant checkers can fail: faults planted by hand are reported.

Both checkers (`tests.conftest.assert_invariants` and `chaos.checker`, which
share `chaos.checker.stock_row_problems`) recompute every stock row from what
the CHECK constraints do not guard: on hand from the ledger, reserved from the
open reservation lines, the allowance in force from the product's stock policy.
Each test plants one fault inside its own test transaction (CHECK constraints
are dropped with transactional DDL, so they come back at the rollback) and shows
both checkers name it; a clean state reports nothing.

The "old" query below is what both checkers computed before (#13 item 8): it
trusts the row's own columns, so it is blind to every planted oversell except
one whose columns say so openly.
"""

import pytest
from django.db import connection

from chaos.checker import balance_violations, stock_row_problems
from chaos.workload import World
from inventory import services
from inventory.models import (
    Inventory,
    InventoryTransaction,
    Product,
    Reservation,
    ReservationLine,
)
from inventory.services import ReserveLine

from ..conftest import assert_invariants, receive
from ..factories import BackorderProductFactory, ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db

WORLD = World(prefix="PLT", skus=["PLT-N"], backorder_skus=["PLT-B"], warehouses=["BER"])


def old_style_oversold() -> list:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM inventory_inventory "
            "WHERE on_hand < 0 OR reserved < 0 OR on_hand - reserved < -backorder_allowance"
        )
        return cursor.fetchall()


def drop_check(name: str) -> None:
    """Only for this test's transaction: DDL rolls back with it."""
    with connection.cursor() as cursor:
        # Run the deferred foreign-key checks now: ALTER TABLE refuses to run
        # while a table has pending trigger events.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE inventory_inventory DROP CONSTRAINT {name}")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


@pytest.fixture
def world(db):
    WarehouseFactory(code="BER")
    ProductFactory(sku="PLT-N")
    BackorderProductFactory(sku="PLT-B", backorder_limit=3)
    receive("PLT-N", "BER", 4)
    receive("PLT-B", "BER", 1)
    return WORLD


def row(sku: str) -> Inventory:
    return Inventory.objects.select_related("product", "warehouse").get(product__sku=sku)


def hand_made_reservation(sku: str, quantity: int, *, update_row: bool = True) -> None:
    """A reservation written by hand: its line, its RESERVE ledger row and (unless
    `update_row` is false, a row that hides it) the row's reserved column."""
    stock = row(sku)
    order = Reservation.objects.create(
        order_id=f"planted-{sku}", request_fingerprint="planted", created_by="test"
    )
    ReservationLine.objects.create(
        reservation=order,
        inventory=stock,
        product=stock.product,
        warehouse=stock.warehouse,
        quantity=quantity,
    )
    InventoryTransaction.objects.create(
        product=stock.product,
        warehouse=stock.warehouse,
        type="RESERVE",
        reserved_delta=quantity,
        on_hand_after=stock.on_hand,
        reserved_after=stock.reserved + quantity,
        reference_id=order.order_id,
        created_by="test",
    )
    if update_row:
        Inventory.objects.filter(pk=stock.pk).update(reserved=stock.reserved + quantity)


def reported(sku: str) -> list[str]:
    return next((r.problems for r in stock_row_problems() if r.sku == sku), [])


def assert_both_checkers_report(sku: str, *, oversold: int, containing: str) -> None:
    problems = reported(sku)
    assert any(containing in p for p in problems), problems
    violations, oversold_units, details = balance_violations(WORLD)
    assert violations >= 1 and oversold_units == oversold, details
    assert any(d[0] == sku and any(containing in p for p in d[2]) for d in details), details
    with pytest.raises(AssertionError):
        assert_invariants()


def test_a_clean_state_reports_nothing(world):
    services.stock_reserve(order_id="o1", lines=[ReserveLine("PLT-N", "BER", 4)], actor="c")
    # The backorder SKU uses its whole allowance: on hand 1, reserved 4.
    services.stock_reserve(order_id="o2", lines=[ReserveLine("PLT-B", "BER", 4)], actor="c")
    services.reservation_fulfill(order_id="o1", actor="c")

    assert stock_row_problems() == []
    assert balance_violations(WORLD) == (0, 0, [])
    assert_invariants()


def test_a_stale_allowance_on_its_own_is_reported(world):
    Inventory.objects.filter(product__sku="PLT-N").update(backorder_allowance=20)

    assert old_style_oversold() == []
    assert reported("PLT-N") == ["stale allowance 20 (policy allows 0)"]
    assert_both_checkers_report("PLT-N", oversold=0, containing="stale allowance 20")


def test_an_oversell_behind_a_stale_allowance_is_reported(world):
    """The issue's case: a normal SKU's row born with allowance 20; 10 reserved
    with 4 on hand. The CHECK (on_hand >= reserved - allowance) lets it through,
    so the columns look fine to a check that trusts them."""
    Inventory.objects.filter(product__sku="PLT-N").update(backorder_allowance=20)
    hand_made_reservation("PLT-N", 10)

    assert old_style_oversold() == []  # the old checkers saw nothing
    assert_both_checkers_report("PLT-N", oversold=6, containing="oversold by 6")
    assert "stale allowance 20 (policy allows 0)" in reported("PLT-N")


def test_an_oversold_row_with_the_check_dropped_is_reported(world):
    drop_check("inventory_available_within_allowance")
    hand_made_reservation("PLT-N", 10)  # 4 on hand, 10 reserved, allowance 0

    assert_both_checkers_report("PLT-N", oversold=6, containing="oversold by 6")
    # Only that: the row, ledger and lines agree with each other.
    assert len(reported("PLT-N")) == 1


def test_an_oversell_the_row_hides_is_reported_from_ledger_and_lines(world):
    """The row's columns still say reserved 0; its ledger and its open line say 10."""
    hand_made_reservation("PLT-N", 10, update_row=False)

    assert old_style_oversold() == []
    assert_both_checkers_report("PLT-N", oversold=6, containing="oversold by 6")
    assert "reserved 0 != ledger 10" in reported("PLT-N")


def test_a_backorder_sku_beyond_its_limit_is_reported(world):
    """The backorder SKU allows 3 below zero: 1 on hand, 5 reserved is 1 too many."""
    drop_check("inventory_available_within_allowance")
    hand_made_reservation("PLT-B", 5)

    assert_both_checkers_report("PLT-B", oversold=1, containing="oversold by 1")


def test_a_policy_lowered_behind_the_rows_back_is_reported(world):
    """The product's policy says normal, the row still carries backorder's 3 and
    uses it: the row is oversold by the policy in force."""
    drop_check("inventory_available_within_allowance")
    hand_made_reservation("PLT-B", 3)  # 1 on hand: -2, allowed under backorder
    assert reported("PLT-B") == []
    Product.objects.filter(sku="PLT-B").update(stock_policy="normal", backorder_limit=0)

    assert_both_checkers_report("PLT-B", oversold=2, containing="oversold by 2")
    assert "stale allowance 3 (policy allows 0)" in reported("PLT-B")


def test_negative_on_hand_is_reported(world):
    drop_check("inventory_on_hand_gte_0")
    drop_check("inventory_available_within_allowance")
    drop_check("inventory_unsellable_within_on_hand")  # 0 + 0 <= on hand (issue 15)
    stock = row("PLT-N")
    InventoryTransaction.objects.create(
        product=stock.product,
        warehouse=stock.warehouse,
        type="ADJUST",
        on_hand_delta=-6,
        on_hand_after=-2,
        reserved_after=0,
        created_by="test",
    )
    Inventory.objects.filter(pk=stock.pk).update(on_hand=-2)

    assert_both_checkers_report("PLT-N", oversold=2, containing="on hand < 0 (ledger -2, row -2)")
