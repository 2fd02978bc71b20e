"""Events and webhooks in the admin: subscriptions (the secret is shown once, on
creation), their delivery log (status, latency, response code, attempts), a replay
action, and a read-only view of the event feed."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from inventory.actors import actor_for_user

from . import selectors, services
from .models import Delivery, Event, WebhookSubscription


class ReplayForm(forms.Form):
    after = forms.CharField(
        label="Replay after cursor",
        required=False,
        help_text="An event's cursor or a feed page's next_cursor; empty: every retained event.",
    )

    def clean_after(self):
        raw = self.cleaned_data["after"].strip()
        if not raw:
            return selectors.START
        try:
            return selectors.decode_cursor(raw)
        except selectors.InvalidCursor as exc:
            raise forms.ValidationError("Not a cursor of this feed.") from exc


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "url",
        "is_active",
        "consecutive_failures",
        "disabled_reason",
        "created_at",
    ]
    list_filter = ["is_active"]
    search_fields = ["name", "url"]
    fields = [
        "name",
        "url",
        "types",
        "sku",
        "warehouse",
        "is_active",
        "disabled_reason",
        "disabled_at",
        "consecutive_failures",
        "failing_since",
        "cursor",
        "replay",
        "created_by",
        "created_at",
    ]
    readonly_fields = [
        "replay",
        "disabled_reason",
        "disabled_at",
        "consecutive_failures",
        "failing_since",
        "cursor",
        "created_by",
        "created_at",
    ]
    actions = ["replay_all", "enable"]

    @admin.display(description="Delivery cursor")
    def cursor(self, obj):
        return selectors.encode_cursor((obj.cursor_txid, obj.cursor_id))

    @admin.display(description="Replay")
    def replay(self, obj):
        if obj.pk is None:
            return "-"
        url = reverse("admin:events_webhooksubscription_replay", args=[obj.pk])
        return format_html('<a href="{}">Replay from a cursor…</a>', url)

    def get_urls(self):
        return [
            path(
                "<uuid:pk>/replay/",
                self.admin_site.admin_view(self.replay_view),
                name="events_webhooksubscription_replay",
            ),
            *super().get_urls(),
        ]

    def replay_view(self, request, pk):
        """Replay from a cursor: every retained event after it is sent again, in order."""
        subscription = get_object_or_404(WebhookSubscription, pk=pk)
        if not self.has_change_permission(request, subscription):
            raise PermissionDenied
        form = ReplayForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                queued = services.subscription_replay(subscription, form.cleaned_data["after"])
            except selectors.CursorExpired:
                form.add_error("after", "This cursor is older than the retention (cursor_expired).")
            else:
                self.message_user(request, f"Replay queued: {queued} deliveries so far.")
                return redirect("admin:events_webhooksubscription_change", subscription.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "subscription": subscription,
            "form": form,
            "title": f"Replay events to {subscription}",
        }
        return TemplateResponse(request, "admin/events/replay.html", context)

    def save_model(self, request, obj, form, change):
        if change:
            changes = {f: form.cleaned_data[f] for f in form.changed_data if f in form.cleaned_data}
            services.subscription_update(obj, **changes)
            return
        created = services.subscription_create(
            url=obj.url,
            types=obj.types or [],
            sku=obj.sku,
            warehouse=obj.warehouse,
            name=obj.name,
            actor=actor_for_user(request.user),
        )
        obj.pk = created.pk
        obj.refresh_from_db()
        self.message_user(
            request,
            f"Signing secret (shown once, store it now): {created.secret}",
            messages.WARNING,
        )

    @admin.action(description="Replay every retained event to the selected subscriptions")
    def replay_all(self, request, queryset):
        for sub in queryset:
            services.subscription_replay(sub, selectors.START)
        self.message_user(request, "Replay queued.")

    @admin.action(description="Enable (clears the failure count and reason)")
    def enable(self, request, queryset):
        for sub in queryset:
            services.subscription_update(sub, is_active=True)
        self.message_user(request, "Enabled.")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "subscription",
        "event_type",
        "event_id",
        "stream",
        "status",
        "attempts",
        "response_code",
        "latency_ms",
        "last_attempt_at",
        "next_attempt_at",
        "last_error",
    ]
    list_filter = ["status", "event_type", "subscription"]
    search_fields = ["stream", "event_id"]
    list_select_related = ["subscription"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "feed_txid",
        "txid",
        "type",
        "sku",
        "warehouse",
        "request_id",
        "occurred_at",
    ]
    list_filter = ["type"]
    search_fields = ["sku", "stream", "request_id"]
    show_full_result_count = False
    # The stored column is NULL for the types kept in typed columns (migration 0005):
    # show the payload as the feed returns it instead.
    exclude = ["payload"]
    readonly_fields = ["data"]

    def get_queryset(self, request):
        return super().get_queryset(request).with_data()

    @admin.display(description="payload")
    def data(self, obj):
        return json.dumps(obj.data, indent=2)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
