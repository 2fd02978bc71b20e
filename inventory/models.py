"""Stock data: products, one inventory row per product and warehouse, the append-only
ledger, and reservations (what each order holds).

Models are plain: every change to stock goes through `inventory.services`. The
database guards the invariants itself (CHECK constraints, unique constraints and a
trigger that makes the ledger append-only), so a bug in Python cannot oversell.
"""

import uuid

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from uuid6 import uuid7

# A plain reservation line's "bundle" in the line's unique constraint (no bundle).
NO_BUNDLE = uuid.UUID(int=0)


class StockPolicy(models.TextChoices):
    NORMAL = "normal", "Normal (never below zero)"
    BACKORDER = "backorder", "Backorder allowed"
    PREORDER = "preorder", "Pre-order allowed"


class Product(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sku = models.CharField(
        max_length=64,
        unique=True,
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
                "Letters, digits and . _ / - only, starting with a letter or digit.",
            )
        ],
    )
    name = models.CharField(max_length=255)
    # What a scanner reads off the box (EAN/UPC/GTIN or an internal label); the
    # back office's scan inputs accept it wherever they accept the SKU.
    barcode = models.CharField(
        max_length=64,
        unique=True,
        null=True,
        blank=True,
        help_text="Barcode printed on the product (EAN, UPC, …); scans find the product by it.",
    )
    category = models.CharField(max_length=100, blank=True, db_index=True)
    weight_g = models.PositiveIntegerField(null=True, blank=True, help_text="Weight in grams.")
    length_mm = models.PositiveIntegerField(null=True, blank=True)
    width_mm = models.PositiveIntegerField(null=True, blank=True)
    height_mm = models.PositiveIntegerField(null=True, blank=True)
    stock_policy = models.CharField(
        max_length=16, choices=StockPolicy.choices, default=StockPolicy.NORMAL
    )
    backorder_limit = models.PositiveIntegerField(
        default=0,
        help_text=(
            "How far below zero availability may go in each warehouse for backorder "
            "and pre-order SKUs. Always 0 for normal SKUs."
        ),
    )
    # A bundle (kit) has components (BundleComponent) and no stock rows of its own.
    is_bundle = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(stock_policy=StockPolicy.NORMAL) | Q(backorder_limit=0),
                name="product_normal_has_no_backorder_limit",
            ),
            models.CheckConstraint(
                condition=Q(stock_policy__in=StockPolicy.values),
                name="product_stock_policy_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} — {self.name}"

    @property
    def allowance(self) -> int:
        """Units availability may go below zero per warehouse (0 for normal SKUs)."""
        return policy_allowance(self.stock_policy, self.backorder_limit)


def policy_allowance(stock_policy: str, backorder_limit: int) -> int:
    """The backorder allowance a stock policy gives each warehouse's row: 0 for
    normal SKUs, else the product's backorder limit. The one rule: in SQL it is
    `policy_allowance_sql` (and the row trigger in inventory/sql/allowance_from_product.sql)."""
    return 0 if stock_policy == StockPolicy.NORMAL else backorder_limit


def policy_allowance_sql(product: str = "p") -> str:
    """`policy_allowance` as an SQL expression over the product table alias `product`."""
    return (
        f"(CASE WHEN {product}.stock_policy = '{StockPolicy.NORMAL.value}' THEN 0 "
        f"ELSE {product}.backorder_limit END)"
    )


class BundleComponent(models.Model):
    """One component of a bundle (kit): `quantity` units of `component` per bundle unit.

    A bundle (`Product.is_bundle`) has no stock rows of its own; its availability is
    derived from its components' rows and an order line for it reserves the components
    (docs/ARCHITECTURE.md, "Bundles"). Components are never bundles themselves."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    bundle = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="components")
    component = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="in_bundles")
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1)])

    class Meta:
        ordering = ["bundle", "component"]
        constraints = [
            models.UniqueConstraint(fields=["bundle", "component"], name="bundle_component_unique"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="bundle_component_qty_gt_0"),
            models.CheckConstraint(
                condition=~Q(bundle=F("component")), name="bundle_component_not_itself"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.component_id} in {self.bundle_id}"


class Inventory(models.Model):
    """Stock of one product in one warehouse.

    States (issue #15, docs/ARCHITECTURE.md "Stock states"): `on_hand` is every
    unit physically here; of it, `damaged` and `quality_control` are units that
    cannot be sold; `reserved` is what open orders hold; `safety_stock` is a
    setting (like the reorder threshold, not a ledger quantity): units kept
    back from sale. `available` is a stored generated column, the **sellable**
    figure on hand - reserved - safety_stock - damaged - quality_control, so it
    cannot drift. `backorder_allowance` is copied from the product so that a
    CHECK constraint on this row alone can refuse an oversold row.

    Guards (CHECK): every state >= 0; damaged + quality_control <= on_hand; and
    the good units on hand (on hand - damaged - quality control) minus reserved
    >= -backorder allowance. Safety stock is not in that CHECK (it is a
    setting that may exceed what is here: sellable then reads 0); the reserve
    paths (both engines, under the row lock) keep it back: a reservation is
    accepted only while `available` stays >= -backorder allowance, so neither
    sales nor backorders eat safety stock.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by the (product, warehouse) unique constraint and the
    # (warehouse, product) index below, not by separate single-column indexes.
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, related_name="inventory", db_index=False
    )
    warehouse = models.ForeignKey(
        "warehouses.Warehouse", on_delete=models.PROTECT, related_name="inventory", db_index=False
    )
    on_hand = models.BigIntegerField(default=0, editable=False)
    reserved = models.BigIntegerField(default=0, editable=False)
    # Database defaults: raw inserts (row creation, bulk loads) leave them out.
    damaged = models.BigIntegerField(default=0, db_default=0, editable=False)
    quality_control = models.BigIntegerField(default=0, db_default=0, editable=False)
    safety_stock = models.PositiveIntegerField(
        default=0,
        db_default=0,
        validators=[MinValueValidator(0)],
        help_text="Units kept back from sale in this warehouse (a setting, not a ledger quantity).",
    )
    available = models.GeneratedField(
        expression=F("on_hand")
        - F("reserved")
        - F("safety_stock")
        - F("damaged")
        - F("quality_control"),
        output_field=models.BigIntegerField(),
        db_persist=True,
    )
    backorder_allowance = models.PositiveIntegerField(default=0, editable=False)
    reorder_threshold = models.PositiveIntegerField(default=0, validators=[MinValueValidator(0)])
    reorder_quantity = models.PositiveIntegerField(default=0, validators=[MinValueValidator(0)])
    # Set by the back office's cycle count (backoffice.services.cycle_count_apply):
    # the start page lists rows due a count (Warehouse.count_every_days).
    last_counted_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Bumped on every stock change: a monotonic version for caches and
    # optimistic checks (compare-and-set in cycle counts).
    version = models.BigIntegerField(default=0, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "inventory"
        constraints = [
            models.UniqueConstraint(
                fields=["product", "warehouse"], name="inventory_product_warehouse_unique"
            ),
            models.CheckConstraint(condition=Q(on_hand__gte=0), name="inventory_on_hand_gte_0"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="inventory_reserved_gte_0"),
            models.CheckConstraint(
                condition=Q(
                    on_hand__gte=F("reserved")
                    + F("damaged")
                    + F("quality_control")
                    - F("backorder_allowance")
                ),
                name="inventory_available_within_allowance",
            ),
            models.CheckConstraint(condition=Q(damaged__gte=0), name="inventory_damaged_gte_0"),
            models.CheckConstraint(
                condition=Q(quality_control__gte=0), name="inventory_quality_control_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(on_hand__gte=F("damaged") + F("quality_control")),
                name="inventory_unsellable_within_on_hand",
            ),
        ]
        indexes = [
            models.Index(fields=["warehouse", "product"], name="inventory_warehouse_product"),
            # Counts due, oldest first, per warehouse (never counted first): the
            # index inventory_count_due (warehouse, last_counted_at NULLS FIRST,
            # product) is created by migration 0014 on PostgreSQL only.
            # Reorder scans (good units on hand below the reorder threshold,
            # the design's rule; good = on hand - damaged - quality control,
            # issue #15): only such rows are in it, so it stays small however
            # many rows there are. On hand, not available: reservations change
            # only `reserved`, which no index mentions, so they stay HOT
            # updates (docs/BULK.md, "Indexes").
            models.Index(
                fields=["warehouse", "product"],
                condition=Q(
                    on_hand__lt=F("reorder_threshold") + F("damaged") + F("quality_control")
                ),
                name="inventory_below_threshold",
            ),
        ]

    def __str__(self) -> str:
        # "SKU @ CODE" when product and warehouse are loaded (the admin selects them);
        # never a query of its own.
        cache = self._state.fields_cache
        if "product" in cache and "warehouse" in cache:
            return f"{self.product.sku} @ {self.warehouse.code}"
        return f"{self.product_id} @ {self.warehouse_id}"


class TransactionType(models.TextChoices):
    RECEIVE = "RECEIVE"
    RESERVE = "RESERVE"
    RELEASE = "RELEASE"
    FULFILL = "FULFILL"
    ADJUST = "ADJUST"
    TRANSFER = "TRANSFER"
    # Stock states (issue #15): MOVE changes only damaged / quality_control
    # (units between sellable and an unsellable state, or between those two;
    # the deltas say which); WRITE_OFF takes units out of on hand from a state;
    # RETURN brings units back onto on hand, into the state the dock chose.
    MOVE = "MOVE"
    WRITE_OFF = "WRITE_OFF"
    RETURN = "RETURN"


class ReferenceType(models.TextChoices):
    ORDER = "order", "Order"
    PURCHASE_ORDER = "purchase_order", "Purchase order"
    TRANSFER = "transfer", "Transfer"
    CYCLE_COUNT = "cycle_count", "Cycle count"
    IMPORT = "import", "Import"
    MANUAL = "manual", "Manual"
    RETURN = "return", "Return"


class AppendOnlyError(Exception):
    """Raised when code tries to change or delete a ledger row."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("The inventory ledger is append-only: rows cannot be updated.")

    def delete(self):
        raise AppendOnlyError("The inventory ledger is append-only: rows cannot be deleted.")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError("The inventory ledger is append-only: rows cannot be updated.")


class InventoryTransaction(models.Model):
    """One row of the append-only stock ledger.

    Deltas are signed changes to on hand and reserved; the `*_after` columns are
    the row's balances right after this change, so any balance can be audited
    at any point in time. A PostgreSQL trigger rejects UPDATE and DELETE.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # Indexed by ledger_product_time / ledger_warehouse_time (which start with
    # these columns), not by single-column indexes: the ledger is the biggest
    # table and every index costs every insert.
    # No single-column foreign keys either: on PostgreSQL one composite key,
    # ledger_inventory_row_fk (product_id, warehouse_id) -> the inventory row,
    # checks both at once against the row the writing transaction holds locked
    # (migration 0006). It also keeps products, warehouses and stock rows with
    # history from being deleted.
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    warehouse = models.ForeignKey(
        "warehouses.Warehouse",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    type = models.CharField(max_length=10, choices=TransactionType.choices)
    on_hand_delta = models.IntegerField(default=0)
    reserved_delta = models.IntegerField(default=0)
    # Per-state deltas (issue #15): the sums of these equal the row's damaged and
    # quality_control, as on_hand_delta's sum equals on_hand. A database default,
    # so the SQL functions' inserts (which never change states) leave them out.
    damaged_delta = models.IntegerField(default=0, db_default=0)
    quality_control_delta = models.IntegerField(default=0, db_default=0)
    on_hand_after = models.BigIntegerField()
    reserved_after = models.BigIntegerField()
    reference_type = models.CharField(max_length=32, choices=ReferenceType.choices, blank=True)
    reference_id = models.CharField(max_length=100, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    created_by = models.CharField(
        max_length=150, help_text="Who made the change: user:<name>, client:<name> or system:<job>."
    )
    request_id = models.CharField(max_length=64, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["product", "-created_at"], name="ledger_product_time"),
            models.Index(fields=["warehouse", "-created_at"], name="ledger_warehouse_time"),
            models.Index(fields=["reference_type", "reference_id"], name="ledger_reference"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(type__in=TransactionType.values), name="ledger_type_valid"
            ),
            models.CheckConstraint(
                condition=~Q(on_hand_delta=0)
                | ~Q(reserved_delta=0)
                | ~Q(damaged_delta=0)
                | ~Q(quality_control_delta=0),
                name="ledger_changes_something",
            ),
        ]

    def __str__(self) -> str:
        cache = self._state.fields_cache
        if "product" in cache and "warehouse" in cache:
            return (
                f"{self.type} {self.on_hand_delta:+} {self.product.sku} @ {self.warehouse.code}, "
                f"{self.created_at:%Y-%m-%d %H:%M}"
            )
        return f"{self.type} {self.on_hand_delta:+}/{self.reserved_delta:+} ({self.id})"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("The inventory ledger is append-only: rows cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("The inventory ledger is append-only: rows cannot be deleted.")


class ReservationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    RELEASED = "released", "Released"
    FULFILLED = "fulfilled", "Fulfilled"
    EXPIRED = "expired", "Expired"


class Reservation(models.Model):
    """The stock one order holds; lines say exactly what, where and how much."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # Unique through reservation_order_id_unique (a constraint, not unique=True,
    # which would add a LIKE index every reservation would pay for).
    order_id = models.CharField(max_length=100)
    status = models.CharField(
        max_length=10, choices=ReservationStatus.choices, default=ReservationStatus.ACTIVE
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    # When and by whom the hold was last confirmed (POST .../confirm/: a payment
    # arrived); a confirm clears or extends `expires_at` and writes no ledger row.
    # The database default lets the reserve function's INSERT leave them out.
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmed_by = models.CharField(max_length=150, blank=True, default="", db_default="")
    # Hash of the normalised requested lines: a retry with the same lines is
    # recognised as the same request, different lines as a conflict.
    request_fingerprint = models.CharField(max_length=64)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["order_id"], name="reservation_order_id_unique"),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"],
                condition=Q(status="active", expires_at__isnull=False),
                name="reservation_active_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"order {self.order_id} ({self.status})"


class ReservationLine(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # Indexed by reservation_line_unique_row, which starts with it.
    reservation = models.ForeignKey(
        Reservation, on_delete=models.CASCADE, related_name="lines", db_index=False
    )
    inventory = models.ForeignKey(
        Inventory, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    # Copies of the inventory row's product and warehouse, written from the
    # locked row: `inventory` is the foreign key; these carry no constraint or
    # index of their own (each cost every reserved order a check; migration 0006).
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    warehouse = models.ForeignKey(
        "warehouses.Warehouse",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    quantity = models.PositiveIntegerField()
    quantity_fulfilled = models.PositiveIntegerField(default=0)
    quantity_released = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=10, choices=ReservationStatus.choices, default=ReservationStatus.ACTIVE
    )
    # Set on a component's line when it was reserved for an order line of a bundle
    # (`product` is then the component): release and fulfil by the bundle SKU act on
    # these lines. Null for a line of a plain SKU.
    bundle = models.ForeignKey(
        Product,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        db_index=False,
        db_constraint=False,
    )

    class Meta:
        ordering = ["reservation", "id"]
        constraints = [
            # One line per row and bundle (a plain line's "bundle" the nil UUID):
            # an order may hold a component for a bundle and the same component
            # sold alone, or for two bundles, on one row (issue #16, migration 0019).
            models.UniqueConstraint(
                F("reservation"),
                F("inventory"),
                Coalesce(F("bundle"), Value(NO_BUNDLE), output_field=models.UUIDField()),
                name="reservation_line_unique_row",
            ),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="reservation_line_qty_gt_0"),
            models.CheckConstraint(
                condition=Q(quantity__gte=F("quantity_fulfilled") + F("quantity_released")),
                name="reservation_line_not_overclosed",
            ),
        ]
        indexes = [
            models.Index(
                fields=["inventory"],
                condition=Q(status="active"),
                name="reservation_line_active_row",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_id} @ {self.warehouse_id}"

    @property
    def quantity_open(self) -> int:
        """Units this line still holds (reserved, neither fulfilled nor released)."""
        return self.quantity - self.quantity_fulfilled - self.quantity_released


class StockState(models.TextChoices):
    """The states a unit on hand can be in (`stock_move_state`'s from / to)."""

    SELLABLE = "sellable", "Sellable"
    DAMAGED = "damaged", "Damaged"
    QUALITY_CONTROL = "quality_control", "Quality control"


class ReturnDisposition(models.TextChoices):
    """Where a returned unit goes: back to sellable stock, into an unsellable
    state, or nowhere (dispose: recorded on the return, no stock change)."""

    RESTOCK = "restock", "Restock (sellable)"
    DAMAGED = "damaged", "Damaged"
    QUALITY_CONTROL = "quality_control", "Quality control"
    DISPOSE = "dispose", "Dispose (not restocked)"


class Return(models.Model):
    """A customer return as the dock recorded it (`services.stock_return`).

    Idempotent by the client's `return_id`: a retry with the same lines replays,
    other lines are a conflict. Its stock changes are RETURN ledger rows with
    reference (return, return_id)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    return_id = models.CharField(max_length=100, unique=True)
    reason = models.TextField(blank=True)
    request_fingerprint = models.CharField(max_length=64)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"return {self.return_id}"


class ReturnLine(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    return_record = models.ForeignKey(Return, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    warehouse = models.ForeignKey(
        "warehouses.Warehouse", on_delete=models.PROTECT, related_name="+"
    )
    quantity = models.PositiveIntegerField()
    disposition = models.CharField(max_length=16, choices=ReturnDisposition.choices)
    # The order the units were shipped on ('' = unknown): then the line is
    # bounded by what was fulfilled for the SKU on that order, minus earlier returns.
    order_id = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        ordering = ["return_record", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="return_line_qty_gt_0"),
            models.CheckConstraint(
                condition=Q(disposition__in=ReturnDisposition.values),
                name="return_line_disposition_valid",
            ),
        ]
        indexes = [
            models.Index(
                fields=["order_id", "product"],
                condition=~Q(order_id=""),
                name="return_line_order_product",
            )
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_id} -> {self.disposition}"


class TransferStatus(models.TextChoices):
    SHIPPED = "shipped", "Shipped (in transit)"
    RECEIVED = "received", "Received"
    RECEIVED_SHORT = "received_short", "Received short"


class Transfer(models.Model):
    """A transfer between warehouses in two steps (issue #15, `services.transfers`).

    *Ship* takes the units off the source's on hand (TRANSFER ledger rows at the
    source); while the transfer is `shipped` they are in transit and count as
    `incoming` at the destination, expected on `expected_date`. *Receive* puts
    them on the destination's on hand (TRANSFER rows), and units that did not
    arrive are written off there (WRITE_OFF rows, `receive_reason`). Every
    ledger row has reference (transfer, transfer_id). Idempotent by the
    client's `transfer_id`."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    transfer_id = models.CharField(max_length=100, unique=True)
    source = models.ForeignKey(
        "warehouses.Warehouse", on_delete=models.PROTECT, related_name="transfers_out"
    )
    destination = models.ForeignKey(
        "warehouses.Warehouse", on_delete=models.PROTECT, related_name="transfers_in"
    )
    status = models.CharField(
        max_length=16, choices=TransferStatus.choices, default=TransferStatus.SHIPPED
    )
    expected_date = models.DateField(null=True, blank=True)
    reason = models.TextField(blank=True)
    shipped_by = models.CharField(max_length=150)
    shipped_at = models.DateTimeField(auto_now_add=True, db_index=True)
    received_by = models.CharField(max_length=150, blank=True, default="")
    received_at = models.DateTimeField(null=True, blank=True)
    receive_reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-shipped_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=TransferStatus.values), name="transfer_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(source=F("destination")), name="transfer_source_not_destination"
            ),
        ]
        indexes = [
            # Transfers in transit, per destination (incoming, the reorder rule).
            models.Index(
                fields=["destination"],
                condition=Q(status="shipped"),
                name="transfer_in_transit",
            ),
        ]

    def __str__(self) -> str:
        return f"transfer {self.transfer_id} ({self.status})"


class TransferLine(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    transfer = models.ForeignKey(Transfer, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    quantity_shipped = models.PositiveIntegerField()
    # Set on receipt: what arrived; shipped - received was written off.
    quantity_received = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["transfer", "id"]
        constraints = [
            models.UniqueConstraint(fields=["transfer", "product"], name="transfer_line_unique"),
            models.CheckConstraint(
                condition=Q(quantity_shipped__gt=0), name="transfer_line_shipped_gt_0"
            ),
            models.CheckConstraint(
                condition=Q(quantity_received__isnull=True)
                | Q(quantity_received__lte=F("quantity_shipped")),
                name="transfer_line_received_within_shipped",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity_shipped} x {self.product_id}"

    @property
    def quantity_short(self) -> int:
        if self.quantity_received is None:
            return 0
        return self.quantity_shipped - self.quantity_received


class AppliedOperation(models.Model):
    """Idempotency record: one row per applied operation key, with its result.

    Inserted in the same transaction as the change it records, so a key is
    present exactly when its effect is committed.
    """

    # Looked up by equality only: migration 0024 dropped the `varchar_pattern_ops`
    # twin PostgreSQL gets for an indexed CharField (an AlterField would recreate it).
    key = models.CharField(max_length=200, primary_key=True)
    operation = models.CharField(max_length=32)
    fingerprint = models.CharField(max_length=64)
    result = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return self.key


class AllowanceCorrection(models.Model):
    """Audit trail of a stock row's backorder allowance set back to its product's
    policy by `reconcile --fix` (who, why, from what to what, when).

    The ledger records balance changes only (every ledger row changes on hand or
    reserved); an allowance is no balance, so its corrections are kept here.
    Append-only by convention: nothing updates or deletes these rows.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    inventory = models.ForeignKey(Inventory, on_delete=models.PROTECT, related_name="+")
    old_allowance = models.PositiveIntegerField()
    new_allowance = models.PositiveIntegerField()
    stock_policy = models.CharField(max_length=16)
    reference_id = models.CharField(max_length=100)
    reason = models.TextField()
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"allowance {self.old_allowance} -> {self.new_allowance} ({self.inventory_id})"


class LedgerCheckpoint(models.Model):
    """A ledger position with every stock row's balances summed up to it (issue #21).

    `position` is a `created_at` boundary: the balances in its `BalanceCheckpoint`
    rows are the sums of every ledger row with `created_at < position` (the
    previous checkpoint's balances plus the ledger between the two positions),
    never copied from the inventory rows, so a drift present when a checkpoint
    is taken stays visible to `reconcile` afterwards. Reconcile reads the newest
    checkpoint plus the ledger since its position (docs/SCALING_LEDGER.md).
    """

    position = models.DateTimeField(unique=True)
    taken_at = models.DateTimeField(auto_now_add=True)
    stock_rows = models.PositiveIntegerField(default=0)
    ledger_rows_read = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-position"]

    def __str__(self) -> str:
        return f"checkpoint at {self.position:%Y-%m-%d %H:%M:%S}"


class BalanceCheckpoint(models.Model):
    """One stock row's balances (by product and warehouse, as the ledger keys them)
    summed from the ledger up to its checkpoint's position."""

    checkpoint = models.ForeignKey(
        LedgerCheckpoint, on_delete=models.CASCADE, related_name="balances", db_index=False
    )
    product = models.ForeignKey(
        Product, on_delete=models.DO_NOTHING, related_name="+", db_index=False, db_constraint=False
    )
    warehouse = models.ForeignKey(
        "warehouses.Warehouse",
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    on_hand = models.BigIntegerField()
    reserved = models.BigIntegerField()
    damaged = models.BigIntegerField()
    quality_control = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["checkpoint", "product", "warehouse"], name="balance_checkpoint_row"
            )
        ]

    def __str__(self) -> str:
        return f"{self.product_id}@{self.warehouse_id}: {self.on_hand}/{self.reserved}"


class LedgerArchive(models.Model):
    """A ledger partition detached and written to a compressed file by
    `archive_ledger_partitions` (and, once `restore_ledger_partition` has run,
    when it came back). The record of every partition that left the database."""

    partition = models.CharField(max_length=63)
    lower = models.DateTimeField()
    upper = models.DateTimeField()
    rows = models.BigIntegerField()
    path = models.TextField()
    sha256 = models.CharField(max_length=64)
    archived_at = models.DateTimeField(auto_now_add=True)
    restored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-lower"]

    def __str__(self) -> str:
        return f"{self.partition} ({self.rows} rows) -> {self.path}"
