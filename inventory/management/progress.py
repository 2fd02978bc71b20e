"""Progress for long management commands: a tqdm bar on a terminal, log lines otherwise.

The bulk services report to any object with `phase(name, total)`, `advance(n)`
and `close()` (`inventory.services.bulk.Progress`); this picks the right one.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO

from tqdm import tqdm

logger = logging.getLogger("inventory.bulk")


class TerminalProgress:
    """A tqdm bar per phase: rows done, rows/s and, when the total is known, an ETA."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.bar: tqdm | None = None

    def phase(self, name: str, total: int | None = None) -> None:
        self.close()
        self.bar = tqdm(
            total=total, desc=name, unit=" rows", unit_scale=True, file=self.stream,
            dynamic_ncols=True, mininterval=0.5,
        )  # fmt: skip

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class LogProgress:
    """Plain log lines (for cron, CI, pipes): one per phase and one every `interval` seconds."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.name = ""
        self.total: int | None = None
        self.done = 0
        self.started = self.last = time.monotonic()

    def phase(self, name: str, total: int | None = None) -> None:
        self.close()
        self.name, self.total, self.done = name, total, 0
        self.started = self.last = time.monotonic()
        logger.info("%s%s", name, f" ({total} rows)" if total is not None else "")

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            logger.info("%s: %s", self.name, self._figures(now))

    def close(self) -> None:
        if self.name:
            logger.info("%s done: %s", self.name, self._figures(time.monotonic()))
            self.name = ""

    def _figures(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        text = f"{self.done} rows, {rate:,.0f} rows/s"
        if self.total and rate > 0:
            text += f", ETA {max(self.total - self.done, 0) / rate:,.0f} s"
        return text


def progress_for(stream: IO[str] | None = None, *, enabled: bool = True):
    """A tqdm bar when `stream` (stderr by default) is a terminal, else log lines."""
    stream = stream or sys.stderr
    if not enabled:
        from inventory.services.bulk import NullProgress

        return NullProgress()
    if hasattr(stream, "isatty") and stream.isatty():
        return TerminalProgress(stream)
    return LogProgress()
