"""A private database per partitioning test (issue #21).

Converting the ledger changes the schema, so these tests never run in the
suite's test database: a migrated template `<test db>_partman_tpl` is built once
per session, and each test gets a fresh copy `<test db>_partman` (CREATE
DATABASE … TEMPLATE, fast), dropped afterwards. Skipped when the server has no
pg_partman (CI installs postgresql-15-partman, so they run there).
"""

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection, connections


def _admin_url() -> str:
    s = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        host=s["HOST"] or "127.0.0.1",
        port=s["PORT"] or 5432,
        user=s["USER"],
        password=s["PASSWORD"] or None,
        dbname="postgres",
    )


def _sql(statement: str) -> None:
    with psycopg.connect(_admin_url(), autocommit=True) as admin:
        admin.execute(statement)


def _point_at(name: str) -> None:
    connections.close_all()
    connection.settings_dict["NAME"] = name


@pytest.fixture(scope="session")
def partman_template(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_partman'")
            if not cursor.fetchone()[0]:
                pytest.skip("pg_partman is not installed (apt-get install postgresql-15-partman)")
        original = connection.settings_dict["NAME"]
        template = f"{original}_partman_tpl"
        _sql(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        _sql(f'CREATE DATABASE "{template}"')
        try:
            _point_at(template)
            call_command("migrate", verbosity=0)
        finally:
            _point_at(original)
        yield original, template
        _sql(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')


@pytest.fixture
def partman_db(partman_template, django_db_blocker):
    """The default connection (every thread's) points at a fresh migrated database."""
    original, template = partman_template
    name = f"{original}_partman"
    with django_db_blocker.unblock():
        _sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        _point_at(name)
        try:
            yield name
        finally:
            _point_at(original)
            _sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
