"""The lock order of inventory.locks, proven deterministically with two connections.

`lock_inventory_rows` must lock stock rows in primary-key order (the rule that
keeps two stock changes from deadlocking). The rows here are built so that
every other plausible order (the pairs' SKU order, product id order, insertion
/ physical order) disagrees with primary-key order. One connection holds the
row with the higher key; the locker, in another, then waits on it. If it locked
in key order it already holds the lower row while it waits, which a third
connection sees with NOWAIT. No sleeps: the test waits on the lock wait itself
(pg_blocking_pids), however slow the machine.
"""

import threading
import time
import uuid

import psycopg
import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from chaos.scenarios import database_url
from inventory.locks import lock_inventory_rows
from inventory.models import Inventory

from ..factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db(transaction=True)

LOW = uuid.UUID(int=1)
HIGH = uuid.UUID(int=2**128 - 1)
PAIRS = [("LK-A", "BER"), ("LK-B", "BER")]


@pytest.fixture
def rows():
    warehouse = WarehouseFactory(code="BER")
    first = ProductFactory(sku="LK-A", id=uuid.UUID(int=2))
    second = ProductFactory(sku="LK-B", id=uuid.UUID(int=2**128 - 2))
    # LK-A: first by SKU, by product id and physically (inserted first), last by key.
    Inventory.objects.create(id=HIGH, product=first, warehouse=warehouse)
    Inventory.objects.create(id=LOW, product=second, warehouse=warehouse)


def lock_row(conn: psycopg.Connection, pk: uuid.UUID, *, nowait: bool = False) -> None:
    conn.execute(
        "SELECT 1 FROM inventory_inventory WHERE id = %s FOR NO KEY UPDATE"
        + (" NOWAIT" if nowait else ""),
        [pk],
    )


def wait_until_blocked_by(probe: psycopg.Connection, pid: int, blocker: int) -> None:
    deadline = time.monotonic() + 120  # a safety cap only: the wait ends on the event
    while time.monotonic() < deadline:
        blockers = probe.execute("SELECT pg_blocking_pids(%s)", [pid]).fetchone()[0]
        probe.rollback()
        if blocker in blockers:
            return
        time.sleep(0.01)
    raise AssertionError("the locker never waited on the held row")


def test_lock_inventory_rows_locks_in_primary_key_order(rows):
    holder = psycopg.connect(database_url())
    probe = psycopg.connect(database_url())
    started, outcome = threading.Event(), {}

    def locker():
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    outcome["pid"] = cursor.fetchone()[0]
                started.set()
                # Asked for in the order that puts the high-key row first.
                locked = lock_inventory_rows(PAIRS)
                outcome["locked"] = sorted(row.pk for row in locked.values())
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            started.set()
            connections.close_all()

    thread = threading.Thread(target=locker)
    try:
        lock_row(holder, HIGH)
        holder_pid = holder.info.backend_pid
        thread.start()
        assert started.wait(60) and "error" not in outcome, outcome
        wait_until_blocked_by(probe, outcome["pid"], holder_pid)

        # The locker waits on HIGH: in key order it already holds LOW.
        with pytest.raises(psycopg.errors.LockNotAvailable):
            lock_row(probe, LOW, nowait=True)
        probe.rollback()
    finally:
        holder.rollback()
        holder.close()
        thread.join(60)
        probe.close()
    assert outcome.get("locked") == [LOW, HIGH], outcome


def test_lock_inventory_rows_is_one_ordered_no_key_update(rows):
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        lock_inventory_rows(reversed(PAIRS))
    [sql] = [q["sql"] for q in queries if "inventory_inventory" in q["sql"]]
    assert 'ORDER BY "inventory_inventory"."id" ASC' in sql
    assert sql.endswith('FOR NO KEY UPDATE OF "inventory_inventory"')
