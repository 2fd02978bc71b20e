"""Helpers for the events tests: read the event table, follow the feed until a
condition holds (the feed waits for every older transaction in the cluster to end,
so a reader waits on a condition, never on a fixed sleep)."""

import time
from pathlib import Path

import pytest
from django.db import connection

from events.models import Event
from events.selectors import START, decode_cursor, event_feed


def events_of(*types: str) -> list[Event]:
    """The events of these types in feed order, each with `.data`: its payload as the
    feed and webhooks return it."""
    query = Event.objects.with_data().order_by("feed_txid", "id")
    if types:
        query = query.filter(type__in=types)
    return list(query)


class Follower:
    """A feed consumer: keeps its cursor, remembers every event id it was given."""

    def __init__(self, **filters) -> None:
        self.after = START
        self.seen: list[int] = []
        self.events: list = []
        self.filters = filters

    def poll(self, limit: int = 100) -> list:
        page = event_feed(after=self.after, limit=limit, **self.filters)
        self.after = decode_cursor(page.next_cursor)
        self.seen.extend(e.id for e in page.events)
        self.events.extend(page.events)
        return page.events

    def drain(self, limit: int = 100) -> None:
        while self.poll(limit):
            pass

    def follow_until(self, predicate, timeout: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            if predicate(self):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


# The emitters as they were before events migration 0005 (jsonb payloads built in the
# trigger), run beside the live ones by `twin_0004` to prove the rendered payloads equal.
_TWINS = (
    ("events_stock_emit", "inventory_inventorytransaction", "new_ledger"),
    ("events_reservation_created", "inventory_reservationline", "new_lines"),
)
_TWIN_TYPES = ("stock.changed", "availability.changed", "reservation.created")
_TWIN_ROWS = """
SELECT e.txid::text, e.type, e.sku, e.warehouse, e.stream, e.request_id,
       coalesce({payload} -> 'ledger_ids', 'null')::text, {payload}::text
FROM {table} e WHERE e.type = ANY(%s) ORDER BY e.id
"""


@pytest.fixture
def twin_0004(db):
    """Install the 0004 stock and reservation emitters (frozen copies, renamed) writing
    into a copy of the event table, beside the live triggers; after the test, every
    event of the typed types must have a twin from the same change whose stored jsonb
    is, as JSON text, exactly what events_payload() renders for the live event (keys,
    values, order of lists). Twins are matched by transaction, type, SKU, warehouse,
    stream, request id and ledger ids (availability.changed is one per SKU and
    transaction, reservation.created one per order; the feed position is taken when
    each trigger runs and may differ between the two). Returns a callable that
    compares so far (number of events compared)."""
    frozen = Path(__file__).resolve().parents[2] / "events" / "migrations" / "sql"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE events_event_0004 "
            "(LIKE events_event INCLUDING DEFAULTS INCLUDING IDENTITY)"
        )
        for name, table, transition in _TWINS:
            sql = (
                (frozen / f"0004_{name}.sql")
                .read_text()
                .replace(f"public.{name}()", f"public.{name}_0004()")
                .replace("events_event", "events_event_0004")
                # its own "availability.changed already written" flag
                .replace("stockroom.events_availability", "stockroom.events_availability_0004")
            )
            cursor.execute(sql)
            cursor.execute(
                f"CREATE TRIGGER {name}_0004 AFTER INSERT ON {table} "
                f"REFERENCING NEW TABLE AS {transition} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {name}_0004()"
            )

    def compare() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                _TWIN_ROWS.format(payload="events_payload(e)", table="events_event"),
                [list(_TWIN_TYPES)],
            )
            live = cursor.fetchall()
            cursor.execute(
                _TWIN_ROWS.format(payload="e.payload", table="events_event_0004"),
                [list(_TWIN_TYPES)],
            )
            old = {row[:-1]: row[-1] for row in cursor.fetchall()}
        # (Events a test deleted are only in the twin table: compare the live ones.)
        mismatched = [(row, old.get(row[:-1])) for row in live if old.get(row[:-1]) != row[-1]]
        assert not mismatched, "\n".join(repr(m) for m in mismatched)
        return len(live)

    try:
        yield compare
        compare()
    finally:
        with connection.cursor() as cursor:
            for name, table, _ in _TWINS:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}_0004 ON {table}")
                cursor.execute(f"DROP FUNCTION IF EXISTS {name}_0004()")
            cursor.execute("DROP TABLE IF EXISTS events_event_0004")
