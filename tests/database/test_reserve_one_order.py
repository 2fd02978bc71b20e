"""The reserve function's one-order fast path (issue #18, migration 0023).

One order without bundle lines, each line on a row of its own, is reserved by one
statement of the function (claim, lock in key order, check under the lock,
update, ledger, lines). It must answer and write exactly what the general path
writes for the same order: the general path is forced here by passing an empty
composition map (`p_compositions = '{}'`, which checks no bundle and changes
nothing else), on a twin set of rows, and the two are compared field by field,
events included. A refused order leaves nothing behind (not even its claim).
"""

import json
from datetime import timedelta

import pytest
from django.db import connection, transaction

from events.models import Event
from inventory import clock
from inventory.models import Inventory, InventoryTransaction, Reservation, ReservationLine
from warehouses.models import Warehouse

from ..conftest import receive
from ..factories import ProductFactory, WarehouseFactory

# Committed for real: each call of the function is its own transaction, as a
# reservation outside a caller's transaction is (its events are its own).
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the SQL function"),
]

FAST, GENERAL = "F", "G"  # SKU prefixes of the twin rows


@pytest.fixture
def twins(db):
    """Two identical sets of rows: F-1, F-2 for the fast path, G-1, G-2 for the general."""
    WarehouseFactory(code="BER")
    for prefix in (FAST, GENERAL):
        for n, quantity in ((1, 10), (2, 4)):
            ProductFactory(sku=f"{prefix}-{n}")
            receive(f"{prefix}-{n}", "BER", quantity)


def reserve(order_id, lines, *, general=False, fingerprint="fp", expires_at=None):
    """One call of the function for one order; its JSON answer."""
    skus, codes, qtys = (list(column) for column in zip(*lines, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT stockroom_reserve_orders(%s, %s, %s::timestamptz[], %s, %s, %s, %s, %s, %s,"
            " %s, %s::text[], %s::jsonb)",
            [
                [order_id],
                [fingerprint],
                [expires_at],
                [len(lines)],
                skus,
                codes,
                qtys,
                "client:shop",
                "req-1",
                clock.now(),
                [None] * len(lines),
                "{}" if general else None,
            ],
        )
        (payload,) = cursor.fetchone()
    return json.loads(payload) if isinstance(payload, str) else payload


def twin(prefix: str, value):
    """`value` with the twin's SKU prefix and order id made neutral."""
    text = json.dumps(value)
    return json.loads(text.replace(f'"{prefix}-', '"X-').replace(f'"order-{prefix}"', '"order"'))


def answer_shape(payload: dict, prefix: str) -> dict:
    """The answer without what differs between two calls (ids, instants)."""
    return twin(
        prefix,
        {
            "orders": [[status, bool(rid), detail] for status, rid, detail in payload["orders"]],
            "changes": sorted(c[3:] for c in payload["changes"]),
            "ledger": [entry[3:] for entry in payload["ledger"]],
            "released": payload["released"],
        },
    )


def written(prefix: str) -> dict:
    """What the database holds for the twin's rows and order."""
    order = f"order-{prefix}"
    reservations = list(
        Reservation.objects.filter(order_id=order).values_list(
            "status", "expires_at", "request_fingerprint", "created_by"
        )
    )
    lines = list(
        ReservationLine.objects.filter(reservation__order_id=order)
        .order_by("id")
        .values_list("product__sku", "warehouse__code", "quantity", "status", "bundle_id")
    )
    ledger = list(
        InventoryTransaction.objects.filter(reference_id=order)
        .order_by("id")
        .values_list(
            "product__sku", "type", "reserved_delta", "on_hand_after", "reserved_after",
            "reference_type", "reason", "created_by", "request_id",
        )
    )  # fmt: skip
    rows = list(
        Inventory.objects.filter(product__sku__startswith=f"{prefix}-")
        .order_by("product__sku")
        .values_list("product__sku", "on_hand", "reserved", "available", "version")
    )
    events = [
        (e.type, e.data)
        for e in Event.objects.with_data().order_by("id")
        if e.sku.startswith(f"{prefix}-") or e.stream == f"order:{order}"
    ]
    return twin(
        prefix,
        {
            "reservations": [[r[0], str(r[1]), *r[2:]] for r in reservations],
            "lines": [list(line) for line in lines],
            "ledger": [list(entry) for entry in ledger],
            "rows": [list(row) for row in rows],
            "events": [[t, strip_ids(d)] for t, d in events],
        },
    )


def strip_ids(data: dict) -> dict:
    return {k: v for k, v in data.items() if k not in ("ledger_ids", "reservation_id")}


def ids_in_write_order(prefix: str) -> bool:
    """The reservation's id, then its ledger rows', then its lines' (UUIDv7, one
    clock reading per call): as the general path numbers them."""
    order = f"order-{prefix}"
    reservation = Reservation.objects.get(order_id=order).id
    ledger = list(
        InventoryTransaction.objects.filter(reference_id=order).values_list("id", flat=True)
    )
    lines = list(
        ReservationLine.objects.filter(reservation__order_id=order).values_list("id", flat=True)
    )
    return reservation < min(ledger) and max(ledger) < min(lines)


def test_one_order_writes_and_answers_what_the_general_path_does(twins):
    lines = {p: [(f"{p}-2", "BER", 3), (f"{p}-1", "BER", 2)] for p in (FAST, GENERAL)}
    mark = Event.objects.order_by("-id").values_list("id", flat=True).first()
    fast = reserve(f"order-{FAST}", lines[FAST])
    between = Event.objects.order_by("-id").values_list("id", flat=True).first() + 1
    general = reserve(f"order-{GENERAL}", lines[GENERAL], general=True)

    assert fast["orders"][0][0] == "created"
    assert answer_shape(fast, FAST) == answer_shape(general, GENERAL)
    assert written(FAST) == written(GENERAL)
    # the events as the triggers write them: the stock events, then reservation.created
    new = Event.objects.filter(id__gt=mark, id__lt=between).order_by("id")
    assert list(new.values_list("type", flat=True)) == [
        "stock.changed",
        "stock.changed",
        "availability.changed",
        "availability.changed",
        "reservation.created",
    ]
    assert ids_in_write_order(FAST) and ids_in_write_order(GENERAL)
    # the answer names the rows and ledger rows the database holds
    assert {c[0] for c in fast["changes"]} == {
        str(i)
        for i in Inventory.objects.filter(product__sku__startswith="F-").values_list(
            "id", flat=True
        )
    }
    assert [e[0] for e in fast["ledger"]] == [
        str(i)
        for i in InventoryTransaction.objects.filter(reference_id=f"order-{FAST}")
        .order_by("id")
        .values_list("id", flat=True)
    ]
    assert fast["orders"][0][1] == str(Reservation.objects.get(order_id=f"order-{FAST}").id)


def test_an_expiring_one_line_order_is_the_same_on_both_paths(twins):
    expires = clock.now().replace(microsecond=0)
    fast = reserve(f"order-{FAST}", [(f"{FAST}-1", "BER", 10)], expires_at=expires)
    general = reserve(
        f"order-{GENERAL}", [(f"{GENERAL}-1", "BER", 10)], general=True, expires_at=expires
    )
    assert answer_shape(fast, FAST) == answer_shape(general, GENERAL)
    assert written(FAST) == written(GENERAL)
    assert written(FAST)["rows"][0][1:4] == [10, 10, 0]  # the last unit taken


@pytest.mark.parametrize(
    "case",
    ["short", "one line short of two", "unknown SKU", "inactive warehouse"],
)
def test_a_refused_order_leaves_nothing_and_answers_as_the_general_path(twins, case):
    if case == "inactive warehouse":
        WarehouseFactory(code="OFF")
        for p in (FAST, GENERAL):
            receive(f"{p}-1", "OFF", 5)
        Warehouse.objects.filter(code="OFF").update(is_active=False)
    lines = {
        "short": lambda p: [(f"{p}-1", "BER", 11)],
        "one line short of two": lambda p: [(f"{p}-1", "BER", 1), (f"{p}-2", "BER", 5)],
        "unknown SKU": lambda p: [(f"{p}-1", "BER", 1), (f"{p}-9", "BER", 1)],
        "inactive warehouse": lambda p: [(f"{p}-1", "OFF", 1)],
    }[case]
    before = {p: written(p) for p in (FAST, GENERAL)}
    events = Event.objects.count()

    fast = reserve(f"order-{FAST}", lines(FAST))
    general = reserve(f"order-{GENERAL}", lines(GENERAL), general=True)

    assert fast["orders"][0][0] in ("insufficient", "missing", "inactive")
    assert answer_shape(fast, FAST) == answer_shape(general, GENERAL)
    assert {p: written(p) for p in (FAST, GENERAL)} == before
    assert not Reservation.objects.exists()  # the fast path's claim is dropped
    assert Event.objects.count() == events


def test_a_repeated_order_id_answers_exists_or_conflict(twins):
    reserve(f"order-{FAST}", [(f"{FAST}-1", "BER", 1)])
    again = reserve(f"order-{FAST}", [(f"{FAST}-1", "BER", 1)])
    other = reserve(f"order-{FAST}", [(f"{FAST}-1", "BER", 1)], fingerprint="other")
    assert again["orders"] == [["exists", None, None]]
    assert other["orders"] == [["conflict", None, None]]
    assert Inventory.objects.get(product__sku=f"{FAST}-1").reserved == 1
    assert Reservation.objects.count() == 1


def statements_of_the_function(call) -> list[str]:
    """The SQL statements run under `call` (auto_explain, nested statements, this
    session only; triggers and foreign-key checks off for it, so that only the
    function's own statements run), as their texts."""
    texts: list[str] = []
    raw = connection.connection

    def notice(diagnostic):
        texts.append(diagnostic.message_primary or "")

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("LOAD 'auto_explain'")
            cursor.execute("SET LOCAL auto_explain.log_min_duration = 0")
            cursor.execute("SET LOCAL auto_explain.log_nested_statements = on")
            cursor.execute("SET LOCAL auto_explain.log_level = notice")
            cursor.execute("SET LOCAL session_replication_role = replica")
        raw.add_notice_handler(notice)
        try:
            call()
        finally:
            raw.remove_notice_handler(notice)
    return [t for t in texts if "inventory_" in t and "stockroom_reserve_orders(" not in t]


def test_one_order_is_one_statement_of_the_function(twins):
    """What the fast path is for: the general path runs a statement per step
    (claim, lock, map lines, update, ledger, lines, answer), the fast path one."""
    fast = statements_of_the_function(lambda: reserve(f"order-{FAST}", [(f"{FAST}-1", "BER", 1)]))
    general = statements_of_the_function(
        lambda: reserve(f"order-{GENERAL}", [(f"{GENERAL}-1", "BER", 1)], general=True)
    )
    assert len(fast) == 1, fast
    assert len(general) >= 5, general


def test_a_short_order_is_refused_by_the_one_order_statement(twins):
    """No lapsed hold on the short row: the one-order statement's answer is final
    (migration 0025): the function runs it and the claim's removal, nothing else."""
    fast = statements_of_the_function(
        lambda: reserve(f"order-{FAST}", [(f"{FAST}-1", "BER", 1), (f"{FAST}-2", "BER", 5)])
    )
    general = statements_of_the_function(
        lambda: reserve(
            f"order-{GENERAL}",
            [(f"{GENERAL}-1", "BER", 1), (f"{GENERAL}-2", "BER", 5)],
            general=True,
        )
    )
    assert len(fast) == 2, fast
    assert "DELETE FROM inventory_reservation" in fast[1]
    assert len(general) >= 5, general
    assert not Reservation.objects.exists()


@pytest.mark.parametrize("lapsed", ["lapsed hold", "hold not lapsed"])
def test_a_short_order_with_a_lapsed_hold_on_its_row_takes_the_general_path(twins, lapsed):
    """A hold past its expiry on the short row may cover the line: the general path
    releases it and creates the order, on both twins alike; a hold not yet lapsed
    leaves the order short, refused alike."""
    now = clock.now()
    expires = now - timedelta(seconds=1) if lapsed == "lapsed hold" else now + timedelta(hours=1)
    for p in (FAST, GENERAL):
        reserve(f"{p}-hold", [(f"{p}-1", "BER", 8)], expires_at=expires)  # (neutral in twin())
    fast = reserve(f"order-{FAST}", [(f"{FAST}-1", "BER", 5)])
    general = reserve(f"order-{GENERAL}", [(f"{GENERAL}-1", "BER", 5)], general=True)

    expected = "created" if lapsed == "lapsed hold" else "insufficient"
    assert fast["orders"][0][0] == expected
    assert twin(FAST, fast["released"]) == twin(GENERAL, general["released"])
    assert answer_shape(fast, FAST) == answer_shape(general, GENERAL)
    assert written(FAST) == written(GENERAL)
    holds = Reservation.objects.filter(order_id__endswith="-hold")
    assert {h.status for h in holds} == {"expired" if lapsed == "lapsed hold" else "active"}
