"""Admin for purchasing: suppliers, product-supplier links, purchase orders with their
lines, and receiving (full or partial) through `purchasing.services`; the receive
page's form is `backoffice.forms.PurchaseOrderReceiveForm`.

Status is never edited directly: the actions "mark as ordered", "cancel" and
"receive everything outstanding", and the per-PO receive page, call the
services and report domain errors with `message_user`.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, F, Q, Sum
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from inventory.actors import actor_for_user
from inventory.errors import InventoryError
from purchasing import services
from purchasing.models import (
    Origin,
    ProductSupplier,
    PurchaseOrder,
    PurchaseOrderLine,
    PurchaseOrderReceipt,
    PurchaseOrderStatus,
    Supplier,
)
from purchasing.services import ReceiptLine

from ..access import require_warehouses, warehouse_codes_for
from ..forms import (
    ConfirmForm,
    LinesSourceForm,
    PurchaseOrderConfirmForm,
    PurchaseOrderLinesForm,
    PurchaseOrderReceiveForm,
    ReceiveLineFormSet,
    collect_lines,
    sign_payload,
)
from ..models import RECEIVE_STOCK
from ..selectors import product_search_condition
from ..views import resolve_lines


@admin.register(Supplier)
class SupplierAdmin(admin.ModelAdmin):
    list_display = ["name", "contact_name", "email", "lead_time", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "contact_name", "email"]

    @admin.display(description="Lead time (days)")
    def lead_time(self, obj):
        return f"{obj.lead_time_min_days}-{obj.lead_time_max_days}"


@admin.register(ProductSupplier)
class ProductSupplierAdmin(admin.ModelAdmin):
    list_display = ["product", "supplier", "supplier_sku", "pack_size", "is_preferred"]
    list_filter = ["is_preferred", "supplier"]
    list_select_related = ["product", "supplier"]
    search_fields = ["product__sku", "product__name", "supplier_sku", "supplier__name"]
    # Millions of products: a raw id input, never a drop-down.
    raw_id_fields = ["product"]


class PurchaseOrderLineForm(forms.ModelForm):
    class Meta:
        model = PurchaseOrderLine
        fields = ["product", "quantity_ordered"]

    def clean(self):
        data = super().clean()
        line, product = self.instance, data.get("product")
        # A reorder line moved to another product must not make that product's
        # second open reorder line in the warehouse (the database refuses it).
        if (
            line.pk
            and line.origin == Origin.REORDER
            and line.is_open
            and product is not None
            and product.pk != line.product_id
        ):
            other = (
                PurchaseOrderLine.objects.filter(
                    product=product,
                    warehouse_id=line.warehouse_id,
                    is_open=True,
                    origin=Origin.REORDER,
                )
                .exclude(pk=line.pk)
                .select_related("purchase_order")
                .first()
            )
            if other is not None:
                raise forms.ValidationError(
                    f"{product.sku} already has an open reorder line in this warehouse, "
                    f"on {other.purchase_order.number}."
                )
        return data


class PurchaseOrderLineInline(admin.TabularInline):
    model = PurchaseOrderLine
    form = PurchaseOrderLineForm
    fields = ["product", "quantity_ordered", "quantity_received", "origin", "is_open", "closed"]
    readonly_fields = ["quantity_received", "origin", "is_open", "closed"]
    raw_id_fields = ["product"]
    extra = 0

    @admin.display(description="closed short")
    def closed(self, line):
        if line.closed_short_at is None:
            return "—"
        return (
            f"{line.quantity_closed_short} not coming: {line.closed_short_reason} "
            f"({line.closed_short_by}, {line.closed_short_at:%Y-%m-%d %H:%M})"
        )

    # Lines can be edited while the order is a draft; afterwards it went to the supplier.
    def _editable(self, obj) -> bool:
        return obj is None or obj.status == PurchaseOrderStatus.DRAFT

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)


class PurchaseOrderReceiptInline(admin.TabularInline):
    model = PurchaseOrderReceipt
    fields = ["received", "delivery", "allow_over_receipt", "created_by", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="received")
    def received(self, receipt):
        """The delivery's lines, readable: "6 x MUG, 4 x CUP" (not the stored JSON)."""
        lines = receipt.lines or {}
        shown = ", ".join(f"{quantity} x {sku}" for sku, quantity in list(lines.items())[:20])
        if len(lines) > 20:
            shown += f" … and {len(lines) - 20} more SKU(s)"
        units = sum(lines.values())
        return f"{shown} ({units} unit(s))" if lines else "—"

    @admin.display(description="receipt id")
    def delivery(self, receipt):
        return receipt.key.rsplit(":", 1)[-1]


@admin.register(PurchaseOrder)
class PurchaseOrderAdmin(admin.ModelAdmin):
    list_display = [
        "number",
        "supplier",
        "warehouse",
        "status",
        "origin",
        "expected_arrival_date",
        "created_by",
        "created_at",
    ]
    list_filter = ["status", "origin", "warehouse"]
    list_select_related = ["supplier", "warehouse"]
    search_fields = ["number", "supplier__name"]
    date_hierarchy = "created_at"
    inlines = [PurchaseOrderLineInline, PurchaseOrderReceiptInline]
    actions = ["mark_ordered", "receive_outstanding", "cancel"]
    fields = [
        "number",
        "supplier",
        "warehouse",
        "status",
        "origin",
        "expected_arrival_date",
        "notes",
        "created_by",
        "ordered_at",
        "received_at",
        "receive_link",
    ]
    readonly_fields = [
        "number",
        "status",
        "origin",
        "created_by",
        "ordered_at",
        "received_at",
        "receive_link",
    ]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        # A sent order's supplier and destination are fixed; a reorder draft's are what
        # groups it (one per supplier and warehouse).
        if obj is not None and (
            obj.status != PurchaseOrderStatus.DRAFT or obj.origin == Origin.REORDER
        ):
            readonly += ["supplier", "warehouse"]
        return readonly

    def get_queryset(self, request):
        # Warehouse staff (who view orders but may not edit them) see the deliveries
        # to the warehouses they work at; Purchasing and managers see every order.
        queryset = super().get_queryset(request)
        if request.user.has_perm("purchasing.change_purchaseorder"):
            return queryset
        codes = warehouse_codes_for(request.user)
        return queryset if codes is None else queryset.filter(warehouse__code__in=codes)

    def has_delete_permission(self, request, obj=None):
        # Only drafts (nothing received, nothing sent to the supplier) may be deleted.
        if obj is not None and obj.status != PurchaseOrderStatus.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="Receive")
    def receive_link(self, obj):
        if obj.pk is None or obj.status == PurchaseOrderStatus.CANCELLED:
            return "—"
        url = reverse("admin:purchasing_purchaseorder_receive", args=[obj.pk])
        close = reverse("admin:purchasing_purchaseorder_close_short", args=[obj.pk])
        return format_html(
            '<a class="button" href="{}">Receive a delivery…</a> '
            '<a class="button" href="{}">Close lines short (nothing arrived)…</a>',
            url,
            close,
        )

    # --- saving: lines follow the order; derived fields through the service ---

    def save_model(self, request, obj, form, change):
        if not change:
            obj.number = services.new_purchase_order_number()
            obj.created_by = actor_for_user(request.user)
            return super().save_model(request, obj, form, change)
        # Only what the form edits: status and its dates belong to the services, and
        # the copy read for the form may be older than a cancel or "mark ordered".
        obj.save(update_fields=[*form.fields, "updated_at"])

    def save_formset(self, request, form, formset, change):
        if formset.model is PurchaseOrderLine:
            for line in formset.save(commit=False):
                line.warehouse_id = form.instance.warehouse_id
                line.save()
            for line in formset.deleted_objects:
                line.delete()
            formset.save_m2m()
        else:
            formset.save()

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        services.purchase_order_sync(purchase_order=form.instance)

    # --- actions ---

    def _each(self, request, queryset, call, done: str) -> None:
        succeeded = 0
        for po in queryset.order_by("pk"):
            try:
                call(po)
                succeeded += 1
            except InventoryError as exc:
                self.message_user(request, f"{po.number}: {exc.message}", messages.ERROR)
        if succeeded:
            self.message_user(request, f"{succeeded} purchase order(s) {done}.", messages.SUCCESS)

    @admin.action(description="Mark selected drafts as ordered", permissions=["change"])
    def mark_ordered(self, request, queryset):
        actor = actor_for_user(request.user)
        self._each(
            request,
            queryset,
            lambda po: services.purchase_order_mark_ordered(purchase_order=po, actor=actor),
            "marked as ordered",
        )

    @admin.action(description="Receive everything outstanding", permissions=["change"])
    def receive_outstanding(self, request, queryset):
        actor = actor_for_user(request.user)
        warehouses = warehouse_codes_for(request.user)  # the service checks them under lock
        self._each(
            request,
            queryset,
            lambda po: services.purchase_order_receive(
                purchase_order=po, actor=actor, warehouses=warehouses
            ),
            "received in full",
        )

    @admin.action(description="Cancel selected purchase orders", permissions=["change"])
    def cancel(self, request, queryset):
        actor = actor_for_user(request.user)
        self._each(
            request,
            queryset,
            lambda po: services.purchase_order_cancel(purchase_order=po, actor=actor),
            "cancelled",
        )

    # --- the receive page (full or partial delivery) ---

    def get_urls(self):
        return [
            path(
                "<path:object_id>/receive/",
                self.admin_site.admin_view(self.receive_view),
                name="purchasing_purchaseorder_receive",
            ),
            path(
                "<path:object_id>/close-short/",
                self.admin_site.admin_view(self.close_short_view),
                name="purchasing_purchaseorder_close_short",
            ),
            *super().get_urls(),
        ]

    def may_receive(self, request, po) -> bool:
        """Purchasing edits orders (and may receive them); warehouse staff only view them
        and receive deliveries (`backoffice.receive_stock`). Either way only into the
        warehouses they work at (`require_warehouses`)."""
        return self.has_change_permission(request, po) or (
            request.user.has_perm(RECEIVE_STOCK) and self.has_view_permission(request, po)
        )

    def _order_to_receive(self, request, object_id) -> PurchaseOrder:
        """The order, if `request.user` may receive on it (else 403 / 404)."""
        try:
            po = PurchaseOrder.objects.select_related("supplier", "warehouse").get(
                pk=int(object_id)
            )
        except (ValueError, PurchaseOrder.DoesNotExist):
            raise Http404("No such purchase order.") from None
        if not self.may_receive(request, po):
            raise PermissionDenied
        require_warehouses(request.user, po.warehouse.code)
        return po

    def close_short_view(self, request, object_id):
        """Close outstanding lines short without receiving anything (issue #19 item 2):
        tick the lines, give a reason, `purchase_order_close_short`. The same people
        as the receive page (who may receive the order at its warehouse)."""
        po = self._order_to_receive(request, object_id)
        problems, ticked, reason = [], [], ""
        if request.method == "POST":
            ticked = [sku for sku in request.POST.getlist("sku") if sku][:RECEIVE_PAGE_LINES]
            reason = request.POST.get("reason", "").strip()[:200]
            if not ticked:
                problems.append("Tick at least one line to close short.")
            if not reason:
                problems.append(
                    "Say why the lines are closed short (for example: supplier out of stock)."
                )
            if not problems:
                try:
                    closed = services.purchase_order_close_short(
                        purchase_order=po,
                        close_short=dict.fromkeys(ticked, reason),
                        actor=actor_for_user(request.user),
                    )
                except InventoryError as exc:
                    problems.append(f"{exc.message} Nothing was closed.")
                else:
                    text = (
                        f"Closed short on {po.number}: {', '.join(closed)} ({reason})."
                        if closed
                        else "Those lines were already closed or complete; nothing changed."
                    )
                    self.message_user(request, text, messages.SUCCESS)
                    return HttpResponseRedirect(
                        reverse("admin:purchasing_purchaseorder_change", args=[po.pk])
                    )
            for problem in problems:
                self.message_user(request, problem, messages.ERROR)
        query = request.GET.get("q", "").strip()
        lines = (
            po.lines.select_related("product")
            .filter(is_open=True, closed_short_at__isnull=True)
            .order_by("id")
        )
        if query:
            lines = lines.filter(product_search_condition(query, "product__"))
        page = Paginator(lines, RECEIVE_PAGE_LINES).get_page(request.GET.get("p"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": po,
            "title": f"Close lines short on {po.number}",
            "page": page,
            "query": query,
            "ticked": set(ticked),
            "reason": reason,
            "reason_missing": request.method == "POST" and not reason,
        }
        return TemplateResponse(request, "admin/purchasing/purchaseorder/close_short.html", context)

    def receive_view(self, request, object_id):
        try:
            po = PurchaseOrder.objects.select_related("supplier", "warehouse").get(
                pk=int(object_id)
            )
        except (ValueError, PurchaseOrder.DoesNotExist):
            raise Http404("No such purchase order.") from None
        if not self.may_receive(request, po):
            raise PermissionDenied
        require_warehouses(request.user, po.warehouse.code)
        if request.method == "POST" and request.POST.get("step") == "confirm":
            return self._receive_confirm(request, po)
        if request.method == "POST" and "step" not in request.POST:
            return self._receive_one_step(request, po)
        form = PurchaseOrderLinesForm(request.POST or None)
        formset = ReceiveLineFormSet(request.POST or None, prefix="lines")
        source = LinesSourceForm(request.POST or None, request.FILES or None)
        if request.method == "POST":
            form_ok = form.is_valid()
            formset.is_valid()
            source.is_valid()
            lines, problems = collect_lines(formset, source, min_quantity=1)
            if form_ok and not problems:
                lines, problems = resolve_lines(lines, formset)
            if form_ok and not problems:
                payload = {
                    "po": po.pk,
                    "receipt_id": form.cleaned_data["receipt_id"],
                    "allow_over_receipt": form.cleaned_data["allow_over_receipt"],
                    "reason": form.cleaned_data["reason"],
                    "lines": lines,
                }
                preview, short, problems = receive_preview(po, payload)
                if not problems:
                    payload["short"] = short
                    return self._receive_preview_response(request, po, payload, preview)
            for problem in problems:
                self.message_user(request, problem, messages.ERROR)
        return self._receive_page(request, po, form, formset, source)

    def _receive_page(self, request, po, form, formset, source):
        query = request.GET.get("q", "").strip()
        lines = po.lines.select_related("product").order_by("id")
        if query:
            lines = lines.filter(product_search_condition(query, "product__"))
        page = Paginator(lines, RECEIVE_PAGE_LINES).get_page(request.GET.get("p"))
        totals = po.lines.aggregate(
            lines=Count("id"),
            open_lines=Count("id", filter=Q(is_open=True)),
            ordered=Sum("quantity_ordered"),
            received=Sum("quantity_received"),
            outstanding=Sum(
                F("quantity_ordered") - F("quantity_received"),
                filter=Q(is_open=True),
            ),
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": po,
            "title": f"Receive a delivery on {po.number}",
            "form": form,
            "formset": formset,
            "source": source,
            "page": page,
            "query": query,
            "totals": totals,
            "may_edit": self.has_change_permission(request, po),
        }
        return TemplateResponse(request, "admin/purchasing/purchaseorder/receive.html", context)

    def _receive_preview_response(self, request, po, payload, preview, confirm=None):
        confirm = confirm or PurchaseOrderConfirmForm(
            initial={"payload": sign_payload(payload)}, short_lines=payload["short"]
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": po,
            "title": f"Receive on {po.number}: check and confirm",
            "payload": payload,
            "preview": preview,
            "units": sum(quantity for _, quantity in payload["lines"]),
            "confirm_form": confirm,
        }
        return TemplateResponse(
            request, "admin/purchasing/purchaseorder/receive_preview.html", context
        )

    def _receive_confirm(self, request, po):
        signed = ConfirmForm(request.POST)
        payload = signed.cleaned_data.get("payload") if signed.is_valid() else None
        if payload is None or payload.get("po") != po.pk:
            self.message_user(
                request, "The preview expired or was altered; start again.", messages.ERROR
            )
            return HttpResponseRedirect(
                reverse("admin:purchasing_purchaseorder_receive", args=[po.pk])
            )
        confirm = PurchaseOrderConfirmForm(request.POST, short_lines=payload["short"])
        if not confirm.is_valid():
            preview, _, _ = receive_preview(po, payload)
            return self._receive_preview_response(request, po, payload, preview, confirm)
        close_short = confirm.close_short()
        try:
            result = services.purchase_order_receive(
                purchase_order=po,
                actor=actor_for_user(request.user),
                lines=[ReceiptLine(sku, quantity) for sku, quantity in payload["lines"]],
                receipt_id=payload["receipt_id"],
                allow_over_receipt=payload["allow_over_receipt"],
                reason=payload["reason"],
                warehouses=warehouse_codes_for(request.user),
                close_short=close_short,
            )
        except InventoryError as exc:
            self.message_user(request, f"{exc.message} Nothing was received.", messages.ERROR)
            preview, _, _ = receive_preview(po, payload)
            return self._receive_preview_response(request, po, payload, preview, confirm)
        self._report_receipt(request, po, result)
        if close_short and not result.replayed:
            closed = ", ".join(f"{sku} ({why})" for sku, why in sorted(close_short.items()))
            self.message_user(request, f"Closed short: {closed}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:purchasing_purchaseorder_change", args=[po.pk]))

    def _report_receipt(self, request, po, result) -> None:
        if result.replayed:
            text = f"This delivery was already booked on {po.number}; nothing changed."
        else:
            booked = ", ".join(f"{q} x {sku}" for sku, q in result.receipt.lines.items())
            text = (
                f"Received {booked} on {po.number} "
                f"({result.purchase_order.get_status_display().lower()})."
            )
        self.message_user(request, text, messages.SUCCESS)

    def _receive_one_step(self, request, po):
        """A post of `line_<pk>` quantities (the page before scan mode; scripts): booked
        at once, the rest left open."""
        lines = list(po.lines.select_related("product").order_by("id"))
        form = PurchaseOrderReceiveForm(request.POST, lines=lines)
        if form.is_valid():
            received = form.receipt_lines()
            if not received:
                self.message_user(
                    request, "Enter a quantity for at least one line.", messages.ERROR
                )
            else:
                try:
                    result = services.purchase_order_receive(
                        purchase_order=po,
                        actor=actor_for_user(request.user),
                        lines=received,
                        receipt_id=form.cleaned_data["receipt_id"],
                        allow_over_receipt=form.cleaned_data["allow_over_receipt"],
                        reason=form.cleaned_data["reason"],
                        warehouses=warehouse_codes_for(request.user),
                    )
                except InventoryError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                else:
                    self._report_receipt(request, po, result)
                    return HttpResponseRedirect(
                        reverse("admin:purchasing_purchaseorder_change", args=[po.pk])
                    )
        else:
            for field, field_errors in form.errors.items():
                for error in field_errors:
                    self.message_user(request, f"{field}: {error}", messages.ERROR)
        return self._receive_page(
            request,
            po,
            PurchaseOrderLinesForm(),
            ReceiveLineFormSet(prefix="lines"),
            LinesSourceForm(),
        )


RECEIVE_PAGE_LINES = 100


def receive_preview(po, payload) -> tuple[list[dict], list[dict], list[str]]:
    """Preview rows of a delivery, the lines it leaves short, and what blocks it."""
    skus = [sku for sku, _ in payload["lines"]]
    by_sku = {
        line.product.sku: line
        for line in po.lines.select_related("product").filter(product__sku__in=skus)
    }
    preview, short, problems = [], [], []
    missing = [sku for sku in skus if sku not in by_sku]
    if missing:
        problems.append(f"Not on {po.number}: {', '.join(missing)}.")
    for sku, quantity in payload["lines"]:
        line = by_sku.get(sku)
        if line is None:
            continue
        outstanding = line.quantity_outstanding
        if line.closed_short_at is not None:
            problems.append(f"{sku} was closed short on {po.number}; nothing more is booked on it.")
        elif quantity > outstanding and not payload["allow_over_receipt"]:
            problems.append(
                f"{sku}: {quantity} delivered but only {outstanding} outstanding. Tick "
                "“Accept more than was ordered” to book it anyway."
            )
        left = max(outstanding - quantity, 0)
        row = {
            "sku": sku,
            "name": line.product.name,
            "ordered": line.quantity_ordered,
            "received": line.quantity_received,
            "outstanding": outstanding,
            "receiving": quantity,
            "left": left,
        }
        preview.append(row)
        if left:
            short.append({"sku": sku, "left": left})
    return preview, short, problems
