"""The stock-event emitter's lean path writes exactly the general path's events.

`events_stock_emit` (events migration 0008) writes a one-row statement's events
(in a transaction's first emitting statement) with two small statements, and
every other statement with the general one. The reference is the emitter every
statement ran before 0008 (the frozen copy `0007_events_stock_emit.sql`, general
statement only), installed beside the live trigger, renamed, writing into a copy
of the event table with its own "availability written" flag. Each statement
below fires both; the two tables must then hold the same events in the same
order: every column but the id (each table numbers its own) and `occurred_at`
(each trigger reads the clock when it starts).

The feed position is compared exactly under REPEATABLE READ (both triggers read
the same snapshot), and under READ COMMITTED by what it is for: a statement run
after a later transaction committed files after that transaction.
"""

import threading
from pathlib import Path

import pytest
from django.db import connection, connections, transaction

from events.models import Event
from inventory import clock
from inventory.models import Inventory
from warehouses.models import Warehouse

from ..conftest import receive
from ..factories import ProductFactory, WarehouseFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the SQL triggers"),
]

SQL = Path(__file__).resolve().parents[2] / "events" / "sql"
FROZEN = Path(__file__).resolve().parents[2] / "events" / "migrations" / "sql"
STOCK_TYPES = (
    "stock.changed",
    "availability.changed",
    "sku.out_of_stock",
    "sku.back_in_stock",
    "sku.low_stock",
)
# Every column but id and occurred_at, typed columns and payload as stored.
COLUMNS = (
    "txid::text, feed_txid::text, type, request_id, sku, warehouse, stream, payload::text, "
    "on_hand, reserved, available, backorder_allowance, version, on_hand_delta, "
    "reserved_delta, ledger_ids::text, ledger_types, reference_types, reference_ids, "
    "warehouse_codes, warehouse_available, warehouse_active"
)


@pytest.fixture
def catalogue(db):
    """SKUs in one, two and three warehouses (one of them inactive), a row with a
    reorder threshold, one with a backorder allowance, one nearly sold out."""
    for code in ("BER", "HAM", "OFF"):
        WarehouseFactory(code=code)
    for n in range(12):
        ProductFactory(sku=f"S-{n:02}")
        receive(f"S-{n:02}", "BER", 20)
    for n in range(4):
        receive(f"S-{n:02}", "HAM", 7 + n)
        receive(f"S-{n:02}", "OFF", 3)
    Warehouse.objects.filter(code="OFF").update(is_active=False)
    Inventory.objects.filter(product__sku="S-04", warehouse__code="BER").update(
        reorder_threshold=15
    )
    Inventory.objects.filter(product__sku="S-05", warehouse__code="BER").update(
        backorder_allowance=5
    )


@pytest.fixture
def general_twin(catalogue):
    """The pre-0008 emitter beside the live one; returns `compare()`, which asserts the
    stock events written since the fixture started are the same in both tables."""
    mark = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    sql = (
        (FROZEN / "0007_events_stock_emit.sql")
        .read_text()
        .replace("public.events_stock_emit()", "public.events_stock_emit_general()")
        .replace("events_event", "events_event_general")
        .replace("stockroom.events_availability", "stockroom.events_availability_general")
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE events_event_general "
            "(LIKE events_event INCLUDING DEFAULTS INCLUDING IDENTITY)"
        )
        cursor.execute(sql)
        # (Statement triggers fire in name order: the live one first.)
        cursor.execute(
            "CREATE TRIGGER events_stock_general AFTER INSERT ON inventory_inventorytransaction "
            "REFERENCING NEW TABLE AS new_ledger "
            "FOR EACH STATEMENT EXECUTE FUNCTION events_stock_emit_general()"
        )

    def compare(*, feed_position: bool = True) -> int:
        live, general = stock_events(mark, feed_position)
        assert live == general, first_difference(live, general)
        return len(live)

    try:
        yield compare
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER IF EXISTS events_stock_general ON inventory_inventorytransaction"
            )
            cursor.execute("DROP FUNCTION IF EXISTS events_stock_emit_general()")
            cursor.execute("DROP TABLE IF EXISTS events_event_general")


def stock_events(mark: int, feed_position: bool = True) -> tuple[list, list]:
    columns = COLUMNS if feed_position else COLUMNS.replace("feed_txid::text, ", "")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns} FROM events_event WHERE id > %s AND type = ANY(%s) ORDER BY id",
            [mark, list(STOCK_TYPES)],
        )
        live = cursor.fetchall()
        cursor.execute(f"SELECT {columns} FROM events_event_general ORDER BY id")
        general = cursor.fetchall()
    return live, general


def first_difference(live: list, general: list) -> str:
    for n, (a, b) in enumerate(zip(live, general, strict=False)):
        if a != b:
            return f"event {n}:\n live    {a}\n general {b}"
    return f"{len(live)} live events, {len(general)} general"


def change(rows, *, request_id="req-1", repeatable_read=True, before=None):
    """One ledger INSERT of `rows` (sku, code, type, on_hand, reserved, damaged deltas,
    reference id) after updating their stock rows alike, in a transaction of its own."""
    with transaction.atomic(), connection.cursor() as cursor:
        if repeatable_read:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        if before:
            before(cursor)
        apply_rows(cursor, rows, request_id)


def apply_rows(cursor, rows, request_id="req-1"):
    totals: dict[tuple[str, str], list[int]] = {}
    for sku, code, _, on_hand, reserved, damaged, _ in rows:
        total = totals.setdefault((sku, code), [0, 0, 0])
        total[0] += on_hand
        total[1] += reserved
        total[2] += damaged
    for (sku, code), (on_hand, reserved, damaged) in totals.items():
        cursor.execute(
            """
            UPDATE inventory_inventory i
            SET on_hand = on_hand + %s, reserved = reserved + %s, damaged = damaged + %s,
                version = version + 1
            FROM inventory_product p, warehouses_warehouse w
            WHERE p.id = i.product_id AND w.id = i.warehouse_id AND p.sku = %s AND w.code = %s
            """,
            [on_hand, reserved, damaged, sku, code],
        )
    cursor.execute(
        """
        INSERT INTO inventory_inventorytransaction
            (id, product_id, warehouse_id, type, on_hand_delta, reserved_delta, damaged_delta,
             on_hand_after, reserved_after, reference_type, reference_id, reason, created_at,
             created_by, request_id)
        SELECT stockroom_uuid7(), p.id, w.id, r.type, r.on_hand, r.reserved, r.damaged,
               i.on_hand, i.reserved, CASE WHEN r.ref = '' THEN '' ELSE 'order' END, r.ref, '',
               now(), 'user:test', %s
        FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::int[], %s::int[],
                    %s::text[]) WITH ORDINALITY AS r(sku, code, type, on_hand, reserved,
                                                     damaged, ref, n)
        JOIN inventory_product p ON p.sku = r.sku
        JOIN warehouses_warehouse w ON w.code = r.code
        JOIN inventory_inventory i ON i.product_id = p.id AND i.warehouse_id = w.id
        ORDER BY r.n
        """,
        [request_id, *(list(column) for column in zip(*rows, strict=True))],
    )


def reserve(orders, *, repeatable_read=True):
    """One call of the reserve function for `orders` ({order id: [(sku, code, qty)]})."""
    ids = list(orders)
    lines = [line for order in orders.values() for line in order]
    with transaction.atomic(), connection.cursor() as cursor:
        if repeatable_read:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute(
            "SELECT stockroom_reserve_orders(%s, %s, %s::timestamptz[], %s, %s, %s, %s, %s, %s,"
            " %s, %s::text[], %s::jsonb)",
            [
                ids,
                ["fp"] * len(ids),
                [None] * len(ids),
                [len(orders[i]) for i in ids],
                [line[0] for line in lines],
                [line[1] for line in lines],
                [line[2] for line in lines],
                "client:shop",
                "req-2",
                clock.now(),
                [None] * len(lines),
                None,
            ],
        )
        (answer,) = cursor.fetchone()
    return answer


# One-row statements, each in a transaction of its own: each takes the lean path.
ONE_ROW = {
    "reserve one unit": [("S-06", "BER", "RESERVE", 0, 1, 0, "o-1")],
    "receive, no reference": [("S-07", "BER", "RECEIVE", 5, 0, 0, "")],
    "a SKU in three warehouses, one inactive": [("S-01", "HAM", "RESERVE", 0, 2, 0, "o-2")],
    "sold out": [("S-08", "BER", "RESERVE", 0, 20, 0, "o-3")],
    "below the reorder threshold": [("S-04", "BER", "RESERVE", 0, 6, 0, "o-4")],
    "below the default low-stock level": [("S-09", "BER", "ADJUST", -16, 0, 0, "")],
    "into the backorder allowance": [("S-05", "BER", "RESERVE", 0, 23, 0, "o-5")],
    "to damaged (sellable, not on hand)": [("S-11", "BER", "MOVE", 0, 0, 3, "")],
}


@pytest.mark.parametrize("case", list(ONE_ROW))
def test_a_one_row_statement_writes_the_general_events(general_twin, case):
    change(ONE_ROW[case])
    assert general_twin() >= 1


def test_a_fulfilment_leaves_availability_alone(general_twin):
    change([("S-10", "BER", "RESERVE", 0, 1, 0, "o-6")])
    change([("S-10", "BER", "FULFILL", -1, -1, 0, "o-6")])
    assert general_twin() == 3  # stock.changed twice, availability.changed once


def test_every_one_row_shape_and_transition_in_turn(general_twin):
    """Out of stock, back in stock, low stock and a second warehouse, one after another
    (each statement in its own transaction, as a 1-line reservation is)."""
    change([("S-08", "BER", "RESERVE", 0, 20, 0, "o-1")])  # sold out
    change([("S-08", "BER", "RELEASE", 0, -20, 0, "o-1")])  # back in stock
    change([("S-04", "BER", "RESERVE", 0, 6, 0, "o-2")])  # low stock (threshold 15)
    change([("S-02", "OFF", "RECEIVE", 4, 0, 0, "")])  # an inactive warehouse's row
    change([("S-02", "HAM", "RESERVE", 0, 9, 0, "o-3")], request_id="")
    counted = general_twin()
    assert counted >= 11
    types = list(
        Event.objects.filter(sku="S-08", type__startswith="sku.").values_list("type", flat=True)
    )
    assert types[-2:] == ["sku.out_of_stock", "sku.back_in_stock"]  # (after the receipt's)


def test_the_request_id_of_an_earlier_statement_is_carried(general_twin):
    def set_request(cursor):
        cursor.execute("SELECT set_config('stockroom.request_id', 'req-earlier', true)")

    change([("S-06", "BER", "RESERVE", 0, 1, 0, "o-1")], request_id="", before=set_request)
    general_twin()
    assert set(Event.objects.filter(sku="S-06").values_list("request_id", flat=True)) >= {
        "req-earlier"
    }


def test_a_later_statement_of_the_transaction_takes_the_general_path(general_twin):
    """availability.changed is one per SKU and transaction: a second one-row statement
    updates the first's event (the general statement), a third on another SKU inserts."""

    def first(cursor):
        apply_rows(cursor, [("S-01", "BER", "RESERVE", 0, 1, 0, "o-1")])
        apply_rows(cursor, [("S-01", "BER", "RESERVE", 0, 2, 0, "o-2")])

    change([("S-03", "HAM", "RESERVE", 0, 1, 0, "o-3")], before=first)
    general_twin()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sku FROM events_event WHERE type = 'availability.changed' AND txid = "
            "(SELECT txid FROM events_event ORDER BY id DESC LIMIT 1) ORDER BY sku"
        )
        assert [sku for (sku,) in cursor.fetchall()] == ["S-01", "S-03"]


@pytest.mark.parametrize(
    "rows",
    [
        # several rows, each on a row of its own (a 3-line order)
        [("S-01", "BER", "RESERVE", 0, 1, 0, "o-1"), ("S-02", "HAM", "RESERVE", 0, 1, 0, "o-1"),
         ("S-03", "OFF", "RESERVE", 0, 1, 0, "o-1")],
        # two ledger rows on one stock row (grouped), references de-duplicated
        [("S-04", "BER", "RESERVE", 0, 6, 0, "o-2"), ("S-04", "BER", "RESERVE", 0, 1, 0, "o-3"),
         ("S-04", "BER", "RESERVE", 0, 1, 0, "o-2"), ("S-08", "BER", "RESERVE", 0, 20, 0, "")],
        # many rows: every row of the catalogue, some twice
        [(f"S-{n:02}", code, "RECEIVE", 1 + n, 0, 0, f"po-{n % 3}")
         for n in range(12) for code in (("BER", "HAM", "OFF") if n < 4 else ("BER",))]
        + [(f"S-{n:02}", "BER", "RESERVE", 0, 2, 0, "o-9") for n in range(0, 12, 2)],
    ],
    ids=["three rows", "grouped rows", "many rows"],
)  # fmt: skip
def test_multi_row_statements_are_unchanged(general_twin, rows):
    change(rows)
    assert general_twin() >= len({(r[0], r[1]) for r in rows})


def test_the_reserve_function_writes_the_general_events(general_twin):
    """Through the function: its one-order statement (one line: lean; three: general),
    a batch (general path), a refused order (no ledger rows, no events)."""
    reserve({"o-1": [("S-06", "BER", 2)]})
    reserve({"o-2": [("S-01", "BER", 1), ("S-02", "HAM", 1), ("S-03", "BER", 4)]})
    reserve({"o-3": [("S-07", "BER", 1)], "o-4": [("S-07", "BER", 2)], "o-5": [("S-09", "BER", 1)]})
    refused = reserve({"o-6": [("S-10", "BER", 999)]})
    assert "insufficient" in str(refused)
    assert general_twin() >= 11


def test_a_large_statement_is_unchanged(general_twin):
    """A statement of a few hundred rows (a bulk receipt's shape): the general path."""
    for n in range(12, 112):
        ProductFactory(sku=f"S-{n:03}")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO inventory_inventory
                (id, product_id, warehouse_id, on_hand, reserved, backorder_allowance,
                 reorder_threshold, reorder_quantity, version, updated_at)
            SELECT gen_random_uuid(), p.id, w.id, 0, 0, 0, 0, 0, 1, now()
            FROM inventory_product p CROSS JOIN warehouses_warehouse w
            WHERE p.sku LIKE 'S-___' AND w.code IN ('BER', 'HAM')
            """
        )
    change([(f"S-{n:03}", code, "RECEIVE", n, 0, 0, "po-1")
            for n in range(12, 112) for code in ("BER", "HAM")])  # fmt: skip
    assert general_twin() == 500  # per row stock.changed, sku.back_in_stock; per SKU availability


def test_the_feed_position_files_after_a_later_commit(general_twin):
    """READ COMMITTED, as every writer runs: a transaction whose id was assigned before
    another transaction's, but whose statement runs after that one committed, files
    its events after it (events_feed_position). Lean path (one row) and general path
    (two rows) alike; the general twin, which reads its snapshot a moment later,
    files at the same position or after (never before)."""
    for rows in (
        [("S-06", "BER", "RESERVE", 0, 1, 0, "o-1")],
        [("S-06", "BER", "RESERVE", 0, 1, 0, "o-2"), ("S-07", "BER", "RESERVE", 0, 1, 0, "o-2")],
    ):
        mark = Event.objects.order_by("-id").values_list("id", flat=True).first()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()::text::bigint")
            (own,) = cursor.fetchone()
            later = commit_a_later_transaction()
            apply_rows(cursor, rows)
        events = list(Event.objects.filter(id__gt=mark, type__in=STOCK_TYPES))
        assert events and own < later
        assert {e.txid for e in events} == {own}
        assert all(e.feed_txid >= later for e in events), [e.feed_txid for e in events]
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT min(feed_txid::text::bigint) FROM events_event_general "
                "WHERE txid = %s::text::xid8",
                [own],
            )
            (general_position,) = cursor.fetchone()
        assert general_position >= events[0].feed_txid
    general_twin(feed_position=False)


def commit_a_later_transaction() -> int:
    """In another connection: a transaction that takes an id and commits; its id."""
    result = {}

    def run():
        try:
            with transaction.atomic(), connections["default"].cursor() as cursor:
                cursor.execute("SELECT pg_current_xact_id()::text::bigint")
                result["id"] = cursor.fetchone()[0]
        finally:
            connections["default"].close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result["id"]


# A fault planted in the lean path must make the comparison fail (the tests above
# would catch it): each replaces one piece of the live function's text.
PLANTS = {
    "availability listed in reverse warehouse order": (
        "ORDER BY w.code\n            ) y",
        "ORDER BY w.code DESC\n            ) y",
    ),
    "reserved off by one": (
        "('stock.changed', r.code, NULL::jsonb, r.on_hand, r.reserved,",
        "('stock.changed', r.code, NULL::jsonb, r.on_hand, r.reserved + 1,",
    ),
    "availability.changed written first": (
        "('availability.changed', '', NULL, NULL, NULL, r.total",
        "('availability.changed', '', NULL, NULL, NULL, r.total",  # (moved first below)
    ),
    "the low-stock threshold ignored": (
        "c.avail > 0 AND c.avail <= c.threshold AND c.old_avail > c.threshold AS low",
        "false AS low",
    ),
}


def planted(name: str) -> str:
    text = (SQL / "events_stock_emit.sql").read_text()
    old, new = PLANTS[name]
    assert old in text, name
    if name == "availability.changed written first":
        # the VALUES rows reversed: availability.changed gets the lowest id
        start = text.index("            FROM (VALUES\n") + len("            FROM (VALUES\n")
        end = text.index("            ) e (type,")
        rows = text[start:end].rstrip().rstrip(",")
        stock, rest = rows.split("true),\n", 1)
        avail_at = rest.index("                ('availability.changed'")
        text = (
            text[:start]
            + rest[avail_at:].rstrip()
            + ",\n"
            + stock
            + "true),\n"
            + rest[:avail_at].rstrip().rstrip(",")
            + "\n"
            + text[end:]
        )
        return text
    return text.replace(old, new)


@pytest.mark.parametrize("plant", list(PLANTS))
def test_a_planted_difference_in_the_lean_path_is_caught(general_twin, plant):
    with connection.cursor() as cursor:
        cursor.execute(planted(plant))
    try:
        change([("S-01", "HAM", "RESERVE", 0, 6, 0, "o-1")])  # three warehouses
        change([("S-04", "BER", "RESERVE", 0, 6, 0, "o-2")])  # low stock
        with pytest.raises(AssertionError):
            general_twin()
    finally:
        with connection.cursor() as cursor:
            cursor.execute((SQL / "events_stock_emit.sql").read_text())
