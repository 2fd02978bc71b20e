"""Admin for two-step transfers (issue #15, item 3): the list of transfers (in
transit, received, received short) with their lines, and receiving them.

Shipping: the "Ship a transfer" page (`ship_view`, linked from the list and
the start page), built like the instant transfer page (`backoffice.views`:
typed, scanned, pasted or uploaded lines, a preview, then confirmation) and
calling `inventory.services.transfer_ship` with a transfer id made when the
page opens (a second submit replays). The API (`POST /api/v1/transfers/`)
ships too; nothing here edits a transfer directly. Receiving calls
`inventory.services.transfer_receive`: the action "Receive in full" for the
selected transfers, or the per-transfer receive page, where staff enter what
arrived of each line and why the rest is written off. Both need
`backoffice.transfer_stock` and the destination among the warehouses the user
works at (`require_warehouses`); shipping needs the same permission and the
source among them.
"""

from __future__ import annotations

import datetime
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
from inventory.errors import InvalidInput, InventoryError, TransferConflict
from inventory.models import Transfer, TransferLine, TransferStatus

from .. import selectors
from ..access import may_act_in, require_warehouses
from ..forms import (
    ConfirmForm,
    LinesSourceForm,
    TransferLineFormSet,
    TransferShipForm,
    collect_lines,
    sign_payload,
)
from ..models import TRANSFER_STOCK
from ..views import resolve_lines


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
                "ship/",
                self.admin_site.admin_view(self.ship_view),
                name="inventory_transfer_ship",
            ),
            path(
                "<path:object_id>/receive/",
                self.admin_site.admin_view(self.receive_view),
                name="inventory_transfer_receive",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra = {"may_ship": self.has_receive_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    # --- Ship ---------------------------------------------------------------------

    def ship_view(self, request):
        """Ship a transfer: the form (lines typed, scanned, pasted or uploaded), a
        preview, then `transfer_ship` under the transfer id the form was opened with."""
        if not self.has_receive_permission(request):
            raise PermissionDenied
        if request.method == "POST" and request.POST.get("step") == "confirm":
            return self._ship_confirm(request)
        form = TransferShipForm(
            request.POST or None, user=request.user, initial={"transfer_id": str(uuid.uuid4())}
        )
        formset = TransferLineFormSet(request.POST or None, prefix="lines")
        source = LinesSourceForm(request.POST or None, request.FILES or None)
        if request.method == "POST":
            form_ok = form.is_valid()
            formset.is_valid()
            source.is_valid()
            lines, problems = collect_lines(formset, source, min_quantity=1)
            if form_ok and not problems:
                lines, problems = resolve_lines(lines, formset)
            if form_ok and not problems:
                payload = _ship_payload(form.cleaned_data, lines)
                preview, problems = _ship_preview(payload["source"], lines, formset)
                if not problems:
                    return self._ship_preview_response(request, payload, preview)
            for problem in problems:
                self.message_user(request, problem, messages.ERROR)
        context = {"form": form, "formset": formset, "source": source}
        return self._ship_render(request, "admin/inventory/transfer/ship.html", context)

    def _ship_render(self, request, template: str, context: dict) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Ship a transfer",
            **context,
        }
        return TemplateResponse(request, template, context)

    def _ship_preview_response(self, request, payload: dict, preview: list[dict]):
        context = {
            "payload": payload,
            "preview": preview,
            "confirm_form": ConfirmForm(initial={"payload": sign_payload(payload)}),
        }
        return self._ship_render(request, "admin/inventory/transfer/ship_preview.html", context)

    def _ship_confirm(self, request):
        confirm = ConfirmForm(request.POST)
        if not confirm.is_valid():
            for problem in confirm.errors.get("payload", []):
                self.message_user(request, problem, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:inventory_transfer_ship"))
        payload = confirm.cleaned_data["payload"]
        require_warehouses(request.user, payload["source"])  # assignments may have changed
        expected = payload["expected_date"]
        try:
            result = services.transfer_ship(
                transfer_id=payload["transfer_id"],
                source=payload["source"],
                destination=payload["destination"],
                lines=[services.ShipLine(sku, quantity) for sku, quantity in payload["lines"]],
                actor=actor_for_user(request.user),
                expected_date=datetime.date.fromisoformat(expected) if expected else None,
                reason=payload["reason"],
            )
        except InventoryError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            preview, problems = _ship_preview(payload["source"], payload["lines"])
            for problem in problems:
                self.message_user(request, problem, messages.ERROR)
            if problems or isinstance(exc, TransferConflict | InvalidInput):
                # Stock gone, this page's id shipped with other lines, a date passed:
                # start again on a fresh page (a new transfer id).
                return HttpResponseRedirect(reverse("admin:inventory_transfer_ship"))
            self.message_user(
                request,
                "Nothing was shipped. Check the preview and confirm again.",
                messages.WARNING,
            )
            return self._ship_preview_response(request, payload, preview)
        if result.replayed:
            text = f"{result.transfer.transfer_id} was shipped already; nothing was shipped again."
            self.message_user(request, text, messages.INFO)
        else:
            units = sum(line.quantity_shipped for line in result.lines)
            text = (
                f"Shipped {result.transfer.transfer_id}: {units} unit(s) of "
                f"{len(result.lines)} SKU(s) from {payload['source']} to "
                f"{payload['destination']}, now in transit."
            )
            self.message_user(request, text, messages.SUCCESS)
        return HttpResponseRedirect(
            reverse("admin:inventory_transfer_change", args=[result.transfer.pk])
        )

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


def _ship_payload(data: dict, lines: list[tuple[str, int]]) -> dict:
    expected = data.get("expected_date")
    return {
        "transfer_id": data["transfer_id"],
        "source": data["source"].code,
        "destination": data["destination"].code,
        "expected_date": expected.isoformat() if expected else None,
        "reason": data["reason"],
        "lines": lines,
    }


def _ship_preview(source: str, lines, formset=None) -> tuple[list[dict], list[str]]:
    """Preview rows (sellable at the source now, what stays) and the lines that ask
    for more than is sellable there: a message each, and an error on the formset row
    that named the SKU. Sellable is `services.transferable_units` (on hand less
    reserved, safety stock, damaged and quality control): what `transfer_ship`
    checks under the lock, which has the last word."""
    skus = [sku for sku, _ in lines]
    names = {sku: product.name for sku, product in selectors.products_by_sku(skus).items()}
    rows = selectors.balances_for(source, skus)
    preview, short = [], {}
    for sku, quantity in lines:
        sellable = services.transferable_units(rows.get(sku))
        if quantity > sellable:
            short[sku] = (
                f"Not enough sellable stock in {source}: {sku} needs {quantity}, "
                f"{sellable} sellable."
            )
        preview.append(
            {
                "sku": sku,
                "name": names.get(sku, ""),
                "quantity": quantity,
                "sellable": sellable,
                "after": sellable - quantity,
            }
        )
    if short and formset is not None:
        _row_errors(formset, short)
    return preview, list(short.values())


def _row_errors(formset, problems_by_sku: dict[str, str]) -> None:
    codes = [
        (form, form.cleaned_data["sku"].strip())
        for form in formset.forms
        if (getattr(form, "cleaned_data", None) or {}).get("sku")
    ]
    products = selectors.products_by_code(code for _, code in codes)
    for form, code in codes:
        product = products.get(code)
        if product is not None and product.sku in problems_by_sku:
            form.add_error("quantity", problems_by_sku[product.sku])


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
