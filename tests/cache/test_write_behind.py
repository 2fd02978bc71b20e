"""Opt-in (STOCKROOM_WRITE_BEHIND_MS > 0): a reservation's write-through waits a
few milliseconds for the process's other commits and leaves with them in one
Lua call (inventory/write_behind.py, issue #18 goal 2): it lands within its
delay, a read in the process sees it at once, nothing that raises availability
waits, and nothing is sent twice. Off by default (written at the commit).

Transactional tests: the write-through runs at the real commit. Nothing waits
on wall-clock time: a long delay keeps writes queued while a test looks, and
the sending thread is waited for on an event.
"""

import multiprocessing
import threading
from datetime import timedelta

import pytest
from django.db import connections

from inventory import availability_cache, clock, services
from inventory.models import Inventory
from inventory.services import ReserveLine

from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = availability_cache._WRITE_BEHIND
HOUR = 3600 * 1000  # ms: a delay no test waits out


@pytest.fixture
def stocked(db):
    WarehouseFactory(code="BER")
    ProductFactory(sku="P")
    receive("P", "BER", 10)
    availability_cache.get_many(["P"])  # a complete entry
    return "P"


def raw(sku):
    from django_redis import get_redis_connection

    stored = get_redis_connection("default").hgetall(availability_cache._key(sku))
    return {k.decode(): v.decode() for k, v in stored.items()}


def reserve(order_id, qty=1, sku="P", expires_at=None):
    return services.stock_reserve(
        order_id=order_id, lines=[ReserveLine(sku, "BER", qty)], actor="c", expires_at=expires_at
    )


@pytest.fixture
def lua_calls(monkeypatch):
    """Every Lua write call the read model makes (the real store's, counted)."""
    calls = []
    apply = availability_cache._RedisStore.apply

    def counted(self, writes, remember=()):
        calls.append((len(writes), len(remember)))
        return apply(self, writes, remember)

    monkeypatch.setattr(availability_cache._RedisStore, "apply", counted)
    return calls


def test_off_by_default_a_reservation_is_written_at_its_commit(stocked):
    reserve("o1", 3)
    assert QUEUE.queued == 0
    assert raw("P")["a:BER"] == "7"


def test_a_reservation_waits_in_the_queue_and_a_read_in_the_process_sees_it(stocked, settings):
    settings.STOCKROOM_WRITE_BEHIND_MS = HOUR
    reserve("o1", 3)

    assert QUEUE.queued == 1
    assert raw("P")["a:BER"] == "10"  # not in Redis yet
    # Any read of the read model sends the queue first: the process reads its own writes.
    assert availability_cache.get_many(["P"])["P"].warehouses == {"BER": 7}
    assert raw("P")["a:BER"] == "7"
    assert QUEUE.queued == 0


def test_the_commits_of_the_delay_leave_in_one_lua_call_with_their_gate_memory(
    stocked, settings, lua_calls
):
    settings.STOCKROOM_WRITE_BEHIND_MS = HOUR
    for n in range(3):
        reserve(f"o{n}")
    assert lua_calls == []

    availability_cache.flush_writes()

    assert lua_calls == [(3, 3)]  # three commits' rows and three orders' gate memory
    assert raw("P")["a:BER"] == "7"
    redis = availability_cache._store().client
    assert all(redis.exists(availability_cache._order_key(f"o{n}")) for n in range(3))


def test_the_queue_is_sent_within_its_delay_without_any_read(stocked, settings, monkeypatch):
    settings.STOCKROOM_WRITE_BEHIND_MS = 1
    sent = threading.Event()
    send = availability_cache._apply_writes

    def observed(store, writes, remember):
        send(store, writes, remember)
        sent.set()

    monkeypatch.setattr(availability_cache, "_apply_writes", observed)
    reserve("o1", 4)

    assert sent.wait(timeout=30), "the write-behind thread never sent the reservation"
    assert raw("P")["a:BER"] == "6"


def test_a_full_queue_is_sent_by_the_committing_thread(stocked, settings, monkeypatch, lua_calls):
    settings.STOCKROOM_WRITE_BEHIND_MS = HOUR
    monkeypatch.setattr(availability_cache, "WRITE_BEHIND_MAX_COMMITS", 2)
    reserve("o1")
    assert lua_calls == []
    reserve("o2")
    assert lua_calls == [(2, 2)]
    assert raw("P")["a:BER"] == "8"


def test_what_raises_availability_is_written_at_its_commit(stocked, settings):
    settings.STOCKROOM_WRITE_BEHIND_MS = HOUR
    reserve("o1", 2)
    assert QUEUE.queued == 1

    receive("P", "BER", 5)  # written now (and after the queued reservation's version)
    assert QUEUE.queued == 1
    assert raw("P")["a:BER"] == "13"
    services.reservation_release(order_id="o1", actor="c", reason="customer cancelled")
    assert raw("P")["a:BER"] == "15"
    availability_cache.flush_writes()  # the older reservation's write changes nothing now
    assert raw("P")["a:BER"] == "15"
    assert availability_cache.get_many(["P"])["P"].warehouses == {"BER": 15}


def _queued_in_child(found):
    found.put(QUEUE.queued)


def test_a_forked_process_does_not_send_its_parents_queue(stocked, settings):
    settings.STOCKROOM_WRITE_BEHIND_MS = HOUR
    reserve("o1", 3, expires_at=clock.now() + timedelta(hours=1))
    assert QUEUE.queued == 1

    context = multiprocessing.get_context("fork")
    found = context.Queue()
    child = context.Process(target=_queued_in_child, args=(found,))
    child.start()
    child.join(timeout=60)
    assert found.get(timeout=60) == 0  # the child's queue is its own, empty

    availability_cache.flush_writes()
    snapshot = availability_cache.get_many(["P"])["P"]
    fresh = availability_cache.load_from_database(["P"])["P"]
    # Sent once: the hold's 3 units are counted once, as the database holds them.
    assert snapshot.holds == fresh.holds
    assert snapshot.warehouses == fresh.warehouses == {"BER": 7}


def test_racing_reservations_and_reads_leave_the_read_model_equal_to_the_database(db, settings):
    """Threads reserve (holds of three expiries, two SKUs) while others read,
    with a 5 ms delay: every queued write lands exactly once, whatever the
    interleaving, and the read model ends equal to the database, holds included."""
    settings.STOCKROOM_WRITE_BEHIND_MS = 5
    WarehouseFactory(code="BER")
    for sku in ("A", "B"):
        ProductFactory(sku=sku)
        receive(sku, "BER", 1000)
    availability_cache.get_many(["A", "B"])
    expiries = [clock.now() + timedelta(hours=h) for h in (1, 2, 3)]
    writers, readers, per_writer = 6, 2, 15
    barrier = threading.Barrier(writers + readers)
    done = threading.Event()
    failures = []

    def writer(n):
        try:
            barrier.wait(timeout=30)
            for k in range(per_writer):
                reserve(f"w{n}-{k}", 1 + k % 3, "AB"[k % 2], expiries[(n + k) % 3])
        except Exception as exc:  # reported below
            failures.append(exc)
        finally:
            connections.close_all()

    def reader():
        try:
            barrier.wait(timeout=30)
            while not done.is_set():
                availability_cache.get_many(["A", "B"])
        except Exception as exc:
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    threads += [threading.Thread(target=reader) for _ in range(readers)]
    for thread in threads[:writers] + threads[writers:]:
        thread.start()
    for thread in threads[:writers]:
        thread.join()
    done.set()
    for thread in threads[writers:]:
        thread.join()
    assert failures == []

    availability_cache.flush_writes()
    cached = availability_cache.read_cached(["A", "B"])
    fresh = availability_cache.load_from_database(["A", "B"])
    for sku in ("A", "B"):
        assert cached[sku].warehouses == fresh[sku].warehouses
        assert cached[sku].holds == fresh[sku].holds
        assert cached[sku].versions == fresh[sku].versions
    reserved = sum(row.reserved for row in Inventory.objects.all())
    assert reserved == sum(1 + k % 3 for k in range(per_writer)) * writers
    assert_invariants()
