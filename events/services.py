"""Webhook subscriptions, delivery and retention: every write of the events app.

Delivery design (docs/EVENTS.md, "Webhooks"):

* The dispatcher (`events_dispatch`, beat every 2 s) moves each active
  subscription's cursor over the feed (the same never-skipping rule as the pull
  API) and records one `Delivery` per matching event, in the same transaction as
  the cursor move: an event is turned into a delivery exactly once.
* A lane is (subscription, stream), the stream being the event's SKU (or order
  id, or purchase order number). `deliver_lane` sends a lane's pending deliveries
  one at a time in feed order, holding a PostgreSQL advisory lock on the lane (one
  sender per lane; a killed worker's lock goes with its connection). A failed
  attempt stops the lane until its backoff has passed: a later event of the SKU is
  never sent before an earlier one. Other lanes and other subscriptions carry on.
* A delivery is marked delivered only after a 2xx answer: a worker killed
  mid-request leaves it pending and it is sent again with the same webhook-id
  (at-least-once; receivers de-duplicate on the id).
* No HTTP call ever runs inside a database transaction, and none in a stock
  operation: stock transactions only insert event rows.
"""

from __future__ import annotations

import json
import logging
import random
import time
import zlib
from contextlib import contextmanager
from datetime import timedelta

import requests
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from inventory import clock

from .models import (
    Delivery,
    DeliveryStatus,
    Event,
    EventType,
    FeedState,
    WebhookSubscription,
)
from .selectors import START, CursorExpired, FeedEvent, pruned_position

logger = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 5
BACKOFF_MAX_SECONDS = 3600
DISPATCH_PAGE = 1000


class SubscriptionError(ValueError):
    """Bad subscription input: `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _check_types(types) -> list[str]:
    if types is None:
        return []
    unknown = sorted(set(types) - set(EventType.values))
    if unknown:
        raise SubscriptionError("types", f"Unknown event types: {', '.join(unknown)}.")
    return sorted(set(types))


def subscription_create(
    *,
    url: str,
    actor: str,
    types: list[str] | None = None,
    sku: str = "",
    warehouse: str = "",
    name: str = "",
    from_start: bool = False,
) -> WebhookSubscription:
    """A new subscription; it receives events committed from now on (or, with
    `from_start`, every retained event). Its secret is in the returned object only
    at creation; the API shows it once."""
    subscription = WebhookSubscription(
        url=url,
        types=_check_types(types),
        sku=sku,
        warehouse=warehouse,
        name=name,
        created_by=actor,
    )
    if not from_start:
        subscription.cursor_txid, subscription.cursor_id = feed_head()
    subscription.save()
    return subscription


def subscription_update(subscription: WebhookSubscription, **changes) -> WebhookSubscription:
    if "types" in changes:
        changes["types"] = _check_types(changes["types"])
    for field, value in changes.items():
        setattr(subscription, field, value)
    if changes.get("is_active"):
        subscription.disabled_reason = ""
        subscription.disabled_at = None
        subscription.consecutive_failures = 0
        subscription.failing_since = None
    subscription.save()
    return subscription


def subscription_replay(subscription: WebhookSubscription, after: tuple[int, int]) -> int:
    """Send every event after `after` again (matching the subscription's filters),
    delivered ones included, in order. Returns the number of deliveries re-queued
    so far (the dispatcher continues past its first page)."""
    if after != START and after < pruned_position():
        raise CursorExpired()
    with transaction.atomic():
        locked = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        locked.cursor_txid, locked.cursor_id = after
        locked.save(update_fields=["cursor_txid", "cursor_id", "updated_at"])
    return dispatch_subscription(subscription.pk)


def feed_head() -> tuple[int, int]:
    """The position of the newest event (finished or not): a new subscription starts here."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT feed_txid::text::bigint AS position, id FROM events_event "
            "ORDER BY feed_txid DESC, id DESC LIMIT 1"
        )
        row = cursor.fetchone()
    # Events of transactions still open may sit below the newest txid: start just
    # below the oldest running transaction instead, so none of them is missed.
    with connection.cursor() as cursor:
        cursor.execute("SELECT events_feed_horizon()::text::bigint")
        horizon = cursor.fetchone()[0]
    if row is None:
        return START
    return min(tuple(row), (horizon - 1, 2**62))


_DISPATCH_SQL = """
WITH page AS (
    SELECT id, feed_txid, type, sku, warehouse, stream
    FROM events_event
    WHERE feed_txid < events_feed_horizon()
      AND (feed_txid, id) > (%(txid)s::text::xid8, %(id)s)
    ORDER BY feed_txid, id
    LIMIT %(limit)s
),
queued AS (
    INSERT INTO events_delivery
        (subscription_id, event_id, event_txid, event_type, stream, status, attempts,
         next_attempt_at, last_error, created_at)
    SELECT %(sub)s, p.id, p.feed_txid::text::bigint, p.type, p.stream, 'pending', 0,
           %(now)s, '', %(now)s
    FROM page p
    WHERE (cardinality(%(types)s::text[]) = 0 OR p.type = ANY(%(types)s::text[]))
      AND (%(sku)s = '' OR p.sku = %(sku)s)
      AND (%(warehouse)s = '' OR p.warehouse = %(warehouse)s)
    ON CONFLICT (subscription_id, event_id) DO UPDATE
        SET status = 'pending', attempts = 0, next_attempt_at = EXCLUDED.next_attempt_at,
            first_attempt_at = NULL, last_error = 'replayed'
    RETURNING 1
)
SELECT (SELECT count(*) FROM queued),
       (SELECT feed_txid::text::bigint FROM page ORDER BY feed_txid DESC, id DESC LIMIT 1),
       (SELECT id FROM page ORDER BY feed_txid DESC, id DESC LIMIT 1)
"""


def dispatch_subscription(subscription_id) -> int:
    """Turn the subscription's next feed events into deliveries; move its cursor."""
    queued_total = 0
    for _page in range(20):
        with transaction.atomic():
            subscription = (
                WebhookSubscription.objects.select_for_update(skip_locked=True)
                .filter(pk=subscription_id, is_active=True)
                .first()
            )
            if subscription is None:
                return queued_total
            with connection.cursor() as cursor:
                cursor.execute(
                    _DISPATCH_SQL,
                    {
                        "txid": str(subscription.cursor_txid),
                        "id": subscription.cursor_id,
                        "limit": DISPATCH_PAGE,
                        "sub": subscription.pk,
                        "now": clock.now(),
                        "types": list(subscription.types or []),
                        "sku": subscription.sku,
                        "warehouse": subscription.warehouse,
                    },
                )
                queued, last_txid, last_id = cursor.fetchone()
            if last_id is None:
                return queued_total
            subscription.cursor_txid, subscription.cursor_id = last_txid, last_id
            subscription.save(update_fields=["cursor_txid", "cursor_id", "updated_at"])
            queued_total += queued
    return queued_total


def due_lanes(subscription_id=None) -> list[tuple[str, str]]:
    """(subscription id, stream) of every lane whose first pending delivery is due."""
    now = clock.now()
    query = Delivery.objects.filter(
        status=DeliveryStatus.PENDING,
        next_attempt_at__lte=now,
        subscription__is_active=True,
    )
    if subscription_id is not None:
        query = query.filter(subscription_id=subscription_id)
    return [
        (str(sub), stream)
        for sub, stream in query.values_list("subscription_id", "stream").distinct()
    ]


def events_dispatch() -> list[tuple[str, str]]:
    """Dispatch every active subscription; return the lanes that have due deliveries."""
    for subscription_id in WebhookSubscription.objects.filter(is_active=True).values_list(
        "pk", flat=True
    ):
        dispatch_subscription(subscription_id)
    return due_lanes()


def _lane_key(subscription_id, stream: str) -> tuple[int, int]:
    a = zlib.crc32(str(subscription_id).encode()) - 2**31
    b = zlib.crc32(stream.encode()) - 2**31
    return a, b


@contextmanager
def _lane_lock(subscription_id, stream: str):
    """A session-level advisory lock on the lane (no transaction stays open while
    we wait on HTTP). Yields False if another sender holds it."""
    a, b = _lane_key(subscription_id, stream)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [a, b])
        got = cursor.fetchone()[0]
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [a, b])


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with full jitter in its upper half: ~5 s, 10 s, 20 s, ...
    capped at one hour; retries continue until the delivery is older than
    STOCKROOM_WEBHOOK_MAX_AGE_HOURS."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    return ceiling / 2 + random.random() * ceiling / 2


def webhook_body(event: FeedEvent) -> str:
    """The JSON body (Standard Webhooks shape: type, timestamp, data)."""
    body = event.as_dict()
    body["timestamp"] = body["occurred_at"]
    return json.dumps(body, separators=(",", ":"), default=str)


def webhook_headers(secret: str, message_id: str, body: str) -> dict[str, str]:
    now = timezone.now()
    signature = Webhook(secret).sign(message_id, now, body)
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "user-agent": "Stockroom-Webhooks/1",
    }


def _load_event(event_id: int) -> FeedEvent | None:
    row = (
        Event.objects.filter(pk=event_id)
        .with_data()  # the payload as the feed renders it (events_payload())
        .values_list(
            "id",
            "feed_txid",
            "type",
            "occurred_at",
            "request_id",
            "sku",
            "warehouse",
            "stream",
            "data",
        )
        .first()
    )
    return FeedEvent(*row) if row else None


def _record_failure(delivery: Delivery, subscription: WebhookSubscription, error: str) -> None:
    now = clock.now()
    max_age = timedelta(hours=settings.STOCKROOM_WEBHOOK_MAX_AGE_HOURS)
    with transaction.atomic():
        delivery.attempts += 1
        delivery.last_error = error[:2000]
        delivery.last_attempt_at = now
        delivery.first_attempt_at = delivery.first_attempt_at or now
        if now - delivery.first_attempt_at >= max_age:
            delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = now + timedelta(seconds=backoff_seconds(delivery.attempts))
        delivery.save()
        sub = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        sub.consecutive_failures += 1
        sub.failing_since = sub.failing_since or now
        if sub.is_active and sub.consecutive_failures >= settings.STOCKROOM_WEBHOOK_DISABLE_AFTER:
            sub.is_active = False
            sub.disabled_at = now
            sub.disabled_reason = (
                f"Disabled after {sub.consecutive_failures} consecutive failed deliveries "
                f"(failing since {sub.failing_since:%Y-%m-%d %H:%M:%S} UTC); last error: "
                f"{error[:300]}"
            )
            logger.warning("webhook %s disabled: %s", sub.pk, sub.disabled_reason)
        sub.save()


def _record_success(delivery: Delivery, subscription: WebhookSubscription) -> None:
    now = clock.now()
    with transaction.atomic():
        delivery.attempts += 1
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
        delivery.last_attempt_at = now
        delivery.first_attempt_at = delivery.first_attempt_at or now
        delivery.last_error = ""
        delivery.save()
        WebhookSubscription.objects.filter(pk=subscription.pk).exclude(
            consecutive_failures=0, failing_since=None
        ).update(consecutive_failures=0, failing_since=None)


def deliver_lane(subscription_id, stream: str, *, session: requests.Session | None = None) -> int:
    """Send the lane's due deliveries in order until it is empty, one fails, or the
    batch/time budget is used. Returns how many were delivered."""
    delivered = 0
    budget_ends = time.monotonic() + max(10.0, 2 * settings.STOCKROOM_WEBHOOK_TIMEOUT)
    http = session or requests.Session()
    with _lane_lock(subscription_id, stream) as mine:
        if not mine:
            return 0
        for _ in range(settings.STOCKROOM_WEBHOOK_LANE_BATCH):
            if time.monotonic() > budget_ends:
                break
            subscription = WebhookSubscription.objects.filter(
                pk=subscription_id, is_active=True
            ).first()
            if subscription is None:
                break
            delivery = (
                Delivery.objects.filter(
                    subscription_id=subscription_id, stream=stream, status=DeliveryStatus.PENDING
                )
                .order_by("event_txid", "event_id")
                .first()
            )
            if delivery is None or delivery.next_attempt_at > clock.now():
                break
            event = _load_event(delivery.event_id)
            if event is None:
                delivery.status = DeliveryStatus.FAILED
                delivery.last_error = "event pruned before it could be delivered"
                delivery.save(update_fields=["status", "last_error"])
                continue
            body = webhook_body(event)
            headers = webhook_headers(subscription.secret, f"evt_{event.id}", body)
            started = time.monotonic()
            try:
                response = http.post(
                    subscription.url,
                    data=body.encode(),
                    headers=headers,
                    timeout=settings.STOCKROOM_WEBHOOK_TIMEOUT,
                    allow_redirects=False,
                )
                error = "" if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
                delivery.response_code = response.status_code
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}: {exc}"
                delivery.response_code = None
            delivery.latency_ms = int((time.monotonic() - started) * 1000)
            if error:
                _record_failure(delivery, subscription, error)
                break
            _record_success(delivery, subscription)
            delivered += 1
    return delivered


def events_prune(*, now=None, chunk: int = 10_000) -> int:
    """Delete events older than the retention, oldest first in feed order, and the
    delivery log of the same age; record the last deleted position (cursors before
    it answer 410 cursor_expired). Returns the number of events deleted."""
    now = now or clock.now()
    cutoff = now - timedelta(days=settings.STOCKROOM_EVENTS_RETENTION_DAYS)
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                """
                WITH head AS (
                    SELECT id, feed_txid, occurred_at < %s AS old
                    FROM events_event ORDER BY feed_txid, id LIMIT %s
                ), stop AS (
                    SELECT feed_txid, id FROM head WHERE NOT old ORDER BY feed_txid, id LIMIT 1
                ), gone AS (
                    DELETE FROM events_event e USING head h
                    WHERE e.id = h.id AND h.old
                      AND (NOT EXISTS (SELECT 1 FROM stop)
                           OR (h.feed_txid, h.id) < (SELECT feed_txid, id FROM stop))
                    RETURNING e.feed_txid, e.id
                )
                SELECT (SELECT count(*) FROM gone),
                       (SELECT feed_txid::text::bigint FROM gone
                        ORDER BY feed_txid DESC, id DESC LIMIT 1),
                       (SELECT id FROM gone ORDER BY feed_txid DESC, id DESC LIMIT 1)
                """,
                [cutoff, chunk],
            )
            count, last_txid, last_id = cursor.fetchone()
            if count:
                FeedState.objects.update_or_create(
                    pk=1,
                    defaults={"pruned_txid": last_txid, "pruned_id": last_id, "pruned_at": now},
                )
        deleted += count
        if count < chunk:
            break
    Delivery.objects.filter(created_at__lt=cutoff).exclude(status=DeliveryStatus.PENDING).delete()
    return deleted
