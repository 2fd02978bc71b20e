"""The health check of a persistent connection (inventory_site/postgresql/, issue #18).

Before a request's first query Django asks `is_usable()`. On a live idle
connection it must not cost a statement (nothing is sent: libpq's trace stays
empty); a connection the server ended between two requests must be found
unusable and replaced, so the request is served on a new one.
"""

import psycopg
import pytest
from django.db import connection

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL connections"),
]


def terminate(pid: int) -> None:
    """End a backend from another session and wait until it has exited."""
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        autocommit=True,
    ) as killer:
        assert killer.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()[0]


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_a_live_idle_connection_is_usable_without_a_statement(tmp_path):
    backend_pid()
    trace = tmp_path / "libpq.trace"
    with trace.open("w") as out:
        connection.connection.pgconn.trace(out.fileno())
        try:
            assert connection.is_usable()
        finally:
            connection.connection.pgconn.untrace()
    assert trace.read_text() == ""


def test_a_connection_the_server_ended_is_not_usable():
    terminate(backend_pid())
    assert not connection.is_usable()
    connection.close()


def test_the_next_request_after_the_server_ended_its_connection_gets_a_new_one():
    old = backend_pid()
    terminate(old)
    # What Django does at a request's first query with CONN_HEALTH_CHECKS on.
    connection.health_check_enabled, connection.health_check_done = True, False
    new = backend_pid()
    assert new != old
