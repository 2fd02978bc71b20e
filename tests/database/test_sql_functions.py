"""The SQL functions and triggers of the migrated database are the files' (`<app>/sql/*.sql`).

A reader finds the live text of every PL/pgSQL function and trigger in one file
(`inventory/sql/reserve_orders.sql`, ...). Migrations load frozen copies; this
test fails when the database the migrations build and the live files differ:
a function edited in its file without a migration loading it, a migration that
changed a function without its file, or a function or trigger that has no file.
Compared as `pg_get_functiondef` / `pg_get_triggerdef` give them, whitespace
normalised.
"""

import re
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection

pytestmark = pytest.mark.django_db

FUNCTION = re.compile(
    r"CREATE\s+OR\s+REPLACE\s+FUNCTION\s+(?:public\.)?(\w+)\s*\(.*?\bAS\s+(\$\w*\$).*?\2", re.S
)
TRIGGER = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?TRIGGER\s+(\w+)\b.*?;", re.S)
COMMENT = re.compile(r"--[^\n]*")


def normalise(sql: str) -> str:
    sql = sql.replace("public.", "")
    sql = re.sub(r"CREATE\s+OR\s+REPLACE\s+TRIGGER", "CREATE TRIGGER", sql)
    sql = re.sub(r"\s+", " ", sql).strip().rstrip(";").strip()
    return re.sub(r" ?([(),]) ?", r"\1", sql)


def sql_files() -> list[Path]:
    root = Path(settings.BASE_DIR).resolve()
    return sorted(
        path
        for app in apps.get_app_configs()
        if Path(app.path).resolve().is_relative_to(root)
        for path in (Path(app.path) / "sql").glob("*.sql")
    )


def definitions_in_files() -> tuple[dict[str, str], dict[str, str]]:
    functions: dict[str, str] = {}
    triggers: dict[str, str] = {}
    for path in sql_files():
        text = path.read_text(encoding="utf-8")
        for match in FUNCTION.finditer(text):
            assert match[1] not in functions, f"{match[1]} is defined twice ({path})"
            functions[match[1]] = normalise(match[0])
        rest = COMMENT.sub("", FUNCTION.sub("", text))
        for match in TRIGGER.finditer(rest):
            assert match[1] not in triggers, f"trigger {match[1]} is defined twice ({path})"
            triggers[match[1]] = normalise(match[0])
    return functions, triggers


def definitions_in_database() -> tuple[dict[str, str], dict[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT p.proname, pg_get_functiondef(p.oid)
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = current_schema() AND p.prokind = 'f'
              AND NOT EXISTS (SELECT 1 FROM pg_depend d
                              WHERE d.objid = p.oid AND d.deptype = 'e')
            """
        )
        functions = {name: normalise(text) for name, text in cursor.fetchall()}
        cursor.execute(
            """
            SELECT t.tgname, pg_get_triggerdef(t.oid)
            FROM pg_trigger t
            JOIN pg_class c ON c.oid = t.tgrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE NOT t.tgisinternal AND n.nspname = current_schema()
            """
        )
        triggers = {name: normalise(text) for name, text in cursor.fetchall()}
    return functions, triggers


def test_the_files_hold_the_project_functions():
    names = {path.relative_to(settings.BASE_DIR).as_posix() for path in sql_files()}
    assert {
        "inventory/sql/reserve_orders.sql",
        "inventory/sql/close_order.sql",
        "purchasing/sql/next_po_number.sql",
    } <= names
    functions, _ = definitions_in_files()
    assert {"stockroom_reserve_orders", "stockroom_close_order"} <= functions.keys()


def test_every_function_in_the_migrated_database_is_its_file():
    in_database, _ = definitions_in_database()
    in_files, _ = definitions_in_files()
    assert sorted(in_database) == sorted(in_files), "a function without a file, or a file without"
    for name, text in in_database.items():
        assert text == in_files[name], f"{name}: the migrated database differs from its file"


def test_every_trigger_in_the_migrated_database_is_its_file():
    _, in_database = definitions_in_database()
    _, in_files = definitions_in_files()
    assert in_database == in_files


def test_a_changed_definition_is_caught():
    """The comparison sees a change inside a body (not only names)."""
    in_files, _ = definitions_in_files()
    changed = in_files["stockroom_close_order"].replace("'not_found'", "'gone'")
    assert changed != definitions_in_database()[0]["stockroom_close_order"]
