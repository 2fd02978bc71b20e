"""Long-poll support for GET /api/v1/events/?wait=: one watcher thread per process.

A waiting request does not poll the database itself. While at least one request
waits, one thread per process reads the newest finished feed position (one
index probe, `newest_finished_position`) every POLL_INTERVAL_SECONDS and wakes
the waiting requests when it moves; each then reads its page once. Cost: one
small query per process per interval while anyone waits, whatever the number of
waiting clients (it was one feed query per client per interval); nothing when
nobody waits.

Why not LISTEN/NOTIFY: an event becomes readable when every older transaction on
the cluster has ended (the cursor rule, docs/EVENTS.md), which no notification
announces (a long transaction of another database ending sends none), so a
listener would need this poll anyway; and NOTIFY in the stock triggers would make
every stock transaction take PostgreSQL's cluster-wide notify lock at commit,
serialising the commits of concurrent stock operations.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import connection

from .selectors import newest_finished_position

logger = logging.getLogger(__name__)

POLL_INTERVAL_SECONDS = 0.25


class FeedWatcher:
    def __init__(self, interval: float = POLL_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self.polls = 0  # queries made (read by the tests)
        self._changed = threading.Condition()
        self._position: tuple[int, int] | None = None
        self._waiters = 0
        self._thread: threading.Thread | None = None

    def wait_past(self, position: tuple[int, int], timeout: float) -> bool:
        """Block until the feed has a finished event after `position` (True) or
        `timeout` seconds passed (False)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            self._waiters += 1
            if self._thread is None:
                self._position = None  # stale after an idle spell: wait for a fresh poll
                self._thread = threading.Thread(
                    target=self._run, name="events-feed-watcher", daemon=True
                )
                self._thread.start()
            try:
                while True:
                    if self._position is not None and self._position > position:
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._changed.wait(remaining)
            finally:
                self._waiters -= 1

    def _run(self) -> None:
        try:
            while True:
                with self._changed:
                    if self._waiters == 0:
                        self._thread = None
                        return
                try:
                    position = newest_finished_position()
                except Exception:  # a failed poll: the waiters time out or the next poll works
                    logger.exception("events feed watcher: poll failed")
                    connection.close()
                    position = None
                with self._changed:
                    self.polls += 1
                    if position is not None:
                        self._position = position
                    self._changed.notify_all()
                time.sleep(self.interval)
        finally:
            connection.close()
            with self._changed:
                if self._thread is threading.current_thread():
                    self._thread = None


watcher = FeedWatcher()
