"""The reserve function's call (issue #18): its arrays travel as text literals
(`reserve_sql.array_literal`) and the call is a prepared statement.

PostgreSQL itself reads each literal back here, for text that an unquoted or
badly escaped literal would change: quotes, backslashes, commas, braces,
whitespace at either end, the word NULL, empty text, non-ASCII. The prepared
statement is checked in `pg_prepared_statements` of the connection that made
the call, and not made when server-side cursors are disabled (behind PgBouncer
in transaction mode, docs/SCALING.md).
"""

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection

from inventory.services import ReserveLine, stock_reserve
from inventory.services.reserve_sql import array_literal

from ..conftest import receive
from ..factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL arrays")

AWKWARD = [
    "",
    " ",
    " padded ",
    "NULL",
    "null",
    '"',
    '""',
    "\\",
    "\\\\",
    '\\"',
    'a"b\\c',
    "a,b",
    "{a}",
    "}",
    "{",
    "a b",
    "tab\there",
    "new\nline",
    "é€😀",
    "'single'",
    "ORD-1001",
]


def read_back(literal: str, element_type: str) -> list:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT %s::{element_type}[]", [literal])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_text_comes_back_exactly_as_sent():
    values = [*AWKWARD, None, "x", None]
    assert read_back(array_literal(values), "text") == values


@pytest.mark.django_db
def test_random_text_comes_back_exactly_as_sent():
    rng = random.Random(18)
    alphabet = " \"\\,{}'\tNUL\nab€"
    for _ in range(200):
        values = [
            None if rng.random() < 0.1 else "".join(rng.choices(alphabet, k=rng.randrange(0, 9)))
            for _ in range(rng.randrange(0, 6))
        ]
        assert read_back(array_literal(values), "text") == values


@pytest.mark.django_db
def test_numbers_and_instants_come_back_exactly_as_sent():
    assert read_back(array_literal([1, 0, -3, 2**40]), "bigint") == [1, 0, -3, 2**40]
    assert read_back(array_literal([]), "integer") == []
    instants = [
        datetime(2026, 12, 1, 20, 25, 22, 890058, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2))),
        None,
    ]
    literal = array_literal([None if i is None else i.isoformat() for i in instants])
    assert read_back(literal, "timestamptz") == instants


@pytest.mark.django_db
def test_a_literal_without_the_escaping_reads_back_other_text():
    """What the checks above guard against: PostgreSQL drops an unescaped backslash."""
    value = "a\\b"
    assert read_back('{"' + value + '"}', "text") == ["ab"]
    assert read_back(array_literal([value]), "text") == [value]


@pytest.fixture
def stock(db):
    WarehouseFactory(code="BER")
    ProductFactory(sku="P-1")
    receive("P-1", "BER", 10)


def prepared_reserve_calls() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement FROM pg_prepared_statements"
            " WHERE statement LIKE 'SELECT stockroom_reserve_orders(%%'"
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
def test_the_reserve_call_is_prepared_once_per_connection(stock, settings):
    settings.STOCKROOM_RESERVE_ENGINE = "sql"
    connection.close()
    for n in range(3):
        stock_reserve(order_id=f"o-{n}", lines=[ReserveLine("P-1", "BER", 1)], actor="c")
    assert len(prepared_reserve_calls()) == 1


@pytest.mark.django_db(transaction=True)
def test_nothing_is_prepared_when_server_side_cursors_are_disabled(stock, settings):
    settings.STOCKROOM_RESERVE_ENGINE = "sql"
    connection.close()
    connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = True
    try:
        for n in range(3):
            stock_reserve(order_id=f"o-{n}", lines=[ReserveLine("P-1", "BER", 1)], actor="c")
        assert prepared_reserve_calls() == []
    finally:
        connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = False
        connection.close()
