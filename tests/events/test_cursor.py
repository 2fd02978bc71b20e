"""The cursor that cannot skip: a transaction that started writing earlier but
commits later is neither missed nor seen twice by a feed consumer."""

import threading

import pytest
from django.db import connection, transaction

from events.models import Event
from tests.conftest import receive
from tests.factories import ProductFactory, WarehouseFactory

from .conftest import Follower

pytestmark = pytest.mark.django_db(transaction=True)


def _all_ids() -> list[int]:
    return list(Event.objects.order_by("id").values_list("id", flat=True))


def test_late_committer_is_neither_missed_nor_seen_twice():
    ProductFactory(sku="LATE-A")
    ProductFactory(sku="LATE-B")
    WarehouseFactory(code="BER")
    receive("LATE-A", "BER", 1)
    receive("LATE-B", "BER", 1)
    follower = Follower()
    assert follower.follow_until(lambda f: len(f.seen) == len(_all_ids()))
    naive_last = max(_all_ids())  # a reader by id alone, for contrast
    naive_seen: list[int] = []

    written, commit, committed = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def early_writer():
        try:
            with transaction.atomic():
                receive("LATE-A", "BER", 5)  # its events get the lower ids...
                written.set()
                assert commit.wait(60)
            # ...and become visible only now, after the later transactions.
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()
            committed.set()

    thread = threading.Thread(target=early_writer)
    thread.start()
    try:
        assert written.wait(60)
        late_ids_before = set(_all_ids())
        for _ in range(3):
            receive("LATE-B", "BER", 1)  # later transactions, committed
        later = set(_all_ids()) - late_ids_before
        assert later

        # The naive reader (id > last seen) sees the later events and moves past the
        # open transaction's lower ids.
        naive = list(Event.objects.filter(id__gt=naive_last).order_by("id"))
        naive_seen.extend(e.id for e in naive)
        naive_last = max(naive_seen)
        # The feed holds them back: every one of them is behind the open transaction.
        follower.drain()
        assert not later & set(follower.seen)
    finally:
        commit.set()  # also when an assertion above failed: never leave it open
        assert committed.wait(60)
        thread.join()
    assert not errors

    everything = _all_ids()
    assert follower.follow_until(lambda f: len(f.seen) >= len(everything))
    assert sorted(follower.seen) == everything  # none missed
    assert len(follower.seen) == len(set(follower.seen))  # none twice
    # The naive reader lost the early transaction's events for good.
    naive_seen.extend(Event.objects.filter(id__gt=naive_last).values_list("id", flat=True))
    assert set(everything) - set(naive_seen)
    # The early transaction's events come first in the feed (its txid is lower).
    early = [e for e in follower.events if e.sku == "LATE-A" and e.type == "stock.changed"]
    assert early[-1].payload["on_hand"] == 6
    position = {e.id: n for n, e in enumerate(follower.events)}
    assert position[early[-1].id] < min(position[i] for i in later)


def test_several_consumers_with_different_page_sizes_see_the_same_sequence():
    ProductFactory(sku="PAGES")
    WarehouseFactory(code="BER")
    for n in range(12):
        receive("PAGES", "BER", n + 1)
    total = len(_all_ids())
    small, large = Follower(), Follower()
    assert small.follow_until(lambda f: len(f.seen) == total)
    assert large.follow_until(lambda f: len(f.seen) == total)
    assert small.seen == large.seen
    # The cursor is stable: resuming from any event's cursor gives the rest.
    from events.selectors import decode_cursor, event_feed

    middle = small.events[total // 2]
    rest = event_feed(after=decode_cursor(middle.cursor), limit=1000).events
    assert [e.id for e in rest] == small.seen[total // 2 + 1 :]


def test_an_open_transaction_of_another_database_does_not_hold_the_feed_back():
    """The horizon counts only this database's transactions: another database's
    writing transaction (here: held open on `postgres`) cannot write our events."""
    import psycopg

    ProductFactory(sku="OTHER-DB")
    WarehouseFactory(code="BER")
    db = connection.settings_dict
    other = psycopg.connect(
        host=db["HOST"],
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"],
        dbname="postgres",
    )
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()::text::bigint")  # an id, held open
            (other_txid,) = cursor.fetchone()
        receive("OTHER-DB", "BER", 2)  # a later transaction here, committed
        (event,) = Event.objects.filter(sku="OTHER-DB", type="stock.changed")
        assert event.txid > other_txid  # the cluster-wide horizon would hold it back
        follower = Follower(sku="OTHER-DB")
        follower.drain()
        assert event.id in follower.seen  # returned at once, the other one still open
    finally:
        other.rollback()
        other.close()
