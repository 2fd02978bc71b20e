"""Admin for stock: products, inventory rows, the ledger and reservations.

The admin is one more interface over the services: nothing here writes
on hand or reserved. Inventory rows only take reorder settings; the ledger and
reservations are read-only for everyone, superusers included. Lists are built
for millions of rows: no full COUNT(*) (`EstimatedCountPaginator`,
`show_full_result_count = False`), related rows joined in the same query,
exact-SKU search through the unique index, filters and ordering on indexed
columns only (`sortable_by = ()` on the big tables).
"""

import csv
import io
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ORDER_VAR, ChangeList
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from inventory import errors, services
from inventory.models import (
    BundleComponent,
    Inventory,
    InventoryTransaction,
    Product,
    ReferenceType,
    Reservation,
    ReservationLine,
    StockPolicy,
)
from inventory_site.db_router import read_alias, replica_reads

from ..access import warehouse_codes_for
from ..listing import (
    DateRangeFilter,
    EstimatedCountPaginator,
    ProductSkuSearchMixin,
    table_row_estimate,
)
from ..selectors import below_threshold_rows, product_search_condition, product_stock_history


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
            "barcode",
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


class BundleComponentFormSet(forms.BaseInlineFormSet):
    """A bundle's components (issue #16). Checked by the service's own rules
    (`bundle_check_components`) before anything is saved, and saved by the
    service (`bundle_set_components`), never by the formset itself. A post
    without the inline's management form (a client that only edits the product's
    fields) leaves the composition alone."""

    def __init__(self, data=None, *args, **kwargs):
        prefix = kwargs.get("prefix") or self.get_default_prefix()
        self.absent = data is not None and f"{prefix}-TOTAL_FORMS" not in data
        super().__init__(None if self.absent else data, *args, **kwargs)

    def is_valid(self):
        return True if self.absent else super().is_valid()

    def components(self) -> list[dict]:
        return [
            {"sku": f.cleaned_data["component"].sku, "quantity": f.cleaned_data["quantity"]}
            for f in self.forms
            if f.cleaned_data
            and f.cleaned_data.get("component")
            and not self._should_delete_form(f)
        ]

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        try:
            services.bundle_check_components(product=self.instance, components=self.components())
        except errors.InventoryError as exc:
            problems = exc.details.get("components") if isinstance(exc.details, dict) else None
            if isinstance(problems, dict):
                detail = "; ".join(f"{sku}: {' '.join(msgs)}" for sku, msgs in problems.items())
                raise forms.ValidationError(f"{exc.message} {detail}") from exc
            raise forms.ValidationError(exc.message) from exc


class BundleComponentInline(admin.TabularInline):
    model = BundleComponent
    fk_name = "bundle"
    formset = BundleComponentFormSet
    fields = ("component", "quantity")
    autocomplete_fields = ("component",)
    extra = 0
    verbose_name = "bundle component"
    verbose_name_plural = (
        "Bundle components (a product with components is a bundle: no stock of its own; "
        "unchangeable while open reservations hold it)"
    )

    # The composition is part of the product: whoever may change products may
    # edit it (removing a component row deletes no stock data), whoever may
    # view products sees it. No role needs BundleComponent permissions of its own.
    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("inventory.view_product")

    def has_add_permission(self, request, obj=None):
        return request.user.has_perm("inventory.change_product")

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("inventory.change_product")

    def has_delete_permission(self, request, obj=None):
        return request.user.has_perm("inventory.change_product")


@admin.register(Product)
class ProductAdmin(BigTableAdmin):
    form = ProductAdminForm
    inlines = [BundleComponentInline]
    list_display = ("sku", "name", "category", "stock_policy", "backorder_limit", "updated_at")
    list_filter = (CategoryFilter, "stock_policy")
    # Also what autocomplete pickers search (type part of a SKU or name).
    search_fields = ("sku", "name", "=barcode")
    search_help_text = "SKU (exact or part), part of the name, or barcode."
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

    def save_related(self, request, form, formsets, change):
        form.save_m2m()
        for formset in formsets:
            if not isinstance(formset, BundleComponentFormSet):
                self.save_formset(request, form, formset, change=change)
                continue
            # The composition goes through the service (locks, guards, cache).
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
            if formset.absent:
                continue
            try:
                with transaction.atomic():
                    services.bundle_set_components(
                        product=form.instance, components=formset.components()
                    )
            except errors.InventoryError as exc:
                self.message_user(request, f"Components not changed: {exc.message}", messages.ERROR)

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


class WarehouseFilter(admin.SimpleListFilter):
    """Warehouse, defaulting to "my warehouses" for staff who work at some (not all)."""

    title = "warehouse"
    parameter_name = "warehouse"
    MINE, EVERY = "mine", "all"

    def lookups(self, request, model_admin):
        from warehouses.models import Warehouse

        choices = []
        if warehouse_codes_for(request.user) is not None:
            choices.append((self.MINE, "My warehouses"))
        choices.append((self.EVERY, "Every warehouse"))
        return choices + [(code, code) for code in Warehouse.objects.values_list("code", flat=True)]

    def value(self):
        value = super().value()
        if value is None and self.restricted:
            return self.MINE
        return value

    def __init__(self, request, params, model, model_admin):
        self.restricted = warehouse_codes_for(request.user) is not None
        self.codes = warehouse_codes_for(request.user) or frozenset()
        super().__init__(request, params, model, model_admin)

    def choices(self, changelist):
        # No unnamed "All": "Every warehouse" says what it is, "My warehouses" is the
        # default for restricted staff.
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == str(lookup)
                or (self.value() is None and lookup == self.EVERY),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}, ["p"]),
                "display": title,
            }

    def queryset(self, request, queryset):
        from warehouses.models import Warehouse

        value = self.value()
        if value == self.MINE:
            codes = self.codes
        elif value and value != self.EVERY:
            codes = {value}
        else:
            return queryset
        # Warehouse ids, not a join on the code: the (warehouse, product) index then
        # gives the list its order and the first page without a sort.
        ids = list(Warehouse.objects.filter(code__in=codes).values_list("pk", flat=True))
        return queryset.filter(warehouse_id__in=ids)


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
            # The start page's rule (selectors.below_threshold_rows, indexed).
            return queryset.filter(pk__in=below_threshold_rows().values("pk"))
        if self.value() == "out_of_stock":
            return queryset.filter(available__lte=0)
        return queryset


# The columns of `manage.py export_inventory` (inventory.services.inventory_export_csv);
# tests/admin/test_finding_stock.py checks they stay the same.
EXPORT_COLUMNS = (
    "sku",
    "warehouse",
    "quantity",
    "reserved",
    "available",
    "reorder_threshold",
    "reorder_quantity",
    "version",
    "safety_stock",
    "damaged",
    "quality_control",
)


# Column sorting is a sort of every row listed (no index holds on hand or available:
# they would cost reservations their HOT updates): allowed up to this many rows.
SORT_MAX_ROWS = 10_000


class SortWhenNarrowChangeList(ChangeList):
    """Sorts by a column only when the list holds at most SORT_MAX_ROWS rows; else the
    index order, and a message saying to narrow it."""

    def get_ordering(self, request, queryset):
        if ORDER_VAR in self.params:
            # The whole table: PostgreSQL's estimate; a narrowed list: a bounded count
            # (the planner's guess for a search is too rough to refuse on).
            # Django orders before it applies the search: count the searched rows.
            listed, _ = self.model_admin.get_search_results(request, queryset, self.query)
            rows = None
            if not listed.query.where:
                rows = table_row_estimate(listed.model, listed.db)
            if rows is None:
                rows = listed.order_by()[: SORT_MAX_ROWS + 1].count()
            if rows > SORT_MAX_ROWS:
                messages.info(
                    request,
                    f"More than {SORT_MAX_ROWS:,} rows: search or filter (warehouse, stock) "
                    f"to {SORT_MAX_ROWS:,} or fewer to sort by a column.",
                )
                return [*self.model_admin.ordering, "pk"]
        return super().get_ordering(request, queryset)


@admin.register(Inventory)
class InventoryAdmin(BigTableAdmin):
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
    list_filter = (WarehouseFilter, StockStatusFilter)
    search_fields = ("product__sku",)
    search_help_text = (
        "SKU or its beginning (any case), barcode, or part of the product name. "
        "Export CSV downloads the rows listed (every page)."
    )
    sortable_by = ("sku", "warehouse_code", "on_hand", "reserved", "available", "updated_at")
    ordering = ("warehouse_id", "product_id")  # the (warehouse, product) index
    change_list_template = "backoffice/inventory_change_list.html"
    fields = (
        "product",
        "warehouse",
        ("on_hand", "reserved", "available"),
        ("damaged", "quality_control"),
        "backorder_allowance",
        ("reorder_threshold", "reorder_quantity", "safety_stock"),
        "version",
        "last_counted_at",
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
        "last_counted_at",
        "updated_at",
        "stock_links",
    )

    @admin.display(description="SKU", ordering="product__sku")
    def sku(self, row):
        return row.product.sku

    @admin.display(description="product")
    def product_name(self, row):
        return row.product.name

    @admin.display(description="warehouse", ordering="warehouse__code")
    def warehouse_code(self, row):
        return row.warehouse.code

    def get_changelist(self, request, **kwargs):
        return SortWhenNarrowChangeList

    def get_search_results(self, request, queryset, search_term):
        """An exact SKU (any case) through the unique index; else SKU prefix (any case),
        barcode or part of the name (`selectors.product_search_condition`, indexed)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        exact = Product.objects.filter(sku__in={term, term.upper()}).values("pk")
        if exact.exists():
            return queryset.filter(product_id__in=exact), False
        matching = Product.objects.filter(product_search_condition(term)).values("pk")
        return queryset.filter(product_id__in=matching), False

    def get_object(self, request, object_id, from_field=None):
        # Product and warehouse joined: the page title reads "SKU @ CODE".
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj.product, obj.warehouse = obj.product, obj.warehouse
        return obj

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("product", "warehouse")

    def get_urls(self):
        return [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_view),
                name="inventory_inventory_export",
            ),
            *super().get_urls(),
        ]

    def export_view(self, request):
        """The rows the list shows (search, filters, ordering; every page) as CSV, streamed,
        with `export_inventory`'s columns."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        with replica_reads():  # the replica when fresh enough, chosen once for the stream
            using = read_alias()
        rows = (
            changelist.get_queryset(request)
            .using(using)
            .values_list(
                "product__sku",
                "warehouse__code",
                "on_hand",
                "reserved",
                "available",
                "reorder_threshold",
                "reorder_quantity",
                "version",
                "safety_stock",
                "damaged",
                "quality_control",
            )
        )

        def lines():
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(EXPORT_COLUMNS)
            for index, row in enumerate(rows.iterator(chunk_size=2000)):
                writer.writerow(row)
                if index % 500 == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="inventory-{stamp}.csv"'
        return response

    @admin.display(description="see also")
    def stock_links(self, row):
        return format_html(
            '<a href="{}">Product page and chart</a> · <a href="{}?q={}">Ledger</a> · '
            '<a href="{}?row={}&amp;from={}">Move between sellable, damaged and quality '
            "control…</a>",
            reverse("admin:inventory_product_change", args=[row.product_id]),
            reverse("admin:inventory_inventorytransaction_changelist"),
            row.product.sku,
            reverse("admin:backoffice_state_move"),
            row.pk,
            "quality_control" if row.quality_control else "sellable",
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
        "state_change",
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

    @admin.display(description="Δ damaged / QC")
    def state_change(self, txn):
        """The per-state deltas of MOVE, WRITE_OFF and RETURN rows (issue #15)."""
        parts = [
            f"{label} {delta:+}"
            for label, delta in (("damaged", txn.damaged_delta), ("QC", txn.quality_control_delta))
            if delta
        ]
        return ", ".join(parts) or "—"

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
