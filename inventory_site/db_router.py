"""Database router: read-only paths may go to a streaming replica, if it is fresh enough.

With DATABASE_REPLICA_URL set, read paths that tolerate a little staleness wrap
themselves in `replica_reads()` (or call `on_replica(fn)`); inside it, ORM reads
are routed to the `replica` alias and `read_alias()` names it, **as long as the
replica is up and its replay lag is at most STOCKROOM_REPLICA_MAX_LAG_MS**.
Above the bound, or when the replica does not answer, reads go to the primary
and a log line (logger `stockroom.replica`) and `STATS` say so; the replica is
asked again after STOCKROOM_REPLICA_CHECK_SECONDS.

Who reads the replica (docs/SCALING.md): availability cache misses (the read
model's fill) and the uncached availability read, the availability batch, the
API's read-only lists and the inventory export. Every write, every locking read
and every decision that guards stock (the sold-out gate, reservations, routing's
final check) stays on the primary: a replica's lag can make a product page or a
list briefly stale, never a reservation wrong. The gate does not even trust a
cache entry that was filled from the replica (`StockSnapshot.from_replica`).

Lag: on the replica, 0 when everything received is replayed, else
`now() - pg_last_xact_replay_timestamp()` (an over-estimate right after a long
idle spell, never an under-estimate: a paused or slow replay shows).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections

logger = logging.getLogger("stockroom.replica")
T = TypeVar("T")

_prefer_replica: ContextVar[bool] = ContextVar("stockroom_prefer_replica", default=False)

# Per process: reads sent to the replica, fallbacks to the primary by reason.
STATS: Counter[str] = Counter()

LAG_SQL = """
    SELECT CASE
        WHEN NOT pg_is_in_recovery() THEN NULL
        WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
        ELSE COALESCE(
            (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::bigint,
            9223372036854775807)
    END
"""


class _Health:
    """The replica's last verdict, shared by the threads of a process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.until = 0.0  # monotonic time the verdict expires
        self.usable = False
        self.reason = ""
        self.lag_ms: int | None = None

    def reset(self) -> None:
        with self.lock:
            self.until, self.usable, self.reason, self.lag_ms = 0.0, False, "", None


health = _Health()


def _configured() -> bool:
    return "replica" in settings.DATABASES


def _measure() -> tuple[bool, str, int | None]:
    """(usable, reason when not, lag in ms) from one query on the replica."""
    try:
        with connections["replica"].cursor() as cursor:
            cursor.execute(LAG_SQL)
            (lag,) = cursor.fetchone()
    except (OperationalError, InterfaceError) as exc:
        connections["replica"].close()
        return False, f"down ({str(exc).strip().splitlines()[0][:120]})", None
    if lag is None:
        return False, "not a standby (pg_is_in_recovery() is false)", None
    bound = settings.STOCKROOM_REPLICA_MAX_LAG_MS
    if lag > bound:
        return False, f"lag {lag} ms > {bound} ms", int(lag)
    return True, "", int(lag)


def replica_usable() -> bool:
    """Whether reads may go to the replica now (checked at most every
    STOCKROOM_REPLICA_CHECK_SECONDS per process)."""
    if not _configured():
        return False
    now = time.monotonic()
    if now < health.until:
        return health.usable
    with health.lock:
        if now < health.until:
            return health.usable
        usable, reason, lag = _measure()
        if usable != health.usable or (not usable and reason != health.reason):
            if usable:
                logger.info("replica reads resume on the replica (lag %s ms)", lag)
            else:
                logger.warning("replica reads go to the primary: replica %s", reason)
        health.usable, health.reason, health.lag_ms = usable, reason, lag
        health.until = now + settings.STOCKROOM_REPLICA_CHECK_SECONDS
        return usable


def mark_replica_failed(exc: BaseException) -> None:
    """A read on the replica failed: primary until the next check."""
    with health.lock:
        if health.usable:
            logger.warning("replica reads go to the primary: a read failed (%s)", exc)
        health.usable, health.reason = False, f"read failed ({exc.__class__.__name__})"
        health.until = time.monotonic() + settings.STOCKROOM_REPLICA_CHECK_SECONDS
    STATS["primary_after_replica_error"] += 1
    connections["replica"].close()


@contextmanager
def replica_reads():
    token = _prefer_replica.set(True)
    try:
        yield
    finally:
        _prefer_replica.reset(token)


def read_alias() -> str:
    """The alias a read inside `replica_reads()` uses right now ("default" outside)."""
    if not _prefer_replica.get() or not _configured():
        return "default"
    if replica_usable():
        STATS["replica"] += 1
        return "replica"
    STATS[f"primary_because_{'lag' if health.lag_ms is not None else 'down'}"] += 1
    return "default"


def on_replica(read: Callable[[], T]) -> T:
    """`read()` inside `replica_reads()`; if the replica fails during it, once more
    on the primary (a read changed nothing, so it may run twice)."""
    with replica_reads():
        if read_alias() == "default":
            with _primary_only():
                return read()
        try:
            return read()
        except (OperationalError, InterfaceError) as exc:
            mark_replica_failed(exc)
    with _primary_only():
        return read()


@contextmanager
def _primary_only():
    token = _prefer_replica.set(False)
    try:
        yield
    finally:
        _prefer_replica.reset(token)


class ReplicaRouter:
    def db_for_read(self, model, **hints):
        return "replica" if read_alias() == "replica" else None

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == "default"
