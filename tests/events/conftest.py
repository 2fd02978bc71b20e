"""Helpers for the events tests: read the event table, follow the feed until a
condition holds (the feed waits for every older transaction in the cluster to end,
so a reader waits on a condition, never on a fixed sleep)."""

import time

from events.models import Event
from events.selectors import START, decode_cursor, event_feed


def events_of(*types: str) -> list[Event]:
    """The events of these types in feed order, each with `.data`: its payload as the
    feed and webhooks return it."""
    query = Event.objects.with_data().order_by("feed_txid", "id")
    if types:
        query = query.filter(type__in=types)
    return list(query)


class Follower:
    """A feed consumer: keeps its cursor, remembers every event id it was given."""

    def __init__(self, **filters) -> None:
        self.after = START
        self.seen: list[int] = []
        self.events: list = []
        self.filters = filters

    def poll(self, limit: int = 100) -> list:
        page = event_feed(after=self.after, limit=limit, **self.filters)
        self.after = decode_cursor(page.next_cursor)
        self.seen.extend(e.id for e in page.events)
        self.events.extend(page.events)
        return page.events

    def drain(self, limit: int = 100) -> None:
        while self.poll(limit):
            pass

    def follow_until(self, predicate, timeout: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            if predicate(self):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
