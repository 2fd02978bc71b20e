"""Cursors for the hot statements that are the same text on every call.

Django binds parameters on the client (it quotes them into the SQL text), so
PostgreSQL parses and plans every call afresh: for the read model's load query
planning is ~0.6 ms against ~0.1 ms of execution (docs/PERFORMANCE.md). A
`prepared_cursor` is Django's cursor wrapper (its database errors, execute
wrappers and query logging, as for every query) around a psycopg cursor that
binds the parameters server-side and prepares each statement once per
connection. Not prepared behind PgBouncer in transaction mode
(`DB_DISABLE_SERVER_SIDE_CURSORS`, docs/SCALING.md): a prepared statement lives
on one server connection. The ORM keeps Django's client-side binding.
PostgreSQL only: callers keep their portable path for the embedded SQLite.
"""

from __future__ import annotations

_CURSOR_CLASSES: dict[bool, type] = {}

# Django opens psycopg connections with `prepare_threshold=None`, which disables
# prepared statements altogether, `prepare=True` included. A prepared cursor
# raises the threshold out of reach instead: psycopg then prepares exactly the
# statements executed with `prepare=True`, never the ORM's on its own.
_ONLY_WHEN_ASKED = 2**31


def prepared_cursor(connection):
    """A cursor of `connection` (a Django PostgreSQL connection) whose statements
    are bound server-side and prepared once per connection."""
    prepare = not connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
    cursor_class = _CURSOR_CLASSES.get(prepare) or _cursor_class(prepare)
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    if prepare and connection.connection.prepare_threshold is None:
        connection.connection.prepare_threshold = _ONLY_WHEN_ASKED
    with connection.wrap_database_errors:
        return connection._prepare_cursor(cursor_class(connection.connection))


def _cursor_class(prepare: bool) -> type:
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparedCursor(ServerBindingCursor):
        def execute(self, query, params=None, **kwargs):
            return super().execute(query, params, prepare=prepare or None, **kwargs)

        def _send_query_prepared(self, name, pgq, *, binary=None):
            # psycopg records the query it ran (`_query`, which Django's query
            # log and CaptureQueriesContext read) only when it runs it unprepared.
            self._query = pgq
            return super()._send_query_prepared(name, pgq, binary=binary)

    _CURSOR_CLASSES[prepare] = PreparedCursor
    return PreparedCursor
