"""Suppliers, which supplier restocks which product, and purchase orders.

Models are plain: purchase orders are created, ordered, cancelled and received
through `purchasing.services`. The database guards the rules that matter under
concurrency: one preferred supplier per product, one open draft reorder PO per
supplier and warehouse, and at most one open reorder line per product and
warehouse (so two reorder checks running at once cannot order twice).
"""

from django.db import models
from django.db.models import F, Q


class Supplier(models.Model):
    name = models.CharField(max_length=200, unique=True)
    contact_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=50, blank=True)
    lead_time_min_days = models.PositiveIntegerField(
        default=3, help_text="Fewest days from ordering to arrival."
    )
    lead_time_max_days = models.PositiveIntegerField(
        default=5, help_text="Most days from ordering to arrival."
    )
    is_active = models.BooleanField(
        default=True, help_text="Inactive suppliers get no new reorder lines."
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(lead_time_min_days__lte=F("lead_time_max_days")),
                name="supplier_lead_time_min_lte_max",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ProductSupplier(models.Model):
    """A supplier that sells a product: its SKU for it and the pack size it ships in.

    A product may have several suppliers; the reorder job orders from the one
    marked preferred (at most one per product, enforced by a partial unique index).
    """

    product = models.ForeignKey(
        "inventory.Product", on_delete=models.CASCADE, related_name="supplier_links"
    )
    supplier = models.ForeignKey(Supplier, on_delete=models.CASCADE, related_name="product_links")
    supplier_sku = models.CharField(max_length=100, blank=True)
    pack_size = models.PositiveIntegerField(
        default=1, help_text="Units per pack; reorder quantities are rounded up to whole packs."
    )
    is_preferred = models.BooleanField(
        default=True, help_text="The supplier the reorder job orders this product from."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["product", "-is_preferred", "supplier"]
        constraints = [
            models.UniqueConstraint(fields=["product", "supplier"], name="product_supplier_unique"),
            models.UniqueConstraint(
                fields=["product"],
                condition=Q(is_preferred=True),
                name="product_supplier_one_preferred",
            ),
            models.CheckConstraint(
                condition=Q(pack_size__gte=1), name="product_supplier_pack_gte_1"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} from {self.supplier_id} (pack of {self.pack_size})"


class PurchaseOrderStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ORDERED = "ordered", "Ordered"
    PARTIALLY_RECEIVED = "partially_received", "Partially received"
    RECEIVED = "received", "Received"
    CANCELLED = "cancelled", "Cancelled"


OPEN_STATUSES = (
    PurchaseOrderStatus.DRAFT,
    PurchaseOrderStatus.ORDERED,
    PurchaseOrderStatus.PARTIALLY_RECEIVED,
)


class Origin(models.TextChoices):
    MANUAL = "manual", "Created by staff"
    REORDER = "reorder", "Created by the reorder job"


class PurchaseOrder(models.Model):
    number = models.CharField(max_length=32, unique=True, editable=False)
    supplier = models.ForeignKey(Supplier, on_delete=models.PROTECT, related_name="purchase_orders")
    warehouse = models.ForeignKey(
        "warehouses.Warehouse",
        on_delete=models.PROTECT,
        related_name="purchase_orders",
        help_text="Destination warehouse.",
    )
    status = models.CharField(
        max_length=20, choices=PurchaseOrderStatus.choices, default=PurchaseOrderStatus.DRAFT
    )
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.MANUAL)
    expected_arrival_date = models.DateField(null=True, blank=True)
    created_by = models.CharField(
        max_length=150, editable=False, help_text="user:<name> or system:reorder."
    )
    notes = models.TextField(blank=True)
    ordered_at = models.DateTimeField(null=True, blank=True, editable=False)
    received_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=PurchaseOrderStatus.values),
                name="purchase_order_status_valid",
            ),
            # The reorder job adds lines to one draft per supplier and warehouse;
            # concurrent checks racing to create it meet on this index.
            models.UniqueConstraint(
                fields=["supplier", "warehouse"],
                condition=Q(status=PurchaseOrderStatus.DRAFT, origin=Origin.REORDER),
                name="purchase_order_one_reorder_draft",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="purchase_order_status_time"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class PurchaseOrderLine(models.Model):
    """One product on a purchase order.

    `warehouse` repeats the order's destination and `is_open` says the line still
    awaits stock (order open, less received than ordered), so that the partial
    unique index below can be checked on this row alone. Services keep both in step.
    """

    purchase_order = models.ForeignKey(
        PurchaseOrder, on_delete=models.CASCADE, related_name="lines"
    )
    product = models.ForeignKey("inventory.Product", on_delete=models.PROTECT, related_name="+")
    warehouse = models.ForeignKey(
        "warehouses.Warehouse", on_delete=models.PROTECT, related_name="+", editable=False
    )
    quantity_ordered = models.PositiveIntegerField()
    quantity_received = models.PositiveIntegerField(default=0, editable=False)
    origin = models.CharField(
        max_length=10, choices=Origin.choices, default=Origin.MANUAL, editable=False
    )
    is_open = models.BooleanField(default=True, editable=False)
    # Closed short: the rest will not come (the supplier ran out, cancelled it).
    # No stock moves (the ledger is untouched); the line stops awaiting stock, and
    # who closed it, when and why are kept here (`purchase_order_receive(close_short=…)`).
    closed_short_at = models.DateTimeField(null=True, blank=True, editable=False)
    closed_short_by = models.CharField(max_length=150, blank=True, editable=False, db_default="")
    closed_short_reason = models.CharField(
        max_length=200, blank=True, editable=False, db_default=""
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["purchase_order", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["purchase_order", "product"], name="purchase_order_line_one_per_product"
            ),
            models.CheckConstraint(
                condition=Q(quantity_ordered__gt=0), name="purchase_order_line_qty_gt_0"
            ),
            # At most one open reorder line per product and warehouse: two reorder
            # checks (or a check and the daily batch) cannot both order.
            models.UniqueConstraint(
                fields=["product", "warehouse"],
                condition=Q(is_open=True, origin=Origin.REORDER),
                name="purchase_order_line_one_open_reorder",
            ),
        ]
        indexes = [
            # "Is this row already covered by an open order?" and the ETA lookup.
            models.Index(
                fields=["product", "warehouse"],
                condition=Q(is_open=True),
                name="po_line_open_product_wh",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity_ordered} x {self.product_id}"

    @property
    def quantity_outstanding(self) -> int:
        """Units still expected: none once the line is closed short."""
        if self.closed_short_at is not None:
            return 0
        return max(self.quantity_ordered - self.quantity_received, 0)

    @property
    def quantity_closed_short(self) -> int:
        """Units that will not come (closed short), else 0."""
        if self.closed_short_at is None:
            return 0
        return max(self.quantity_ordered - self.quantity_received, 0)


class PurchaseOrderReceipt(models.Model):
    """One delivery booked against a purchase order; `key` makes a repeat a no-op."""

    purchase_order = models.ForeignKey(
        PurchaseOrder, on_delete=models.PROTECT, related_name="receipts"
    )
    key = models.CharField(max_length=200, unique=True)
    fingerprint = models.CharField(max_length=64)
    lines = models.JSONField(help_text="{sku: quantity} received in this delivery.")
    transaction_ids = models.JSONField(default=list)
    allow_over_receipt = models.BooleanField(default=False)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.key} on {self.purchase_order_id}"
