"""The reserve function's arrays travel as text literals
(`reserve_sql.array_literal`, issue #18).

PostgreSQL itself reads each literal back here, for text that an unquoted or
badly escaped literal would change: quotes, backslashes, commas, braces,
whitespace at either end, the word NULL, empty text, non-ASCII. (That the call
is prepared: tests/database/test_prepared_statements.py.)
"""

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection

from inventory.services.reserve_sql import array_literal

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
