"""Races on real rows: threads, each with its own PostgreSQL connection.

Each test commits for real (transaction=True) and checks the invariants after:
nothing oversold, ledger sums equal balances.
"""

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections

from inventory import errors, services
from inventory.models import Inventory, InventoryTransaction, Reservation
from inventory.services import ReserveLine, TransferLine

from ..conftest import assert_invariants, receive
from ..factories import BackorderProductFactory, ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until_a_backend_waits_on_a_lock(or_done=None, cap: float = 120) -> None:
    """Until a backend of this database waits on a lock (or the future `or_done`
    has finished). `cap` only fails a test that hangs."""
    import time

    deadline = time.monotonic() + cap
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0] or (or_done is not None and or_done.done()):
                return
        time.sleep(0.01)
    raise AssertionError("no backend ever waited on a lock")


def run_concurrently(workers: int, fn, *args_per_worker):
    """Start `workers` threads that call fn(i) at the same moment; return results/errors."""
    barrier = threading.Barrier(workers)

    def call(i):
        try:
            barrier.wait(timeout=30)
            return fn(i)
        except Exception as exc:  # collected and asserted on by the test
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(call, range(workers)))


def test_fifty_workers_race_for_ten_units():
    ProductFactory(sku="LAST")
    WarehouseFactory(code="BER")
    receive("LAST", "BER", 10)

    results = run_concurrently(
        50,
        lambda i: services.stock_reserve(
            order_id=f"o-{i}", lines=[ReserveLine("LAST", "BER", 1)], actor="c"
        ),
    )

    granted = [r for r in results if isinstance(r, services.ReservationResult)]
    refused = [r for r in results if isinstance(r, errors.InsufficientStock)]
    assert len(granted) == 10
    assert len(refused) == 40
    row = Inventory.objects.get()
    assert (row.on_hand, row.reserved, row.available) == (10, 10, 0)
    assert Reservation.objects.count() == 10
    assert_invariants()


def test_backorder_race_stops_exactly_at_the_allowance():
    BackorderProductFactory(sku="BACK", backorder_limit=5)
    WarehouseFactory(code="BER")
    receive("BACK", "BER", 3)
    results = run_concurrently(
        20,
        lambda i: services.stock_reserve(
            order_id=f"o-{i}", lines=[ReserveLine("BACK", "BER", 1)], actor="c"
        ),
    )
    assert sum(isinstance(r, services.ReservationResult) for r in results) == 8
    assert Inventory.objects.get().available == -5
    assert_invariants()


def test_multi_line_orders_in_opposite_line_order_never_deadlock():
    skus = [f"S{i}" for i in range(4)]
    WarehouseFactory(code="BER")
    for sku in skus:
        ProductFactory(sku=sku)
        receive(sku, "BER", 15)

    def order(i):
        lines = [ReserveLine(sku, "BER", 1) for sku in skus]
        if i % 2:
            lines.reverse()
        else:
            random.Random(i).shuffle(lines)
        return services.stock_reserve(order_id=f"o-{i}", lines=lines, actor="c")

    results = run_concurrently(24, order)

    unexpected = [
        r
        for r in results
        if isinstance(r, Exception) and not isinstance(r, errors.InsufficientStock)
    ]
    assert unexpected == []  # in particular no deadlock_detected
    granted = sum(isinstance(r, services.ReservationResult) for r in results)
    assert granted == 15
    for row in Inventory.objects.all():
        assert (row.on_hand, row.reserved) == (15, 15)
    assert_invariants()


def test_concurrent_transfers_in_both_directions_never_deadlock():
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    for sku in ("A", "B"):
        ProductFactory(sku=sku)
        receive(sku, "BER", 50)
        receive(sku, "HAM", 50)

    def transfer(i):
        src, dst = ("BER", "HAM") if i % 2 else ("HAM", "BER")
        lines = [TransferLine("A", 1), TransferLine("B", 1)]
        return services.stock_transfer(source=src, destination=dst, lines=lines, actor="u")

    results = run_concurrently(20, transfer)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert sum(Inventory.objects.values_list("on_hand", flat=True)) == 200
    assert_invariants()


def test_same_order_sent_concurrently_reserves_once():
    ProductFactory(sku="X")
    WarehouseFactory(code="BER")
    receive("X", "BER", 100)
    results = run_concurrently(
        20,
        lambda i: services.stock_reserve(
            order_id="dup", lines=[ReserveLine("X", "BER", 3)], actor="c"
        ),
    )
    assert [r for r in results if isinstance(r, Exception)] == []
    assert sum(r.created for r in results) == 1
    assert Inventory.objects.get().reserved == 3
    assert_invariants()


def test_same_receipt_sent_concurrently_applies_once():
    ProductFactory(sku="X")
    WarehouseFactory(code="BER")
    results = run_concurrently(
        20,
        lambda i: services.stock_receive(
            sku="X", warehouse="BER", quantity=7, actor="u", idempotency_key="receipt-1"
        ),
    )
    assert [r for r in results if isinstance(r, Exception)] == []
    assert sum(not r.replayed for r in results) == 1
    assert Inventory.objects.get().on_hand == 7
    assert InventoryTransaction.objects.count() == 1
    assert_invariants()


def test_first_receipts_into_a_new_row_race_without_losing_any():
    ProductFactory(sku="NEW")
    WarehouseFactory(code="BER")
    results = run_concurrently(
        16, lambda i: services.stock_receive(sku="NEW", warehouse="BER", quantity=2, actor="u")
    )
    assert [r for r in results if isinstance(r, Exception)] == []
    assert Inventory.objects.get().on_hand == 32
    assert_invariants()


def test_mixed_operations_keep_every_invariant():
    """Reserve, release, fulfil, receive and adjust racing on a few rows."""
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    for sku in ("A", "B"):
        ProductFactory(sku=sku)
        receive(sku, "BER", 20)
        receive(sku, "HAM", 20)

    def worker(i):
        rng = random.Random(i)
        outcomes = []
        for step in range(15):
            sku, code = rng.choice("AB"), rng.choice(["BER", "HAM"])
            op = rng.random()
            try:
                if op < 0.5:
                    order = f"o-{i}-{step}"
                    services.stock_reserve(
                        order_id=order, lines=[ReserveLine(sku, code, rng.randint(1, 3))], actor="c"
                    )
                    if rng.random() < 0.5:
                        services.reservation_fulfill(order_id=order, actor="c")
                    else:
                        services.reservation_release(order_id=order, actor="c")
                elif op < 0.75:
                    services.stock_receive(sku=sku, warehouse=code, quantity=2, actor="u")
                else:
                    services.stock_adjust(
                        sku=sku, warehouse=code, delta=-1, reason="damaged", actor="u"
                    )
                outcomes.append("ok")
            except errors.InventoryError as exc:
                outcomes.append(exc.code)
        return outcomes

    results = run_concurrently(8, worker)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert_invariants()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM inventory_inventory WHERE reserved <> 0")
        assert cursor.fetchone()[0] == 0


def test_concurrent_batches_over_shared_skus_never_deadlock_or_oversell():
    skus = [f"S{i}" for i in range(5)]
    WarehouseFactory(code="BER")
    for sku in skus:
        ProductFactory(sku=sku)
        receive(sku, "BER", 40)

    def batch(i):
        rng = random.Random(i)
        orders = []
        for n in range(20):
            chosen = rng.sample(skus, 3)
            orders.append(
                services.OrderRequest(
                    f"b{i}-{n}", [ReserveLine(sku, "BER", rng.randint(1, 2)) for sku in chosen]
                )
            )
        return services.stock_reserve_batch(orders=orders, actor="c")

    results = run_concurrently(8, batch)
    assert [r for r in results if isinstance(r, Exception)] == []
    outcomes = [o for batch_outcomes in results for o in batch_outcomes]
    assert all(o.result or isinstance(o.error, errors.InsufficientStock) for o in outcomes)
    granted = sum(o.result is not None for o in outcomes)
    assert granted == Reservation.objects.count() > 0
    for row in Inventory.objects.all():
        assert 0 <= row.reserved <= row.on_hand == 40
    assert_invariants()


def test_a_row_created_during_a_policy_change_gets_the_new_allowance():
    """A backorder SKU switched to normal while a reservation creates its first row in
    another warehouse: the new row must not keep the old allowance (which would let
    that warehouse go below zero for a normal SKU)."""
    product = BackorderProductFactory(sku="PRE", backorder_limit=5)
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    receive("PRE", "BER", 1)  # one existing row
    in_change, go_on = threading.Event(), threading.Event()

    def change_policy():
        from django.db import transaction

        try:
            with transaction.atomic():
                services.product_set_stock_policy(
                    product=product, stock_policy="normal", backorder_limit=0
                )
                in_change.set()
                go_on.wait(30)  # the change holds its locks, uncommitted
        finally:
            connections.close_all()

    def reserve_in_new_warehouse():
        try:
            return services.stock_reserve(
                order_id="pre-1", lines=[ReserveLine("PRE", "HAM", 2)], actor="c"
            )
        except errors.InventoryError as exc:
            return exc
        finally:
            connections.close_all()

    changer = threading.Thread(target=change_policy)
    changer.start()
    assert in_change.wait(10)
    with ThreadPoolExecutor(max_workers=1) as pool:
        reservation = pool.submit(reserve_in_new_warehouse)
        # Wait until the reservation waits on the change's locks (not a sleep
        # tuned to one machine); or has finished, if it never needed to wait.
        wait_until_a_backend_waits_on_a_lock(or_done=reservation)
        go_on.set()
        outcome = reservation.result(timeout=30)
    changer.join(30)

    assert isinstance(outcome, errors.InsufficientStock), outcome
    row = Inventory.objects.get(product__sku="PRE", warehouse__code="HAM")
    assert (row.backorder_allowance, row.reserved) == (0, 0)
    assert_invariants()
