"""Django's PostgreSQL backend, with a cheaper health check (issue #18).

With CONN_HEALTH_CHECKS on, Django checks a persistent connection before the
first query of every request with `SELECT 1`: a round trip and a statement in
the server per request, about a tenth of a one-line reservation's work over
HTTP. A connection the server ended between two requests (a restart, a
failover, `pg_terminate_backend`, an idle timeout) has something to read while
no query runs: the server's last message and the end of the stream. So the
socket is polled without waiting; only when it has something to read (or the
connection is not idle) is the server asked as before. A live idle connection
costs one poll. tests/database/test_health_check.py ends a connection between
two requests and checks the next request is served on a new one.

What the poll cannot see, `SELECT 1` could not either in useful time: a peer
that vanished without closing (no FIN or RST) makes both wait for TCP's
timeouts.
"""

from __future__ import annotations

import select

import psycopg
from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if connection.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            return super().is_usable()
        try:
            readable, _, _ = select.select([connection.pgconn.socket], [], [], 0)
        except (OSError, ValueError, psycopg.Error):
            return False
        return super().is_usable() if readable else True
