"""What PostgreSQL's error codes (SQLSTATE) mean to Stockroom: the one place that knows them.

Three kinds of database error reach the stock layer:

* **busy** (`BUSY`): the operation lost a fight over rows and was rolled back,
  changing nothing. `55P03` lock_not_available (a row held past lock_timeout),
  `40P01` deadlock_detected, `40001` serialization_failure.
* **retryable** (`RETRYABLE`, a subset of busy): running the same transaction
  again from the start usually succeeds (`40P01`, `40001`). A lock timeout is
  not retried: the row was held for the whole lock_timeout, and waiting as long
  again inside the same request would only pile up work; the client retries it
  after Retry-After.
* **connection lost** (`connection_lost`): the socket died or the server is
  shutting down; whether a write was applied is unknown.

`inventory.services.stock.retry_busy` retries the retryable ones and turns every
busy one into `errors.StockBusy` ("nothing was applied", HTTP 503 `stock_busy`).
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

LOCK_NOT_AVAILABLE = "55P03"
DEADLOCK_DETECTED = "40P01"
SERIALIZATION_FAILURE = "40001"

RETRYABLE = frozenset({DEADLOCK_DETECTED, SERIALIZATION_FAILURE})
BUSY = frozenset({LOCK_NOT_AVAILABLE, *RETRYABLE})

# Class 08 (connection exception) and the server-shutdown codes.
_CONNECTION_GONE = frozenset({"57P01", "57P02", "57P03"})

REASONS = {
    LOCK_NOT_AVAILABLE: "lock_timeout",
    DEADLOCK_DETECTED: "deadlock",
    SERIALIZATION_FAILURE: "serialization_failure",
}


def sqlstate(exc: BaseException | None) -> str | None:
    """The SQLSTATE behind a Django database error (or one already translated,
    via its `__cause__`), else None."""
    seen = 0
    while exc is not None and seen < 4:
        state = getattr(exc, "sqlstate", None)
        if state:
            return state
        exc = exc.__cause__
        seen += 1
    return None


def is_busy(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and sqlstate(exc) in BUSY


def is_retryable(exc: BaseException) -> bool:
    return sqlstate(exc) in RETRYABLE


def connection_lost(exc: BaseException) -> bool:
    """Whether `exc` means the database connection itself is gone (not a query's failure).

    psycopg gives no SQLSTATE when the socket dies; PostgreSQL sends class 08
    (connection exception) or 57P01-57P03 (terminated by an administrator,
    crash, not accepting connections yet).
    """
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    state = getattr(exc.__cause__, "sqlstate", None)
    return state is None or state.startswith("08") or state in _CONNECTION_GONE
