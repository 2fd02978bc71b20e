"""Bulk receipts racing real orders and each other: threads, each with its own
PostgreSQL connection, committing for real."""

import io

import pytest

from inventory import services
from inventory.models import Inventory, InventoryTransaction
from inventory.services import ReserveLine

from ..concurrency.test_races import run_concurrently
from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db(transaction=True)

SKUS = [f"R{i}" for i in range(6)]


@pytest.fixture
def stocked():
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    for sku in SKUS:
        ProductFactory(sku=sku)
        receive(sku, "BER", 50)


def receipt(codes=("BER", "HAM")) -> str:
    return "sku,warehouse,quantity\n" + "".join(f"{s},{c},5\n" for s in SKUS for c in codes)


def test_the_same_file_run_twice_at_once_is_applied_once(stocked):
    results = run_concurrently(
        2,
        lambda i: services.stock_receive_bulk(
            source=io.StringIO(receipt()), actor="user:t", reference="DN-RACE"
        ),
    )
    assert all(isinstance(r, services.BulkReceiveResult) for r in results), results
    assert sum(r.applied for r in results) == 2 * len(SKUS)
    assert sum(r.already_applied for r in results) == 2 * len(SKUS)
    assert InventoryTransaction.objects.filter(reference_id="DN-RACE").count() == 2 * len(SKUS)
    assert set(
        Inventory.objects.filter(warehouse__code="BER").values_list("on_hand", flat=True)
    ) == {55}
    assert_invariants()


def test_bulk_receipts_and_orders_in_reverse_key_order_never_deadlock(stocked, monkeypatch):
    """Orders lock their rows in primary-key order, and so does every bulk chunk;
    with lines listed in reverse and chunks of two rows, nobody waits in a cycle."""
    from inventory.services import bulk

    monkeypatch.setattr(bulk, "APPLY_CHUNK", 2)
    rows_desc = [
        (r.product.sku, r.warehouse.code)
        for r in Inventory.objects.select_related("product", "warehouse").order_by("-id")
    ]

    def work(i):
        if i % 2:
            return services.stock_receive_bulk(
                source=io.StringIO(receipt(("BER",))), actor="user:t", reference=f"DN-{i}",
                atomic=i % 4 == 1,
            )  # fmt: skip
        return services.stock_reserve(
            order_id=f"o-{i}",
            lines=[ReserveLine(sku, code, 1) for sku, code in rows_desc],
            actor="c",
        )

    results = run_concurrently(8, work)
    failures = [r for r in results if isinstance(r, Exception)]
    assert not failures, failures  # no deadlock, no lock timeout
    reserved = Inventory.objects.filter(warehouse__code="BER").values_list("reserved", "on_hand")
    assert set(reserved) == {(4, 50 + 4 * 5)}
    assert_invariants()
