"""Stock events (the outbox the feed and webhooks read) and webhook subscriptions.

Events are written by PostgreSQL triggers (events/sql/) in the same transaction as
the change they describe, so an event exists if and only if its change committed.
Nothing in Python writes events; the feed (events.selectors) reads them in
(feed_txid, id) order below the oldest running transaction, so a cursor never passes an
event that can still appear. Docs: docs/EVENTS.md.
"""

import secrets
import uuid

from django.db import models


class XID8Field(models.BigIntegerField):
    """PostgreSQL's 64-bit transaction id (`xid8`), filled by the column default
    `pg_current_xact_id()` (the writing transaction). Read back as an int."""

    def db_type(self, connection):
        return "xid8" if connection.vendor == "postgresql" else "bigint"

    def from_db_value(self, value, expression, connection):
        return None if value is None else int(value)


class EventType(models.TextChoices):
    STOCK_CHANGED = "stock.changed"
    AVAILABILITY_CHANGED = "availability.changed"
    OUT_OF_STOCK = "sku.out_of_stock"
    BACK_IN_STOCK = "sku.back_in_stock"
    LOW_STOCK = "sku.low_stock"
    RESERVATION_CREATED = "reservation.created"
    RESERVATION_CONFIRMED = "reservation.confirmed"
    RESERVATION_RELEASED = "reservation.released"
    RESERVATION_FULFILLED = "reservation.fulfilled"
    RESERVATION_EXPIRED = "reservation.expired"
    PURCHASE_ORDER_CREATED = "purchase_order.created"
    PURCHASE_ORDER_RECEIVED = "purchase_order.received"
    TRANSFER_SHIPPED = "transfer.shipped"
    TRANSFER_RECEIVED = "transfer.received"


class EventQuerySet(models.QuerySet):
    def with_data(self) -> "EventQuerySet":
        """Annotate `data`: the payload as the feed and webhooks return it (rendered
        from the typed columns by events_payload() on PostgreSQL)."""
        from django.db import connections

        if connections[self.db].vendor != "postgresql":
            return self.annotate(data=models.F("payload"))
        return self.annotate(
            data=models.expressions.RawSQL(
                "events_payload(events_event)", [], output_field=models.JSONField()
            )
        )


class Event(models.Model):
    """One event. Written only by the database triggers; never updated after commit."""

    id = models.BigAutoField(primary_key=True)
    # The writing transaction (DEFAULT pg_current_xact_id(), set in migration 0001).
    txid = XID8Field(editable=False, null=True)
    # The feed position: the newest transaction id assigned when the writing statement
    # ran (`events_feed_position()`, >= txid; migration 0004). A transaction that waited
    # for a row lock files its change after the one it waited for, so the feed order
    # (feed_txid, id) is the commit order of every stock row (docs/EVENTS.md).
    feed_txid = XID8Field(editable=False, null=True)
    type = models.CharField(max_length=40, choices=EventType.choices)
    occurred_at = models.DateTimeField()
    request_id = models.CharField(max_length=64, blank=True, default="")
    sku = models.CharField(max_length=64, blank=True, default="")
    warehouse = models.CharField(max_length=32, blank=True, default="")
    # The ordering lane for webhook delivery: sku:<sku>, order:<order id>, po:<number>
    # or transfer:<transfer id>.
    stream = models.CharField(max_length=140)
    # The stored payload. NULL for the hot types of the batched path (stock.changed,
    # availability.changed, reservation.created since events migration 0005): their
    # triggers store typed columns (PostgreSQL only, not in this model) and the SQL
    # function events_payload() renders the documented JSON at read time; read the
    # payload as the feed and webhooks do, e.g. `Event.objects.with_data()` (`.data`).
    payload = models.JSONField(null=True)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["feed_txid", "id"]
        indexes = [models.Index(fields=["feed_txid", "id"], name="events_feed_position")]

    def __str__(self) -> str:
        return f"{self.type} #{self.id}"


class FeedState(models.Model):
    """One row: how far the retention job has pruned the feed (cursor_expired below it)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    pruned_txid = models.BigIntegerField(default=0)
    pruned_id = models.BigIntegerField(default=0)
    pruned_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"pruned up to ({self.pruned_txid}, {self.pruned_id})"


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ + base64 of 24 random bytes."""
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class WebhookSubscription(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, blank=True)
    url = models.URLField(max_length=500)
    # Empty: every type.
    types = models.JSONField(default=list, blank=True)
    sku = models.CharField(max_length=64, blank=True, help_text="Only events of this SKU.")
    warehouse = models.CharField(
        max_length=32, blank=True, help_text="Only events of this warehouse code."
    )
    secret = models.CharField(max_length=100, default=new_secret, editable=False)
    is_active = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    # The dispatcher has turned every feed event up to (cursor_txid, cursor_id), a
    # feed position (the event's feed_txid, id)
    # into deliveries (or skipped it by the filters).
    cursor_txid = models.BigIntegerField(default=0)
    cursor_id = models.BigIntegerField(default=0)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.name or self.url

    def matches(self, event_type: str, sku: str, warehouse: str) -> bool:
        return (
            (not self.types or event_type in self.types)
            and (not self.sku or sku == self.sku)
            and (not self.warehouse or warehouse == self.warehouse)
        )


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"


class Delivery(models.Model):
    """One event for one subscription: its delivery log.

    A lane is (subscription, stream): its deliveries are sent one at a time in
    (feed position, event id) order, so a later event of a SKU never overtakes an earlier one.
    """

    id = models.BigAutoField(primary_key=True)
    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.BigIntegerField()
    event_txid = models.BigIntegerField()  # the event's feed_txid (its feed position)
    event_type = models.CharField(max_length=40)
    stream = models.CharField(max_length=140)
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "event_id"], name="delivery_one_per_event"
            ),
        ]
        indexes = [
            models.Index(
                fields=["subscription", "stream", "event_txid", "event_id"],
                condition=models.Q(status="pending"),
                name="delivery_pending_lane",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.event_id} -> {self.subscription_id}"
