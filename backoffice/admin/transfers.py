"""Admin for two-step transfers (issue #15, item 3): the list of transfers (in
transit, received, received short) with their lines, and receiving them.

Transfers are shipped through the API (`POST /api/v1/transfers/`) or a
warehouse system; nothing here edits a transfer directly. Receiving calls
`inventory.services.transfer_receive`: the action "Receive in full" for the
selected transfers, or the per-transfer receive page, where staff enter what
arrived of each line and why the rest is written off. Both need
`backoffice.transfer_stock` and the destination among the warehouses the user
works at (`require_warehouses`).
"""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from inventory import services
from inventory.actors import actor_for_user
from inventory.errors import InventoryError
from inventory.models import Transfer, TransferLine, TransferStatus

from ..access import may_act_in, require_warehouses
from ..models import TRANSFER_STOCK


class TransferLineInline(admin.TabularInline):
    model = TransferLine
    fields = ["product", "quantity_shipped", "quantity_received", "short"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="Written off")
    def short(self, obj):
        return obj.quantity_short

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class TransferReceiveForm(forms.Form):
    """One field per line (units that arrived, preset to what was shipped) and a
    reason, required by the service when a line arrived short."""

    reason = forms.CharField(
        required=False,
        max_length=500,
        help_text="Required when something arrived short: why the rest is written off.",
    )

    def __init__(self, *args, lines: list[TransferLine], **kwargs):
        super().__init__(*args, **kwargs)
        self.lines = lines
        for line in lines:
            self.fields[f"line_{line.pk}"] = forms.IntegerField(
                label=f"{line.product.sku} (shipped {line.quantity_shipped})",
                min_value=0,
                max_value=line.quantity_shipped,
                initial=line.quantity_shipped,
            )
        self.fields["reason"] = self.fields.pop("reason")  # below the lines

    def received(self) -> dict[str, int]:
        return {
            line.product.sku: self.cleaned_data[f"line_{line.pk}"]
            for line in self.lines
            if self.cleaned_data[f"line_{line.pk}"] != line.quantity_shipped
        }


@admin.register(Transfer)
class TransferAdmin(admin.ModelAdmin):
    list_display = [
        "transfer_id",
        "source",
        "destination",
        "status",
        "expected_date",
        "shipped_by",
        "shipped_at",
        "received_by",
        "receive_link",
    ]
    list_filter = ["status", "source", "destination"]
    list_select_related = ["source", "destination"]
    search_fields = ["transfer_id"]
    date_hierarchy = "shipped_at"
    inlines = [TransferLineInline]
    readonly_fields = [
        "transfer_id",
        "source",
        "destination",
        "status",
        "expected_date",
        "reason",
        "shipped_by",
        "shipped_at",
        "received_by",
        "received_at",
        "receive_reason",
    ]
    actions = ["receive_in_full"]

    # Transfers are shipped by the service and received through the pages below.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_receive_permission(self, request) -> bool:
        return request.user.has_perm(TRANSFER_STOCK)

    @admin.display(description="Receive")
    def receive_link(self, obj):
        if obj.status != TransferStatus.SHIPPED:
            return "—"
        url = reverse("admin:inventory_transfer_receive", args=[obj.pk])
        return format_html('<a href="{}">Receive…</a>', url)

    @admin.action(description="Receive selected transfers in full", permissions=["receive"])
    def receive_in_full(self, request, queryset):
        actor = actor_for_user(request.user)
        done = 0
        for record in queryset.select_related("destination").order_by("pk"):
            if not may_act_in(request.user, record.destination.code):
                self.message_user(
                    request,
                    f"{record.transfer_id}: you do not work at {record.destination.code}.",
                    messages.ERROR,
                )
                continue
            try:
                services.transfer_receive(transfer_id=record.transfer_id, actor=actor)
                done += 1
            except InventoryError as exc:
                self.message_user(request, f"{record.transfer_id}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} transfer(s) received in full.", messages.SUCCESS)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/receive/",
                self.admin_site.admin_view(self.receive_view),
                name="inventory_transfer_receive",
            ),
            *super().get_urls(),
        ]

    def receive_view(self, request, object_id):
        record = (
            Transfer.objects.select_related("source", "destination").filter(pk=object_id).first()
            if _is_uuid(object_id)
            else None
        )
        if record is None:
            raise Http404("No such transfer.")
        if not self.has_receive_permission(request):
            raise PermissionDenied
        require_warehouses(request.user, record.destination.code)
        lines = list(record.lines.select_related("product").order_by("product__sku"))
        change_url = reverse("admin:inventory_transfer_change", args=[record.pk])
        if record.status != TransferStatus.SHIPPED:
            self.message_user(request, "This transfer was received already.", messages.WARNING)
            return HttpResponseRedirect(change_url)
        form = TransferReceiveForm(request.POST or None, lines=lines)
        if request.method == "POST" and form.is_valid():
            try:
                result = services.transfer_receive(
                    transfer_id=record.transfer_id,
                    actor=actor_for_user(request.user),
                    received=form.received(),
                    reason=form.cleaned_data["reason"],
                )
            except InventoryError as exc:
                form.add_error(None, exc.message)
            else:
                short = sum(line.quantity_short for line in result.lines)
                text = f"{record.transfer_id} received at {record.destination.code}" + (
                    f"; {short} unit(s) written off." if short else "."
                )
                self.message_user(request, text, messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": record,
            "form": form,
            "title": f"Receive transfer {record.transfer_id}",
        }
        return TemplateResponse(request, "admin/inventory/transfer/receive.html", context)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
