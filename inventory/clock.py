"""The stock layer's one clock.

Every decision that depends on the time of day (has a hold lapsed? when does a
new hold lapse?) asks `now()` here, and passes that instant to the SQL
functions, so a test can move time forward (`advance`) without sleeping and
the Python and SQL paths agree on what "now" is.

In production the offset is always zero: `now()` is `django.utils.timezone.now()`.
"""

from __future__ import annotations

import datetime

from django.utils import timezone

_offset = datetime.timedelta(0)


def now() -> datetime.datetime:
    """The current instant (aware, UTC), shifted by the test offset."""
    return timezone.now() + _offset


def advance(seconds: float) -> None:
    """Move the clock forward by `seconds` (tests only; process-wide)."""
    global _offset
    _offset += datetime.timedelta(seconds=seconds)


def reset() -> None:
    """Back to the real time (tests only)."""
    global _offset
    _offset = datetime.timedelta(0)
