"""Cycle counts racing each other and orders, on real rows with real connections."""

import pytest

from backoffice.services import CountLine, cycle_count_apply
from inventory import errors, services
from inventory.models import Inventory, InventoryTransaction

from ..concurrency.test_races import run_concurrently
from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db(transaction=True)

SKUS = [f"RACE-{n}" for n in range(6)]


@pytest.fixture
def rows():
    WarehouseFactory(code="BER")
    for sku in SKUS:
        ProductFactory(sku=sku)
        receive(sku, "BER", 20)


def test_counts_over_the_same_skus_in_opposite_orders_do_not_deadlock(rows):
    """Each count lists the SKUs in a different order; locks are taken in pk order."""

    def count(i):
        order = SKUS if i % 2 == 0 else list(reversed(SKUS))
        return cycle_count_apply(
            warehouse="BER",
            lines=[CountLine(sku, 10 + i, 20) for sku in order],
            reason="race",
            actor=f"user:counter{i}",
            count_id=f"race-{i}",
        )

    results = run_concurrently(6, count)

    # Exactly one count saw on hand 20 everywhere; the rest were told stock moved.
    applied = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, errors.StockChanged)]
    assert len(applied) == 1, results
    assert len(refused) == 5, results
    winner = applied[0].transactions[0].created_by
    counted = 10 + int(winner.removeprefix("user:counter"))
    assert set(Inventory.objects.values_list("on_hand", flat=True)) == {counted}
    assert InventoryTransaction.objects.filter(type="ADJUST").count() == len(SKUS)
    assert_invariants()


def test_a_count_racing_deliveries_never_overwrites_one(rows):
    """Receipts land while a count is confirmed: the count applies before them or not at all."""

    def work(i):
        if i == 0:
            return cycle_count_apply(
                warehouse="BER",
                lines=[CountLine(sku, 15, 20) for sku in SKUS],
                reason="race",
                actor="user:counter",
                count_id="race-deliveries",
            )
        return services.stock_receive(sku=SKUS[i - 1], warehouse="BER", quantity=3, actor="c")

    results = run_concurrently(len(SKUS) + 1, work)

    count_result = results[0]
    assert not isinstance(count_result, Exception) or isinstance(
        count_result, errors.StockChanged
    ), results
    assert all(not isinstance(r, Exception) for r in results[1:]), results
    counted = not isinstance(count_result, Exception)
    expected = (15 if counted else 20) + 3
    assert set(Inventory.objects.values_list("on_hand", flat=True)) == {expected}
    assert_invariants()
