"""Write-behind: after-commit writes of one process, gathered for a few
milliseconds and sent in one call (the read model's reservation write-throughs,
`availability_cache.apply_committed_changes`).

A reservation's write-through is one Redis round trip after its commit; a busy
process commits hundreds a second. Queued here, the commits of a few
milliseconds leave together, in one Lua call, and the request that committed
does not wait for Redis at all. What the queue promises:

* **bounded delay**: an item is sent at most `delay` seconds after the oldest
  queued item was submitted (by a thread of the process, started on first use),
  or at once by the submitting thread when `max_items` are queued or the
  oldest is already past its delay;
* **a process reads its own writes**: `flush()` sends what is queued, and waits
  for a send in flight, before it returns; readers of the read model call it
  first (so a test, or a request that reserved and then reads availability in
  the same process, never sees its own write missing);
* **nothing twice**: a forked child starts with an empty queue (the parent
  sends its own items), and `discard()` (tests) drops the queue only after a
  send in flight has finished;
* **at exit** the queue is sent (atexit). A process killed outright loses what
  it queued, as a write-through lost to a Redis blip is lost: the read model's
  TTL bounds that (docs/ARCHITECTURE.md, "Freshness bound").

Which writes may wait is the caller's decision (the read model defers only
writes that lower availability; see `availability_cache`).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class WriteBehind:
    """A per-process queue of items sent in batches by `send(items)`."""

    def __init__(self, send: Callable[[list[Any]], None], *, name: str) -> None:
        self._send = send
        self._name = name
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.flush)

    def _reset(self) -> None:
        # Also the state of a forked child: new locks (another thread of the
        # parent may have held them at the fork), no queue, no thread.
        self._cond = threading.Condition(threading.Lock())
        self._sending = threading.Lock()
        self._queue: list[Any] = []
        self._since = 0.0
        self._delay = 0.0
        self._thread: threading.Thread | None = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, item: Any, *, delay: float, max_items: int) -> None:
        """Queue `item`; it is sent within `delay` seconds."""
        with self._cond:
            now = time.monotonic()
            if not self._queue:
                self._since, self._delay = now, delay
            self._queue.append(item)
            send_now = len(self._queue) >= max_items or now - self._since >= self._delay
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif len(self._queue) == 1:
                self._cond.notify()
        if send_now:
            self.flush()

    def flush(self) -> None:
        """Send what is queued and wait for any send in flight; returns at once
        when nothing is queued or being sent."""
        if not self._queue and not self._sending.locked():
            return
        with self._sending:
            with self._cond:
                items, self._queue = self._queue, []
            if items:
                self._send(items)

    def discard(self) -> None:
        """Drop what is queued, after a send in flight (tests, between tests)."""
        with self._sending, self._cond:
            self._queue = []

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                # The oldest item's deadline; a flush by another thread may
                # empty the queue meanwhile, or start a new one (a new deadline).
                while self._queue and (left := self._since + self._delay - time.monotonic()) > 0:
                    self._cond.wait(left)
            try:
                self.flush()
            except Exception:  # pragma: no cover - `send` logs its own errors
                logger.exception("write-behind %s: sending failed", self._name)
