"""The trigger functions in the database are exactly the files in events/sql/."""

from pathlib import Path

import pytest
from django.db import connection

from events.migrations import __path__ as _migrations_path  # noqa: F401

SQL_DIR = Path(__file__).resolve().parents[2] / "events" / "sql"
FUNCTIONS = sorted(p.stem for p in SQL_DIR.glob("events_*.sql"))


def test_every_function_file_is_loaded_by_the_migration():
    from importlib import import_module

    # The newest migration that loads the functions loads every one (frozen copies).
    migration = import_module("events.migrations.0006_transfer_events")
    assert sorted(migration.FUNCTIONS) == FUNCTIONS
    frozen = SQL_DIR.parent / "migrations" / "sql"
    for name in FUNCTIONS:
        newest = sorted(frozen.glob(f"*_{name}.sql"))[-1]
        assert newest.read_text() == (SQL_DIR / f"{name}.sql").read_text(), newest


@pytest.mark.django_db
@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_in_database_equals_its_file(name):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_functiondef(%s::regproc)", [f"public.{name}"])
        (definition,) = cursor.fetchone()
    assert definition.strip() == (SQL_DIR / f"{name}.sql").read_text().strip()


@pytest.mark.django_db
def test_triggers_are_statement_level_with_transition_tables():
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT event_object_table, action_orientation,
                   action_reference_new_table, action_reference_old_table
            FROM information_schema.triggers WHERE trigger_name LIKE 'events_%%'
            """
        )
        rows = cursor.fetchall()
    assert {r[0] for r in rows} == {
        "inventory_inventorytransaction",
        "inventory_reservationline",
        "inventory_reservation",
        "purchasing_purchaseorder",
        "purchasing_purchaseorderreceipt",
        "purchasing_purchaseorderline",
        "inventory_transferline",
        "inventory_transfer",
    }
    assert {r[1] for r in rows} == {"STATEMENT"}
    assert all(r[2] or r[3] for r in rows)


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["_FEED_SQL", "_HORIZON_SQL", "_NEWEST_SQL"])
def test_feed_reads_walk_the_index(query):
    """The feed's reads follow the (feed_txid, id) index in order: no sort of every
    retained event per page (the sort is disabled, so a plan that needs one shows it)."""
    from events import selectors

    sql = getattr(selectors, query).format(filters="")
    params = {"_FEED_SQL": ["0", 0, 100], "_HORIZON_SQL": ["0", 0], "_NEWEST_SQL": []}[query]
    with connection.cursor() as cursor:
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            cursor.execute(f"SET LOCAL {setting} = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "events_feed_position" in plan and "Sort" not in plan, plan
