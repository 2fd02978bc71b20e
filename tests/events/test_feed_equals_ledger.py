"""1,000 concurrent reservations (the batch path, four clients at once): the feed
equals the ledger one to one, and the chaos checker's event invariant holds."""

import threading

import pytest
from django.db import connection

from chaos.checker import event_feed_problems
from inventory import services
from inventory.models import InventoryTransaction, Reservation
from inventory.services import OrderRequest, ReserveLine
from tests.conftest import assert_invariants, receive
from tests.factories import ProductFactory, WarehouseFactory

from .conftest import Follower

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 4
BATCHES = 5
PER_BATCH = 50  # 4 x 5 x 50 = 1,000 orders
SKUS = [f"FEQ-{n:02d}" for n in range(20)]


def test_thousand_concurrent_reservations_feed_equals_ledger():
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    for sku in SKUS:
        ProductFactory(sku=sku)
        receive(sku, "BER", 60)
        receive(sku, "HAM", 60)
    barrier = threading.Barrier(CLIENTS)
    errors: list[BaseException] = []

    def client(c: int) -> None:
        try:
            barrier.wait(60)
            for b in range(BATCHES):
                orders = [
                    OrderRequest(
                        order_id=f"feq-{c}-{b}-{n}",
                        lines=[
                            ReserveLine(SKUS[(c + b + n) % 20], "BER", 1),
                            ReserveLine(SKUS[(c * 7 + n) % 20], "HAM", 1),
                        ],
                    )
                    for n in range(PER_BATCH)
                ]
                services.stock_reserve_batch(orders=orders, actor=f"client:c{c}")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    created = Reservation.objects.count()
    assert created == 1000  # 60 per row suffices for every order

    ledger = {str(i) for i in InventoryTransaction.objects.values_list("id", flat=True)}
    follower = Follower()

    def complete(f: Follower) -> bool:
        return sum(
            len(e.payload["ledger_ids"]) for e in f.events if e.type == "stock.changed"
        ) >= len(ledger)

    assert follower.follow_until(complete)
    from_feed = [
        i for e in follower.events if e.type == "stock.changed" for i in e.payload["ledger_ids"]
    ]
    assert len(from_feed) == len(set(from_feed))  # no ledger row twice
    assert set(from_feed) == ledger  # none missing, none invented
    assert sum(e.type == "reservation.created" for e in follower.events) == 1000
    assert len(follower.seen) == len(set(follower.seen))
    assert event_feed_problems("FEQ-%") == []
    assert_invariants()


def test_checker_reports_a_missing_event():
    WarehouseFactory(code="BER")
    ProductFactory(sku="CHK-1")
    receive("CHK-1", "BER", 3)
    assert event_feed_problems("CHK-%") == []
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE inventory_inventorytransaction DISABLE TRIGGER events_stock")
        try:
            receive("CHK-1", "BER", 2)  # a change that produced no event
        finally:
            cursor.execute("ALTER TABLE inventory_inventorytransaction ENABLE TRIGGER events_stock")
    problems = event_feed_problems("CHK-%")
    assert [p[0] for p in problems] == ["ledger_row_events"]
    assert problems[0][2] == 0


def test_checker_reports_a_change_emitted_twice_and_an_invented_ledger_row():
    """The other two faults the invariant names, planted with raw SQL: one ledger row
    in two events, and an event naming a ledger row that never committed."""
    WarehouseFactory(code="BER")
    ProductFactory(sku="CHK-2")
    receive("CHK-2", "BER", 3)
    assert event_feed_problems("CHK-2") == []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO events_event (type, occurred_at, request_id, sku, warehouse, stream,
                                      payload)
            SELECT type, occurred_at, request_id, sku, warehouse, stream, events_payload(e)
            FROM events_event e WHERE sku = 'CHK-2' AND type = 'stock.changed'
            RETURNING payload -> 'ledger_ids' ->> 0
            """
        )
        (ledger_id,) = cursor.fetchone()
    assert event_feed_problems("CHK-2") == [("ledger_row_events", ledger_id, 2)]
    invented = "01a2317d-0000-7000-8000-000000000000"
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE events_event SET ledger_ids = ARRAY[%s::uuid]
            WHERE id = (SELECT min(id) FROM events_event
                        WHERE sku = 'CHK-2' AND type = 'stock.changed')
            """,
            [invented],
        )
    assert event_feed_problems("CHK-2") == [("event_without_ledger_row", invented, 1)]
