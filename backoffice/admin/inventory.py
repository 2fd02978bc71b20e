"""Admin for stock: products, inventory rows, the ledger and reservations.

The admin is one more interface over the services: nothing here writes
on hand or reserved. Inventory rows only take reorder settings; the ledger and
reservations are read-only for everyone, superusers included. Lists are built
for millions of rows: no full COUNT(*) (`EstimatedCountPaginator`,
`show_full_result_count = False`), related rows joined in the same query,
exact-SKU search through the unique index, filters and ordering on indexed
columns only (`sortable_by = ()` on the big tables).
"""

from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils.html import format_html

from inventory import errors, services
from inventory.models import (
    Inventory,
    InventoryTransaction,
    Product,
    ReferenceType,
    Reservation,
    ReservationLine,
    StockPolicy,
)

from ..listing import DateRangeFilter, EstimatedCountPaginator, ProductSkuSearchMixin
from ..selectors import product_stock_history


class BigTableAdmin(admin.ModelAdmin):
    """Defaults for admin lists over tables that may hold millions of rows."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    # Facet counts run one COUNT per filter choice over the whole list.
    show_facets = admin.ShowFacets.NEVER

    class Media:
        css = {"all": ["backoffice/backoffice.css"]}

    list_per_page = 50


# --- Products ----------------------------------------------------------------------


class CategoryFilter(admin.SimpleListFilter):
    """Category choices, cached: SELECT DISTINCT over millions of products is not free."""

    title = "category"
    parameter_name = "category"
    cache_key = "backoffice:product-categories"

    def lookups(self, request, model_admin):
        def load():
            return list(
                Product.objects.exclude(category="")
                .order_by("category")
                .values_list("category", flat=True)
                .distinct()[:200]
            )

        return [(c, c) for c in cache.get_or_set(self.cache_key, load, 600)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(category=self.value())
        return queryset


class ProductAdminForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = (
            "sku",
            "name",
            "category",
            "weight_g",
            "length_mm",
            "width_mm",
            "height_mm",
            "stock_policy",
            "backorder_limit",
        )

    def clean(self):
        data = super().clean()
        product = self.instance
        if product._state.adding or not {"stock_policy", "backorder_limit"} & set(
            self.changed_data
        ):
            return data
        policy = data.get("stock_policy")
        allowance = 0 if policy == StockPolicy.NORMAL else (data.get("backorder_limit") or 0)
        if Inventory.objects.filter(product=product, available__lt=-allowance).exists():
            raise forms.ValidationError(errors.AllowanceBelowBackorders.default_message)
        return data


@admin.register(Product)
class ProductAdmin(BigTableAdmin):
    form = ProductAdminForm
    list_display = ("sku", "name", "category", "stock_policy", "backorder_limit", "updated_at")
    list_filter = (CategoryFilter, "stock_policy")
    # Also what autocomplete pickers search (type part of a SKU or name).
    search_fields = ("sku", "name")
    search_help_text = "SKU (exact or part) or part of the name."
    readonly_fields = ("created_at", "updated_at")
    sortable_by = ("sku",)
    change_form_template = "backoffice/product_change_form.html"

    def get_search_results(self, request, queryset, search_term):
        # An exact SKU is the common case: answer it from the unique index.
        term = search_term.strip()
        exact = queryset.filter(sku__in={term, term.upper()})
        if term and exact.exists():
            return exact, False
        return super().get_search_results(request, queryset, search_term)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        product = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if product is not None:
            extra["stock_history"] = product_stock_history(product)
            extra["ledger_url"] = (
                reverse("admin:inventory_inventorytransaction_changelist") + f"?q={product.sku}"
            )
            extra["inventory_url"] = (
                reverse("admin:inventory_inventory_changelist") + f"?q={product.sku}"
            )
        return super().change_view(request, object_id, form_url, extra)

    def save_model(self, request, obj, form, change):
        policy_fields = {"stock_policy", "backorder_limit"}
        if not change or not policy_fields & set(form.changed_data):
            return super().save_model(request, obj, form, change)
        # The policy is copied to every inventory row: that is the service's job.
        policy, limit = obj.stock_policy, obj.backorder_limit
        obj.stock_policy = form.initial["stock_policy"]
        obj.backorder_limit = form.initial["backorder_limit"]
        obj.save()
        try:
            # A savepoint: a refused policy change rolls back alone, and the admin's
            # own transaction (the change log entry) stays usable.
            with transaction.atomic():
                services.product_set_stock_policy(
                    product=obj, stock_policy=policy, backorder_limit=limit
                )
        except errors.InventoryError as exc:
            obj.stock_policy, obj.backorder_limit = (
                form.initial["stock_policy"],
                form.initial["backorder_limit"],
            )
            self.message_user(request, f"Stock policy not changed: {exc.message}", messages.ERROR)


# --- Inventory rows ------------------------------------------------------------------


class StockStatusFilter(admin.SimpleListFilter):
    title = "stock"
    parameter_name = "stock"

    def lookups(self, request, model_admin):
        return [
            ("below_threshold", "Below reorder threshold"),
            ("out_of_stock", "Out of stock (nothing available)"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "below_threshold":
            return queryset.filter(reorder_threshold__gt=0, available__lt=F("reorder_threshold"))
        if self.value() == "out_of_stock":
            return queryset.filter(available__lte=0)
        return queryset


@admin.register(Inventory)
class InventoryAdmin(ProductSkuSearchMixin, BigTableAdmin):
    list_display = (
        "sku",
        "product_name",
        "warehouse_code",
        "on_hand",
        "reserved",
        "damaged",
        "quality_control",
        "safety_stock",
        "available",
        "reorder_threshold",
        "reorder_quantity",
        "updated_at",
    )
    list_select_related = ("product", "warehouse")
    list_filter = ("warehouse", StockStatusFilter)
    search_fields = ("product__sku",)
    search_help_text = "Exact SKU."
    sortable_by = ()
    ordering = ("warehouse_id", "product_id")  # the (warehouse, product) index
    fields = (
        "product",
        "warehouse",
        ("on_hand", "reserved", "available"),
        ("damaged", "quality_control"),
        "backorder_allowance",
        ("reorder_threshold", "reorder_quantity", "safety_stock"),
        "version",
        "updated_at",
        "stock_links",
    )
    readonly_fields = (
        "product",
        "warehouse",
        "on_hand",
        "reserved",
        "available",
        "damaged",
        "quality_control",
        "backorder_allowance",
        "version",
        "updated_at",
        "stock_links",
    )

    @admin.display(description="SKU", ordering="product__sku")
    def sku(self, row):
        return row.product.sku

    @admin.display(description="product")
    def product_name(self, row):
        return row.product.name

    @admin.display(description="warehouse")
    def warehouse_code(self, row):
        return row.warehouse.code

    @admin.display(description="see also")
    def stock_links(self, row):
        return format_html(
            '<a href="{}">Product page and chart</a> · <a href="{}?q={}">Ledger</a>',
            reverse("admin:inventory_product_change", args=[row.product_id]),
            reverse("admin:inventory_inventorytransaction_changelist"),
            row.product.sku,
        )

    def has_add_permission(self, request):
        return False  # rows appear when stock is received, counted or reserved

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        # Only the reorder settings: a full save would write back the on hand and
        # reserved read when the form loaded, undoing any stock change since.
        obj.save(update_fields=["reorder_threshold", "reorder_quantity", "updated_at"])
        if "safety_stock" in form.changed_data:
            # Safety stock moves the sellable figure: through the service (row
            # version bumped, the cached availability invalidated; issue #15).
            services.inventory_set_reorder(
                sku=obj.product.sku, warehouse=obj.warehouse.code, safety_stock=obj.safety_stock
            )


# --- Ledger --------------------------------------------------------------------------


@admin.register(InventoryTransaction)
class InventoryTransactionAdmin(ProductSkuSearchMixin, BigTableAdmin):
    list_display = (
        "when",
        "type",
        "sku",
        "warehouse_code",
        "on_hand_change",
        "reserved_change",
        "balances_after",
        "reference",
        "created_by",
        "short_reason",
    )
    list_select_related = ("product", "warehouse")
    list_filter = (
        "type",
        "warehouse",
        ("created_at", DateRangeFilter),
        "reference_type",
    )
    search_fields = ("product__sku", "reference_id")
    search_help_text = "Exact SKU, or else exact reference id (order, transfer, count …)."

    def search_fallback(self, term):
        # Every reference type is listed so the (reference_type, reference_id)
        # index answers it (one index probe per type).
        return Q(reference_type__in=ReferenceType.values, reference_id=term)

    sortable_by = ()
    actions = None

    @admin.display(description="when (UTC)")
    def when(self, txn):
        return txn.created_at.strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="SKU")
    def sku(self, txn):
        return txn.product.sku

    @admin.display(description="Δ on hand")
    def on_hand_change(self, txn):
        return f"{txn.on_hand_delta:+}" if txn.on_hand_delta else "0"

    @admin.display(description="Δ reserved")
    def reserved_change(self, txn):
        return f"{txn.reserved_delta:+}" if txn.reserved_delta else "0"

    @admin.display(description="warehouse")
    def warehouse_code(self, txn):
        return txn.warehouse.code

    @admin.display(description="after: on hand / reserved")
    def balances_after(self, txn):
        return f"{txn.on_hand_after} / {txn.reserved_after}"

    @admin.display(description="reference")
    def reference(self, txn):
        """The reference, shortened, linking to every ledger row of the same reference."""
        if not txn.reference_type:
            return "—"
        ref_id = txn.reference_id
        short = ref_id if len(ref_id) <= 14 else ref_id[:8] + "…"
        query = urlencode({"reference_type__exact": txn.reference_type, "reference_id": ref_id})
        return format_html(
            '<a href="?{}" title="All rows of {} {}">{} {}</a>',
            query,
            txn.get_reference_type_display(),
            ref_id,
            txn.get_reference_type_display(),
            short,
        )

    @admin.display(description="reason")
    def short_reason(self, txn):
        return txn.reason if len(txn.reason) <= 40 else txn.reason[:39] + "…"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Reservations --------------------------------------------------------------------


class ReservationLineInline(admin.TabularInline):
    model = ReservationLine
    fields = (
        "product",
        "warehouse",
        "quantity",
        "quantity_fulfilled",
        "quantity_released",
        "status",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("product", "warehouse")


@admin.register(Reservation)
class ReservationAdmin(BigTableAdmin):
    list_display = ("order_id", "status", "expires_at", "created_at", "created_by")
    list_filter = ("status",)
    search_fields = ("order_id",)
    search_help_text = "Exact order id."
    sortable_by = ()
    ordering = ("-id",)  # UUIDv7: newest first, through the primary key
    inlines = [ReservationLineInline]
    actions = None

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(order_id=term), False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
