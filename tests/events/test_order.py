"""Per stock row, the feed order is the commit order, also when an older
transaction waits for a row lock held by a younger one (the inversion that
ordering by transaction id alone got wrong: docs/EVENTS.md, "The cursor rule").

Made deterministic with locks: T1 takes its transaction id first (a change of row
A), T2 then changes row B and holds it; T1 asks for row B and waits (seen in
pg_blocking_pids); T2 commits; T1 changes B and commits. T1's id is lower, but
its change of B committed second."""

import threading
import time

import pytest
from django.db import connection, transaction

from events import services
from events.models import Delivery
from tests.conftest import receive
from tests.factories import ProductFactory, WarehouseFactory

from .conftest import Follower

pytestmark = pytest.mark.django_db(transaction=True)


def _txid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id()::text::bigint")
        return cursor.fetchone()[0]


def _blocked_by(waiter_pid: int, holder_pid: int, timeout: float = 60.0) -> bool:
    """Wait until `waiter_pid` waits for a lock `holder_pid` holds (a safety cap only:
    the wait ends on the condition)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT %s = ANY(pg_blocking_pids(%s))", [holder_pid, waiter_pid])
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.01)
    return False


def test_older_transaction_waiting_for_a_younger_ones_row_files_after_it():
    WarehouseFactory(code="BER")
    ProductFactory(sku="ORD-A")
    ProductFactory(sku="ORD-B")
    receive("ORD-A", "BER", 10)
    receive("ORD-B", "BER", 10)
    sub = services.subscription_create(url="http://127.0.0.1:9/hook", actor="user:test")

    has_id, go, done = threading.Event(), threading.Event(), threading.Event()
    t1: dict = {}
    errors: list[BaseException] = []

    def older():
        try:
            with transaction.atomic():
                receive("ORD-A", "BER", 1)  # T1 takes its transaction id (and row A)
                t1["txid"], t1["pid"] = _txid(), connection.connection.info.backend_pid
                has_id.set()
                assert go.wait(60)
                receive("ORD-B", "BER", 1)  # waits for T2's lock on row B
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()
            done.set()

    thread = threading.Thread(target=older)
    thread.start()
    try:
        assert has_id.wait(60)
        with transaction.atomic():
            receive("ORD-B", "BER", 1)  # T2: a younger id, holds row B
            t2_txid = _txid()
            go.set()
            assert _blocked_by(t1["pid"], connection.connection.info.backend_pid)
        # T2 committed; T1 gets row B now.
    finally:
        go.set()
        assert done.wait(60)
        thread.join()
    assert not errors
    assert t1["txid"] < t2_txid  # the inversion's precondition

    follower = Follower(sku="ORD-B", types=["stock.changed"])
    # Row B changed three times: the first receive, T2, T1.
    assert follower.follow_until(lambda f: len(f.events) >= 3), "the feed missed a change of B"
    assert len(follower.events) == 3
    changes = [(e.payload["version"], e.payload["on_hand"]) for e in follower.events]
    assert changes == sorted(changes)  # commit order: T2's change (11) before T1's (12)
    assert [on_hand for _, on_hand in changes] == [10, 11, 12]
    # Ordered by transaction id alone, T1's change would come first.
    from events.models import Event

    by_txid = (
        Event.objects.with_data().filter(sku="ORD-B", type="stock.changed").order_by("txid", "id")
    )
    assert [e.data["on_hand"] for e in by_txid][-2:] == [12, 11]

    # Webhooks follow the same order: the lane of ORD-B sends T2's change first.
    services.dispatch_subscription(sub.pk)
    lane = Delivery.objects.filter(subscription=sub, stream="sku:ORD-B").order_by(
        "event_txid", "event_id"
    )
    on_hand = [
        Event.objects.with_data().get(pk=d.event_id).data["on_hand"]
        for d in lane
        if d.event_type == "stock.changed"
    ]
    assert on_hand[-2:] == [11, 12]
