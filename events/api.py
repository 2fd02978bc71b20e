"""The events feed and webhook subscriptions over the API (/api/v1/events/,
/api/v1/webhooks/). Thin views over events.selectors and events.services, using
the API's base view, scopes and error format (api.views.ApiView)."""

from __future__ import annotations

import time

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from api import schema
from api.fields import StrictBooleanField, StrictCharField, StrictSerializer
from api.models import Scope
from api.views import ApiView

from . import errors, selectors, services, watch
from .models import Delivery, EventType, WebhookSubscription

FEED_SCOPES = (Scope.OPERATIONS, Scope.READ)
MAX_LIMIT = 1000


class EventOutput(serializers.Serializer):
    id = serializers.CharField(help_text="evt_<n>: unique, the webhook-id of its deliveries.")
    type = serializers.ChoiceField(choices=EventType.choices)
    occurred_at = serializers.DateTimeField()
    request_id = serializers.CharField()
    sku = serializers.CharField()
    warehouse = serializers.CharField()
    cursor = serializers.CharField(help_text="Resume after this event with ?after=<cursor>.")
    data = serializers.JSONField(help_text="The payload; see docs/EVENTS.md per type.")


FeedOutput = inline_serializer(
    name="EventFeedPage",
    fields={
        "events": EventOutput(many=True),
        "next_cursor": serializers.CharField(
            help_text="Pass as ?after= to continue; stable, opaque, never skips an event."
        ),
    },
)


def _int_param(request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise exceptions.ValidationError({name: [f"A whole number from {low} to {high}."]})
    return int(raw)


# Empty, or event types separated by commas (empty items are ignored).
_TYPE = "(?:" + "|".join(t.replace(".", r"\.") for t in EventType.values) + ")"
_TYPES_PATTERN = f"^,*(?:{_TYPE}(?:,+{_TYPE})*)?,*$"


class EventFeedView(ApiView):
    read_scopes = FEED_SCOPES

    @extend_schema(
        operation_id="events_list",
        parameters=[
            schema.text_query(
                "after",
                "Cursor: events after it (default: the oldest retained event). Pass a "
                "`next_cursor` or an event's `cursor` unchanged; any other value is a 400.",
            ),
            OpenApiParameter(
                "types",
                {"type": "string", "pattern": _TYPES_PATTERN},
                description="Comma-separated event types (" + ", ".join(EventType.values) + ").",
            ),
            schema.text_query("sku", "Exact SKU."),
            schema.text_query("warehouse", "Exact warehouse code."),
            schema.int_query("limit", 1, MAX_LIMIT, f"1 to {MAX_LIMIT} (default 100)."),
            schema.int_query(
                "wait",
                0,
                settings.STOCKROOM_EVENTS_MAX_WAIT,
                "Long-poll: when nothing is new, wait up to this many seconds "
                f"(0 to STOCKROOM_EVENTS_MAX_WAIT, here {settings.STOCKROOM_EVENTS_MAX_WAIT}) "
                "for an event.",
            ),
        ],
        responses={
            200: FeedOutput,
            410: schema.OpenApiResponse(
                schema.ErrorSerializer,
                description="`cursor_expired`: the cursor is older than the retention.",
            ),
            **schema.errors(*schema.COMMON),
        },
    )
    def get(self, request):
        allowed = {"after", "types", "sku", "warehouse", "limit", "wait"}
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise exceptions.ValidationError({n: ["Unknown query parameter."] for n in unknown})
        with_nul = sorted(n for n, v in request.query_params.items() if "\x00" in v)
        if with_nul:  # PostgreSQL text cannot hold a NUL: filtering on one was a 500
            raise exceptions.ValidationError(
                {n: ["Null characters are not allowed."] for n in with_nul}
            )
        after = selectors.START
        if request.query_params.get("after"):
            try:
                after = selectors.decode_cursor(request.query_params["after"])
            except selectors.InvalidCursor as exc:
                raise exceptions.ValidationError({"after": ["Invalid cursor."]}) from exc
        types = [t for t in request.query_params.get("types", "").split(",") if t]
        bad = sorted(set(types) - set(EventType.values))
        if bad:
            raise exceptions.ValidationError({"types": [f"Unknown event types: {', '.join(bad)}."]})
        limit = _int_param(request, "limit", 100, 1, MAX_LIMIT)
        wait = _int_param(request, "wait", 0, 0, settings.STOCKROOM_EVENTS_MAX_WAIT)
        deadline = time.monotonic() + wait
        while True:
            try:
                page = selectors.event_feed(
                    after=after,
                    types=types,
                    sku=request.query_params.get("sku") or None,
                    warehouse=request.query_params.get("warehouse") or None,
                    limit=limit,
                )
            except selectors.CursorExpired as exc:
                raise errors.CursorExpired() from exc
            remaining = deadline - time.monotonic()
            if page.events or remaining <= 0:
                break
            # Long-poll: sleep until the process's feed watcher sees a newer finished
            # event (events.watch: one poll per process, not one per waiting client).
            after = selectors.decode_cursor(page.next_cursor)
            if not watch.watcher.wait_past(after, remaining):
                break
        return Response(
            {"events": [e.as_dict() for e in page.events], "next_cursor": page.next_cursor}
        )


# --- Webhooks ------------------------------------------------------------------


class SubscriptionOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    url = serializers.URLField()
    types = serializers.ListField(child=serializers.CharField())
    sku = serializers.CharField()
    warehouse = serializers.CharField()
    is_active = serializers.BooleanField()
    disabled_reason = serializers.CharField()
    consecutive_failures = serializers.IntegerField()
    cursor = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_cursor(self, obj) -> str:
        return selectors.encode_cursor((obj.cursor_txid, obj.cursor_id))


class SubscriptionCreatedOutput(SubscriptionOutput):
    secret = serializers.CharField(help_text="Shown once, at creation (whsec_...).")


class SubscriptionInput(StrictSerializer):
    url = serializers.URLField(max_length=500)
    name = StrictCharField(max_length=100, required=False, allow_blank=True, default="")
    types = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices), required=False, default=list
    )
    sku = StrictCharField(max_length=64, required=False, allow_blank=True, default="")
    warehouse = StrictCharField(max_length=32, required=False, allow_blank=True, default="")
    from_start = StrictBooleanField(
        required=False, default=False, help_text="Deliver every retained event, not only new ones."
    )


class SubscriptionUpdateInput(StrictSerializer):
    url = serializers.URLField(max_length=500, required=False)
    name = StrictCharField(max_length=100, required=False, allow_blank=True)
    types = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices), required=False
    )
    sku = StrictCharField(max_length=64, required=False, allow_blank=True)
    warehouse = StrictCharField(max_length=32, required=False, allow_blank=True)
    is_active = StrictBooleanField(required=False)


class ReplayInput(StrictSerializer):
    after = StrictCharField(
        allow_blank=True, help_text="Cursor to replay after; empty: every retained event."
    )


class DeliveryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    event_id = serializers.SerializerMethodField()
    event_type = serializers.CharField()
    stream = serializers.CharField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    response_code = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    next_attempt_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)

    def get_event_id(self, obj) -> str:
        return f"evt_{obj.event_id}"


class WebhookListView(ApiView):
    read_scopes = (Scope.OPERATIONS,)
    write_scopes = (Scope.OPERATIONS,)

    @extend_schema(
        operation_id="webhooks_list",
        responses={200: SubscriptionOutput(many=True), **schema.errors(*schema.COMMON)},
    )
    def get(self, request):
        subs = WebhookSubscription.objects.order_by("created_at")[:500]
        return Response(SubscriptionOutput(subs, many=True).data)

    @extend_schema(
        operation_id="webhooks_create",
        request=SubscriptionInput,
        responses={201: SubscriptionCreatedOutput, **schema.errors(*schema.WRITE)},
    )
    def post(self, request):
        data = self.validated(SubscriptionInput, request.data)
        sub = services.subscription_create(actor=self.actor, **data)
        return Response(SubscriptionCreatedOutput(sub).data, status=status.HTTP_201_CREATED)


class WebhookDetailView(ApiView):
    read_scopes = (Scope.OPERATIONS,)
    write_scopes = (Scope.OPERATIONS,)

    def _get(self, pk):
        return get_object_or_404(WebhookSubscription, pk=pk)

    @extend_schema(
        operation_id="webhooks_read",
        responses={200: SubscriptionOutput, **schema.errors(*schema.COMMON)},
    )
    def get(self, request, pk):
        return Response(SubscriptionOutput(self._get(pk)).data)

    @extend_schema(
        operation_id="webhooks_update",
        request=SubscriptionUpdateInput,
        responses={200: SubscriptionOutput, **schema.errors(*schema.WRITE)},
    )
    def patch(self, request, pk):
        data = self.validated(SubscriptionUpdateInput, request.data)
        sub = services.subscription_update(self._get(pk), **data)
        return Response(SubscriptionOutput(sub).data)

    @extend_schema(
        operation_id="webhooks_delete", responses={204: None, **schema.errors(*schema.WRITE)}
    )
    def delete(self, request, pk):
        self._get(pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookReplayView(ApiView):
    write_scopes = (Scope.OPERATIONS,)

    @extend_schema(
        operation_id="webhooks_replay",
        request=ReplayInput,
        responses={
            202: inline_serializer("ReplayResult", {"queued": serializers.IntegerField()}),
            410: schema.OpenApiResponse(
                schema.ErrorSerializer, description="`cursor_expired`: older than the retention."
            ),
            **schema.errors(*schema.WRITE),
        },
    )
    def post(self, request, pk):
        sub = get_object_or_404(WebhookSubscription, pk=pk)
        raw = self.validated(ReplayInput, request.data)["after"]
        try:
            after = selectors.decode_cursor(raw) if raw else selectors.START
        except selectors.InvalidCursor as exc:
            raise exceptions.ValidationError({"after": ["Invalid cursor."]}) from exc
        try:
            queued = services.subscription_replay(sub, after)
        except selectors.CursorExpired as exc:
            raise errors.CursorExpired() from exc
        return Response({"queued": queued}, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveriesView(ApiView):
    read_scopes = (Scope.OPERATIONS,)

    @extend_schema(
        operation_id="webhooks_deliveries",
        responses={200: DeliveryOutput(many=True), **schema.errors(*schema.COMMON)},
    )
    def get(self, request, pk):
        sub = get_object_or_404(WebhookSubscription, pk=pk)
        rows = Delivery.objects.filter(subscription=sub).order_by("-id")[:200]
        return Response(DeliveryOutput(rows, many=True).data)
