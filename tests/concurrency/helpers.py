"""Deterministic interleavings of two or three database sessions (threads).

Nothing here sleeps for a tuned time: a step waits for a *state* of the other
session (it has done X, it is blocked on Y's locks), polled on the test's own
connection with a generous deadline that only a hang would reach.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.db import connection, connections

DEADLINE_SECONDS = 120


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.005)


def blocked_by(waiter: int, holder: int) -> bool:
    """Whether session `waiter` is waiting for a lock that session `holder` holds."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s = ANY(pg_blocking_pids(%s))", [holder, waiter])
        return cursor.fetchone()[0]


def waiting_for_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", [pid]
        )
        row = cursor.fetchone()
        return bool(row and row[0])


class Session(threading.Thread):
    """Runs `fn` on its own connection; keeps the result or the exception."""

    def __init__(self, fn: Callable[[], object], name: str = "session") -> None:
        super().__init__(name=name, daemon=True)
        self.fn = fn
        self.pid: int | None = None
        self.result: object = None
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self.pid = backend_pid()
            self.ready.set()
            self.result = self.fn()
        except BaseException as exc:  # asserted on by the test
            self.error = exc
        finally:
            self.ready.set()
            connections.close_all()
            self.done.set()

    def begin(self) -> Session:
        self.start()
        assert self.ready.wait(DEADLINE_SECONDS)
        return self

    def finish(self) -> Session:
        self.join(DEADLINE_SECONDS)
        assert not self.is_alive(), f"{self.name} did not finish"
        return self


def wait_event(event: threading.Event, session: Session, what: str) -> None:
    """Wait for `event`, or for `session` to end early (its error is then raised)."""
    wait_until(lambda: event.is_set() or session.done.is_set(), what)
    if not event.is_set():
        raise AssertionError(f"{session.name} ended before {what}: {session.error!r}")
