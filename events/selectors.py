"""The event feed: reads that can never skip an event that may still appear.

Rule: return only events whose feed position is below the oldest transaction
still running (`feed_txid < events_feed_horizon()`: transactions of other databases
on the cluster do not count, events/sql/events_feed_horizon.sql), ordered by
(feed_txid, id). An event's feed_txid is at least its writer's transaction id
(events/sql/events_feed_position.sql), and every transaction below that horizon
has finished, so no event can appear later at a position before the last one
returned: a cursor (feed_txid, id) never passes an event that can still commit.
Per stock row, the order is the commit order (a writer that waited for the row
lock files after the transaction it waited for). A transaction that is still open
holds the horizon (for this database) until it ends: the feed lags by at most
the longest-running transaction (docs/EVENTS.md, "The cursor rule").
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from .models import FeedState

CURSOR_PREFIX = "e1"
START = (0, 0)


class InvalidCursor(ValueError):
    pass


class CursorExpired(Exception):
    """The cursor points before events the retention job already deleted."""


def encode_cursor(position: tuple[int, int]) -> str:
    raw = f"{CURSOR_PREFIX}:{position[0]}:{position[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
        prefix, txid, event_id = raw.split(":")
        position = (int(txid), int(event_id))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor(value) from exc
    if prefix != CURSOR_PREFIX or min(position) < 0 or max(position) >= 2**63:
        raise InvalidCursor(value)
    return position


@dataclass(frozen=True)
class FeedEvent:
    id: int
    txid: int  # the feed position (feed_txid): the cursor is (txid, id)
    type: str
    occurred_at: datetime
    request_id: str
    sku: str
    warehouse: str
    stream: str
    payload: Any

    @property
    def cursor(self) -> str:
        return encode_cursor((self.txid, self.id))

    def as_dict(self) -> dict:
        return {
            "id": f"evt_{self.id}",
            "type": self.type,
            "occurred_at": self.occurred_at.isoformat().replace("+00:00", "Z"),
            "request_id": self.request_id,
            "sku": self.sku,
            "warehouse": self.warehouse,
            "cursor": self.cursor,
            "data": self.payload,
        }


@dataclass(frozen=True)
class FeedPage:
    events: list[FeedEvent]
    next_cursor: str


def _event(row) -> FeedEvent:
    # Django's PostgreSQL backend reads jsonb as text in raw queries.
    payload = row[-1]
    return FeedEvent(*row[:-1], json.loads(payload) if isinstance(payload, str) else payload)


def pruned_position() -> tuple[int, int]:
    state = FeedState.objects.filter(pk=1).first()
    return (state.pruned_txid, state.pruned_id) if state else START


# The payload is rendered by events_payload() (the hot types are stored in typed
# columns, events migration 0005).
# The bigint copy of feed_txid is named `position`: named `feed_txid`, ORDER BY
# feed_txid would sort by it (an output column wins) instead of reading the index in
# order (tests/events/test_sql_files.py::test_feed_reads_walk_the_index).
_FEED_SQL = """
SELECT id, feed_txid::text::bigint AS position, type, occurred_at, request_id, sku, warehouse,
       stream, events_payload(events_event) AS payload
FROM events_event
WHERE feed_txid < events_feed_horizon()
  AND (feed_txid, id) > (%s::text::xid8, %s)
  {filters}
ORDER BY feed_txid, id
LIMIT %s
"""

# The newest finished position: where a reader that matched nothing may move on to.
_HORIZON_SQL = """
SELECT feed_txid::text::bigint AS position, id FROM events_event
WHERE feed_txid < events_feed_horizon()
  AND (feed_txid, id) > (%s::text::xid8, %s)
ORDER BY feed_txid DESC, id DESC
LIMIT 1
"""


def event_feed(
    *,
    after: tuple[int, int] = START,
    types: list[str] | None = None,
    sku: str | None = None,
    warehouse: str | None = None,
    limit: int = 100,
) -> FeedPage:
    """Finished events after `after`, in (feed_txid, id) order, at most `limit`.

    Raises CursorExpired when `after` lies before the pruned part of the feed.
    The next cursor is the last event returned, or, when fewer than `limit`
    matched the filters, the newest finished event scanned (so a filtered reader
    does not scan the same events again)."""
    if after != START and after < pruned_position():
        raise CursorExpired()
    if connection.vendor != "postgresql":
        # The embedded default (SQLite) writes no events (the triggers are
        # PostgreSQL's): the feed is empty there, not an error.
        return FeedPage(events=[], next_cursor=encode_cursor(after))
    filters, params = [], [str(after[0]), after[1]]
    if types:
        filters.append("AND type = ANY(%s)")
        params.append(list(types))
    if sku:
        filters.append("AND sku = %s")
        params.append(sku)
    if warehouse:
        filters.append("AND warehouse = %s")
        params.append(warehouse)
    params.append(limit)
    with connection.cursor() as cursor:
        cursor.execute(_FEED_SQL.format(filters="\n  ".join(filters)), params)
        rows = cursor.fetchall()
        events = [_event(row) for row in rows]
        if len(events) == limit:
            position = (events[-1].txid, events[-1].id)
        elif filters:
            cursor.execute(_HORIZON_SQL, [str(after[0]), after[1]])
            newest = cursor.fetchone()
            position = tuple(newest) if newest else after
            if events and (events[-1].txid, events[-1].id) > position:
                position = (events[-1].txid, events[-1].id)
        else:
            position = (events[-1].txid, events[-1].id) if events else after
    return FeedPage(events=events, next_cursor=encode_cursor(position))


_NEWEST_SQL = """
SELECT feed_txid::text::bigint AS position, id FROM events_event
WHERE feed_txid < events_feed_horizon()
ORDER BY feed_txid DESC, id DESC
LIMIT 1
"""


def newest_finished_position() -> tuple[int, int]:
    """The position of the newest event the feed can return now (START if none):
    one backward probe of the feed index from the horizon."""
    if connection.vendor != "postgresql":
        return START
    with connection.cursor() as cursor:
        cursor.execute(_NEWEST_SQL)
        row = cursor.fetchone()
    return tuple(row) if row else START
