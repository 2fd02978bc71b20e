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

from ..access import require_warehouses, warehouse_codes_for
from ..forms import PurchaseOrderReceiveForm


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
    fields = ["product", "quantity_ordered", "quantity_received", "origin", "is_open"]
    readonly_fields = ["quantity_received", "origin", "is_open"]
    raw_id_fields = ["product"]
    extra = 0

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
    fields = ["key", "lines", "allow_over_receipt", "created_by", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


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
        return format_html('<a class="button" href="{}">Receive a delivery…</a>', url)

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
            *super().get_urls(),
        ]

    def receive_view(self, request, object_id):
        po = self.get_object(request, object_id)
        if po is None:
            raise Http404("No such purchase order.")
        if not self.has_change_permission(request, po):
            raise PermissionDenied
        require_warehouses(request.user, po.warehouse.code)
        lines = list(po.lines.select_related("product").order_by("id"))
        form = PurchaseOrderReceiveForm(request.POST or None, lines=lines)
        if request.method == "POST" and form.is_valid():
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
                    if result.replayed:
                        text = f"This delivery was already booked on {po.number}; nothing changed."
                    else:
                        booked = ", ".join(
                            f"{q} x {sku}" for sku, q in result.receipt.lines.items()
                        )
                        text = (
                            f"Received {booked} on {po.number} "
                            f"({result.purchase_order.get_status_display().lower()})."
                        )
                    self.message_user(request, text, messages.SUCCESS)
                    return HttpResponseRedirect(
                        reverse("admin:purchasing_purchaseorder_change", args=[po.pk])
                    )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": po,
            "title": f"Receive a delivery on {po.number}",
            "form": form,
            "rows": [(line, form[f"line_{line.pk}"]) for line in lines],
        }
        return TemplateResponse(request, "admin/purchasing/purchaseorder/receive.html", context)
