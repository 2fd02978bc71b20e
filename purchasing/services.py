"""Purchasing writes: reorder checks, the daily reorder batch, PO status changes, receiving.

Every function here is keyword-only and runs in one transaction (joining the
caller's if there is one). Stock itself only changes through
`inventory.services.stock_receive`, called by `purchase_order_receive`.

The reorder rule (the same for the per-row check and the daily batch): an
inventory row needs stock when `reorder_threshold > 0`, `reorder_quantity > 0`
and its good units (on hand - damaged - quality control: what can still be sold,
issue #15), plus the units in transit to it on two-step transfers (shipped, not
yet received: they count as incoming), are below `reorder_threshold`, its
warehouse is active, the product has a
preferred supplier that is active, and no open purchase-order line (manual or
reorder) already covers that product in that warehouse. It then gets one line
for `reorder_quantity` rounded up to whole packs, on the one draft reorder PO of
its supplier and warehouse (created if missing). The database refuses a second
open reorder line for the same product and warehouse, so concurrent checks and
the batch cannot order twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from inventory import errors as stock_errors
from inventory import services as stock_services
from inventory.actors import SYSTEM_REORDER
from inventory.models import Inventory, InventoryTransaction, ReferenceType
from inventory.selectors import in_transit_for_products
from inventory.services import retry_busy

from . import errors
from .models import (
    OPEN_STATUSES,
    Origin,
    ProductSupplier,
    PurchaseOrder,
    PurchaseOrderLine,
    PurchaseOrderReceipt,
    PurchaseOrderStatus,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------
# Inputs and results
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptLine:
    sku: str
    quantity: int


@dataclass
class ReceiptResult:
    """A booked delivery. `replayed` is True when the same receipt was booked before."""

    purchase_order: PurchaseOrder
    receipt: PurchaseOrderReceipt
    transactions: list[InventoryTransaction]
    replayed: bool = False


@dataclass
class ReorderBatchResult:
    chunks: int = 0
    candidates: int = 0
    orders_created: int = 0
    lines_created: int = 0
    seconds: float = 0.0


def packs_rounded_up(quantity: int, pack_size: int) -> int:
    """`quantity` rounded up to whole packs of `pack_size` (the batch SQL does the same)."""
    return -(-quantity // pack_size) * pack_size


# `PO-` and at least six digits (PO-999999 is followed by PO-1000000), from the
# SQL function of migration 0003 over one sequence, which the daily batch's SQL
# calls too. One call takes one number.
PO_NUMBER_SQL = "purchasing_next_po_number()"


def new_purchase_order_number() -> str:
    """The next purchase-order number: PO-000001, PO-000002, …, PO-999999,
    PO-1000000, … (gaps where a transaction rolled back; never a repeat)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {PO_NUMBER_SQL}")
            return cursor.fetchone()[0]
    # SQLite (the embedded single-user default): no sequences; the unique
    # constraint refuses a number taken meanwhile.
    return f"PO-{PurchaseOrder.objects.count() + 1:06d}"


# --------------------------------------------------------------------------
# Reorder: one row
# --------------------------------------------------------------------------


def _reorder_draft(*, supplier_id: int, warehouse_id: uuid.UUID) -> PurchaseOrder:
    """The open draft reorder PO of a supplier and warehouse, locked; created if missing.

    Locked (FOR NO KEY UPDATE) so that a line is never added to an order that
    staff are marking as ordered at the same moment. Concurrent creators meet on
    the `purchase_order_one_reorder_draft` unique index; the loser reads the winner's.
    """
    for _attempt in range(5):
        draft = (
            PurchaseOrder.objects.select_for_update(no_key=True, of=("self",))
            .filter(
                supplier_id=supplier_id,
                warehouse_id=warehouse_id,
                status=PurchaseOrderStatus.DRAFT,
                origin=Origin.REORDER,
            )
            .first()
        )
        if draft is not None:
            return draft
        try:
            with transaction.atomic():
                return PurchaseOrder.objects.create(
                    number=new_purchase_order_number(),
                    supplier_id=supplier_id,
                    warehouse_id=warehouse_id,
                    status=PurchaseOrderStatus.DRAFT,
                    origin=Origin.REORDER,
                    created_by=SYSTEM_REORDER,
                )
        except IntegrityError:
            continue  # a concurrent check created the draft first: read it
    raise RuntimeError("could not create the reorder draft")  # pragma: no cover


def _row_is_covered(row: Inventory) -> bool:
    return PurchaseOrderLine.objects.filter(
        product_id=row.product_id, warehouse_id=row.warehouse_id, is_open=True
    ).exists()


def _in_transit_to(row: Inventory) -> int:
    """Units shipped to the row's warehouse on two-step transfers, not yet received."""
    found = in_transit_for_products([row.product_id]).get((row.product_id, row.warehouse_id))
    return found[0] if found else 0


def reorder_check(*, inventory_id: uuid.UUID | str) -> PurchaseOrderLine | None:
    """Order stock for one inventory row if it needs it; returns the new line or None.

    Idempotent: a row that is already covered by an open line gets nothing new,
    and a concurrent duplicate loses on the partial unique index and returns None.
    """
    row = (
        Inventory.objects.select_related("warehouse")
        .filter(
            pk=inventory_id,
            reorder_threshold__gt=0,
            reorder_quantity__gt=0,
            on_hand__lt=F("reorder_threshold") + F("damaged") + F("quality_control"),
        )
        .first()
    )
    if row is None or not row.warehouse.is_active or _row_is_covered(row):
        return None
    if (
        _in_transit_to(row) + row.on_hand
        >= row.reorder_threshold + row.damaged + row.quality_control
    ):
        return None  # a transfer on its way brings the row back to its threshold
    link = (
        ProductSupplier.objects.filter(
            product_id=row.product_id, is_preferred=True, supplier__is_active=True
        )
        .only("supplier_id", "pack_size")
        .first()
    )
    if link is None:
        logger.info("reorder: product %s has no active preferred supplier", row.product_id)
        return None
    try:
        with transaction.atomic():
            draft = _reorder_draft(supplier_id=link.supplier_id, warehouse_id=row.warehouse_id)
            line = PurchaseOrderLine.objects.create(
                purchase_order=draft,
                product_id=row.product_id,
                warehouse_id=row.warehouse_id,
                quantity_ordered=packs_rounded_up(row.reorder_quantity, link.pack_size),
                origin=Origin.REORDER,
                is_open=True,
            )
    except IntegrityError:
        # Another check (or the batch) ordered this row first; its line covers it.
        return None
    logger.info(
        "reorder: %s x product %s for warehouse %s on %s",
        line.quantity_ordered,
        row.product_id,
        row.warehouse_id,
        draft.number,
    )
    return line


# --------------------------------------------------------------------------
# Reorder: every row (the daily batch)
# --------------------------------------------------------------------------

# The rows of one id range that need stock, with supplier and rounded quantity:
# the same rule as `reorder_check`, in SQL.
_CANDIDATES_SQL = """
CREATE TEMPORARY TABLE reorder_candidates ON COMMIT DROP AS
SELECT i.product_id, i.warehouse_id, ps.supplier_id,
       ((i.reorder_quantity::bigint + ps.pack_size - 1) / ps.pack_size) * ps.pack_size
           AS quantity
FROM inventory_inventory i
JOIN warehouses_warehouse w ON w.id = i.warehouse_id AND w.is_active
JOIN purchasing_productsupplier ps ON ps.product_id = i.product_id AND ps.is_preferred
JOIN purchasing_supplier s ON s.id = ps.supplier_id AND s.is_active
WHERE {id_range}
  AND i.reorder_threshold > 0
  AND i.reorder_quantity > 0
  AND i.on_hand < i.reorder_threshold + i.damaged + i.quality_control
  AND i.on_hand + COALESCE((
      SELECT sum(tl.quantity_shipped) FROM inventory_transferline tl
      JOIN inventory_transfer t ON t.id = tl.transfer_id
      WHERE t.status = 'shipped' AND t.destination_id = i.warehouse_id
        AND tl.product_id = i.product_id
  ), 0) < i.reorder_threshold + i.damaged + i.quality_control
  AND NOT EXISTS (
      SELECT 1 FROM purchasing_purchaseorderline l
      WHERE l.product_id = i.product_id AND l.warehouse_id = i.warehouse_id AND l.is_open
  )
"""

# One draft reorder PO per (supplier, warehouse) that has candidates and no
# draft yet: only those groups draw a number. A draft created meanwhile by a
# per-row check wins on the one-draft index (ON CONFLICT DO NOTHING; that group's
# number is then a gap, as for any rolled-back insert).
_CREATE_DRAFTS_SQL = """
INSERT INTO purchasing_purchaseorder
    (number, supplier_id, warehouse_id, status, origin, created_by, notes,
     created_at, updated_at)
SELECT {po_number},
       g.supplier_id, g.warehouse_id, 'draft', 'reorder', %(actor)s, '', now(), now()
FROM (SELECT DISTINCT supplier_id, warehouse_id FROM reorder_candidates) g
WHERE NOT EXISTS (
    SELECT 1 FROM purchasing_purchaseorder po
    WHERE po.supplier_id = g.supplier_id AND po.warehouse_id = g.warehouse_id
      AND po.status = 'draft' AND po.origin = 'reorder'
)
ORDER BY g.supplier_id, g.warehouse_id
ON CONFLICT DO NOTHING
RETURNING id
""".replace("{po_number}", PO_NUMBER_SQL)

# Lock the drafts in id order (as `_reorder_draft` does) before adding lines.
_LOCK_DRAFTS_SQL = """
SELECT po.id FROM purchasing_purchaseorder po
WHERE po.status = 'draft' AND po.origin = 'reorder'
  AND (po.supplier_id, po.warehouse_id) IN
      (SELECT DISTINCT supplier_id, warehouse_id FROM reorder_candidates)
ORDER BY po.id
FOR NO KEY UPDATE
"""

# ON CONFLICT DO NOTHING: a row ordered meanwhile by a per-row check keeps its line.
_CREATE_LINES_SQL = """
INSERT INTO purchasing_purchaseorderline
    (purchase_order_id, product_id, warehouse_id, quantity_ordered, quantity_received,
     origin, is_open, created_at, updated_at)
SELECT po.id, c.product_id, c.warehouse_id, c.quantity, 0, 'reorder', TRUE, now(), now()
FROM reorder_candidates c
JOIN purchasing_purchaseorder po
  ON po.supplier_id = c.supplier_id AND po.warehouse_id = c.warehouse_id
 AND po.status = 'draft' AND po.origin = 'reorder'
ORDER BY c.product_id, c.warehouse_id
ON CONFLICT DO NOTHING
"""

# A draft created here whose every line lost a race is removed again.
_DROP_EMPTY_DRAFTS_SQL = """
DELETE FROM purchasing_purchaseorder po
WHERE po.id = ANY(%(ids)s)
  AND NOT EXISTS (SELECT 1 FROM purchasing_purchaseorderline l WHERE l.purchase_order_id = po.id)
"""


def _chunk_upper_bound(cursor, after: uuid.UUID | None, chunk_size: int) -> uuid.UUID | None:
    """The id of the chunk's last inventory row (None: the rest of the table)."""
    if after is None:
        cursor.execute(
            "SELECT id FROM inventory_inventory ORDER BY id OFFSET %s LIMIT 1", [chunk_size - 1]
        )
    else:
        cursor.execute(
            "SELECT id FROM inventory_inventory WHERE id > %s ORDER BY id OFFSET %s LIMIT 1",
            [after, chunk_size - 1],
        )
    found = cursor.fetchone()
    return found[0] if found else None


def _reorder_chunk(
    after: uuid.UUID | None, upto: uuid.UUID | None, result: ReorderBatchResult
) -> None:
    conditions, params = ["TRUE"], {}
    if after is not None:
        conditions.append("i.id > %(after)s")
        params["after"] = after
    if upto is not None:
        conditions.append("i.id <= %(upto)s")
        params["upto"] = upto
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CANDIDATES_SQL.format(id_range=" AND ".join(conditions)), params)
        found = cursor.rowcount
        result.candidates += max(found, 0)
        if found == 0:
            cursor.execute("DROP TABLE reorder_candidates")
            return
        cursor.execute(_CREATE_DRAFTS_SQL, {"actor": SYSTEM_REORDER})
        created = [pk for (pk,) in cursor.fetchall()]
        cursor.execute(_LOCK_DRAFTS_SQL)
        cursor.execute(_CREATE_LINES_SQL)
        result.lines_created += cursor.rowcount
        if created:
            cursor.execute(_DROP_EMPTY_DRAFTS_SQL, {"ids": created})
            result.orders_created += len(created) - cursor.rowcount
        cursor.execute("DROP TABLE reorder_candidates")


def reorder_batch(*, chunk_size: int = 50_000) -> ReorderBatchResult:
    """Order stock for every inventory row that needs it (the daily batch).

    Set-based on PostgreSQL: the table is walked in primary-key ranges of
    `chunk_size` rows, each range one short transaction of four statements
    (candidates into a temporary table, missing drafts, lines, cleanup), so no
    statement runs long and no Python loop touches individual rows. Creates
    exactly what `reorder_check` would for each row; running it again creates
    nothing new. On the embedded SQLite default it falls back to checking the
    rows below threshold one by one (demo-sized data only).
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise stock_errors.InvalidInput("chunk_size must be a whole number of at least 1.")
    started = time.monotonic()
    result = ReorderBatchResult()
    if connection.vendor != "postgresql":
        return _reorder_batch_row_by_row(result, started)
    after: uuid.UUID | None = None
    while True:
        with connection.cursor() as cursor:
            upto = _chunk_upper_bound(cursor, after, chunk_size)
        _reorder_chunk(after, upto, result)
        result.chunks += 1
        if upto is None:
            break
        after = upto
    result.seconds = time.monotonic() - started
    logger.info(
        "reorder batch: %s chunks, %s candidates, %s new orders, %s new lines in %.1fs",
        result.chunks,
        result.candidates,
        result.orders_created,
        result.lines_created,
        result.seconds,
    )
    return result


def _reorder_batch_row_by_row(result: ReorderBatchResult, started: float) -> ReorderBatchResult:
    ids = Inventory.objects.filter(
        reorder_threshold__gt=0,
        reorder_quantity__gt=0,
        on_hand__lt=F("reorder_threshold") + F("damaged") + F("quality_control"),
    ).values_list("id", flat=True)
    drafts_before = PurchaseOrder.objects.filter(origin=Origin.REORDER).count()
    for inventory_id in ids.iterator():
        result.candidates += 1
        result.lines_created += reorder_check(inventory_id=inventory_id) is not None
    result.orders_created = PurchaseOrder.objects.filter(origin=Origin.REORDER).count() - (
        drafts_before
    )
    result.chunks = 1
    result.seconds = time.monotonic() - started
    return result


# --------------------------------------------------------------------------
# Purchase order status
# --------------------------------------------------------------------------


def _lock_purchase_order(purchase_order: PurchaseOrder | str) -> PurchaseOrder:
    number = purchase_order.number if isinstance(purchase_order, PurchaseOrder) else purchase_order
    locked = (
        PurchaseOrder.objects.select_for_update(no_key=True, of=("self",))
        .select_related("supplier", "warehouse")
        .filter(number=number)
        .first()
    )
    if locked is None:
        raise errors.PurchaseOrderNotFound(
            f"No purchase order {number}.", details={"number": number}
        )
    return locked


def _sync_lines(po: PurchaseOrder, lines: list[PurchaseOrderLine]) -> None:
    """Derive the status from what was received and each line's open flag from both."""
    if po.status != PurchaseOrderStatus.CANCELLED and lines:
        # A line closed short awaits nothing more: it counts as done.
        if all(
            line.quantity_received >= line.quantity_ordered or line.closed_short_at is not None
            for line in lines
        ):
            po.status = PurchaseOrderStatus.RECEIVED
            po.received_at = po.received_at or timezone.now()
        elif any(line.quantity_received > 0 or line.closed_short_at is not None for line in lines):
            po.status = PurchaseOrderStatus.PARTIALLY_RECEIVED
    now = timezone.now()
    for line in lines:
        line.warehouse_id = po.warehouse_id
        line.updated_at = now
        line.is_open = (
            po.status in OPEN_STATUSES
            and line.quantity_received < line.quantity_ordered
            and line.closed_short_at is None
        )
    po.save()
    if lines:
        PurchaseOrderLine.objects.bulk_update(
            lines,
            [
                "warehouse",
                "quantity_received",
                "is_open",
                "closed_short_at",
                "closed_short_by",
                "closed_short_reason",
                "updated_at",
            ],
        )


def purchase_order_mark_ordered(
    *, purchase_order: PurchaseOrder | str, actor: str, expected_arrival_date: date | None = None
) -> PurchaseOrder:
    """A draft was sent to the supplier: status ordered, arrival date set.

    Without a date, arrival is today plus the supplier's longest lead time.
    """
    with transaction.atomic():
        po = _lock_purchase_order(purchase_order)
        if po.status != PurchaseOrderStatus.DRAFT:
            raise errors.InvalidStatusChange(
                f"{po.number} is {po.get_status_display().lower()}, not a draft.",
                details={"number": po.number, "status": po.status},
            )
        if not po.lines.exists():
            raise errors.InvalidStatusChange(
                f"{po.number} has no lines.", details={"number": po.number}
            )
        po.status = PurchaseOrderStatus.ORDERED
        po.ordered_at = timezone.now()
        po.expected_arrival_date = (
            expected_arrival_date
            or po.expected_arrival_date
            or timezone.localdate() + timedelta(days=po.supplier.lead_time_max_days)
        )
        po.save()
    logger.info("%s marked ordered by %s", po.number, actor)
    return po


def purchase_order_cancel(*, purchase_order: PurchaseOrder | str, actor: str) -> PurchaseOrder:
    """Cancel an open PO; its lines stop covering their rows (the reorder job may order again).

    What was already received stays received.
    """
    with transaction.atomic():
        po = _lock_purchase_order(purchase_order)
        if po.status not in OPEN_STATUSES:
            raise errors.InvalidStatusChange(
                f"{po.number} is {po.get_status_display().lower()} and cannot be cancelled.",
                details={"number": po.number, "status": po.status},
            )
        po.status = PurchaseOrderStatus.CANCELLED
        _sync_lines(po, list(po.lines.all()))
    logger.info("%s cancelled by %s", po.number, actor)
    return po


def purchase_order_sync(*, purchase_order: PurchaseOrder | str) -> PurchaseOrder:
    """After staff edited a PO or its lines (admin): lines follow the destination
    warehouse, and status and open flags are derived again."""
    with transaction.atomic():
        po = _lock_purchase_order(purchase_order)
        _sync_lines(po, list(po.lines.all()))
    return po


# --------------------------------------------------------------------------
# Receiving
# --------------------------------------------------------------------------


def _check_receipt_quantity(sku: str, value) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 1 <= value <= settings.STOCKROOM_MAX_QUANTITY
    ):
        raise stock_errors.InvalidQuantity(
            f"quantity of {sku} must be a whole number from 1 to "
            f"{settings.STOCKROOM_MAX_QUANTITY}, got {value!r}.",
            details={"sku": sku, "value": repr(value)},
        )
    return value


def _replay_receipt(
    receipt: PurchaseOrderReceipt, fingerprint: str, receipt_id: str
) -> ReceiptResult:
    if receipt.fingerprint != fingerprint:
        raise stock_errors.IdempotencyConflict(
            "This receipt id was already used with different lines.",
            details={"receipt_id": receipt_id},  # the client's id, not the internal key
        )
    ids = receipt.transaction_ids
    transactions = sorted(
        InventoryTransaction.objects.filter(id__in=ids), key=lambda t: ids.index(str(t.id))
    )
    return ReceiptResult(
        purchase_order=PurchaseOrder.objects.get(pk=receipt.purchase_order_id),
        receipt=receipt,
        transactions=transactions,
        replayed=True,
    )


@retry_busy
def purchase_order_receive(
    *,
    purchase_order: PurchaseOrder | str,
    actor: str,
    lines: Sequence[ReceiptLine] | None = None,
    receipt_id: str | None = None,
    allow_over_receipt: bool = False,
    reason: str = "",
    warehouses: Collection[str] | None = None,
    close_short: Mapping[str, str] | None = None,
) -> ReceiptResult:
    """Book a delivery against a PO: RECEIVE ledger rows referencing it, lines and status.

    `warehouses` (codes; None = any): the order's warehouse, read under its lock,
    must be one of them, else WarehouseNotAllowed (staff limited to their sites).

    `lines` (SKU and quantity) receive part of the order; None receives everything
    still outstanding. More than ordered raises OverReceipt unless
    `allow_over_receipt`. Idempotent by `receipt_id`: the same receipt again returns
    the first result (replayed=True), other lines under it raise IdempotencyConflict.
    Give one per physical delivery (the admin and the command do); without one a
    fresh id is used and a retry books the delivery twice.

    `close_short` ({sku: reason}): after this delivery, those lines are closed
    short: the rest will not come. No ledger row (no stock moves); the line keeps
    who (`actor`), when and why, stops being open (the reorder job may order the
    product again), and counts as done for the order's status. A line this
    delivery fills is left as it is; a SKU not on the order raises
    NotOnPurchaseOrder; a reason is required (InvalidInput). A line already
    closed short takes no more stock (PurchaseOrderClosed).

    Locks: the PO row (receipts of one PO are serialised), then the products (to
    create missing inventory rows, `stock_rows_create`), then each line's inventory
    row through `stock_receive`, in inventory primary-key order. A deadlock or
    serialization failure is retried (`retry_busy`: the receipt owns its
    transaction); when retries run out, or a row stays locked, StockBusy.
    """
    number = purchase_order.number if isinstance(purchase_order, PurchaseOrder) else purchase_order
    receipt_id = receipt_id or uuid.uuid4().hex
    if not isinstance(receipt_id, str) or len(receipt_id) > 100:
        raise stock_errors.InvalidInput("receipt_id must be a string of at most 100 characters.")
    requested: dict[str, int] | None = None
    if lines is not None:
        if not lines:
            raise stock_errors.InvalidInput("Give at least one line, or none to receive all.")
        requested = {}
        for line in lines:
            qty = _check_receipt_quantity(line.sku, line.quantity)
            requested[line.sku] = _check_receipt_quantity(
                line.sku, requested.get(line.sku, 0) + qty
            )
    closing = _check_close_short(close_short)
    key = f"po-receipt:{number}:{receipt_id}"
    fingerprinted = {
        "number": number,
        "lines": sorted(requested.items()) if requested is not None else None,
        "allow_over_receipt": bool(allow_over_receipt),
    }
    if closing:  # absent otherwise: receipts booked before close_short keep their fingerprint
        fingerprinted["close_short"] = sorted(closing.items())
    fingerprint = hashlib.sha256(json.dumps(fingerprinted).encode()).hexdigest()

    existing = PurchaseOrderReceipt.objects.filter(key=key).first()
    if existing is not None:
        return _replay_receipt(existing, fingerprint, receipt_id)

    try:
        with transaction.atomic():
            po = _lock_purchase_order(number)
            if warehouses is not None and po.warehouse.code not in warehouses:
                raise errors.WarehouseNotAllowed(
                    f"You do not work at warehouse {po.warehouse.code}.",
                    details={"number": po.number, "warehouse": po.warehouse.code},
                )
            # A concurrent duplicate may have committed while we waited for the lock.
            existing = PurchaseOrderReceipt.objects.filter(key=key).first()
            if existing is not None:
                return _replay_receipt(existing, fingerprint, receipt_id)
            return _receive_locked(
                po=po,
                requested=requested,
                key=key,
                fingerprint=fingerprint,
                actor=actor,
                allow_over_receipt=allow_over_receipt,
                reason=reason,
                close_short=closing,
            )
    except IntegrityError:
        existing = PurchaseOrderReceipt.objects.filter(key=key).first()
        if existing is not None:
            return _replay_receipt(existing, fingerprint, receipt_id)
        raise


def _receive_locked(
    *,
    po: PurchaseOrder,
    requested: dict[str, int] | None,
    key: str,
    fingerprint: str,
    actor: str,
    allow_over_receipt: bool,
    reason: str,
    close_short: dict[str, str] | None = None,
) -> ReceiptResult:
    if po.status == PurchaseOrderStatus.CANCELLED:
        raise errors.PurchaseOrderClosed(
            f"{po.number} is cancelled.", details={"number": po.number, "status": po.status}
        )
    po_lines = list(po.lines.select_related("product").order_by("id"))
    by_sku = {line.product.sku: line for line in po_lines}
    if requested is None:
        take = {sku: line.quantity_outstanding for sku, line in by_sku.items()}
        take = {sku: qty for sku, qty in take.items() if qty > 0}
        if not take:
            raise errors.PurchaseOrderClosed(
                f"Nothing is outstanding on {po.number}.",
                details={"number": po.number, "status": po.status},
            )
    else:
        unknown = sorted(set(requested) - by_sku.keys())
        if unknown:
            raise errors.NotOnPurchaseOrder(
                f"Not on {po.number}: {', '.join(unknown)}.",
                details={"number": po.number, "skus": unknown},
            )
        take = requested
        closed = sorted(sku for sku in take if by_sku[sku].closed_short_at is not None)
        if closed:
            raise errors.PurchaseOrderClosed(
                f"{po.number}: closed short, so no more stock is booked on it: "
                f"{', '.join(closed)}.",
                details={"number": po.number, "skus": closed},
            )
        over = [
            {
                "sku": sku,
                "ordered": by_sku[sku].quantity_ordered,
                "received": by_sku[sku].quantity_received,
                "requested": qty,
            }
            for sku, qty in sorted(take.items())
            if by_sku[sku].quantity_received + qty > by_sku[sku].quantity_ordered
        ]
        if over and not allow_over_receipt:
            raise errors.OverReceipt(
                f"{po.number}: more than was ordered of {', '.join(item['sku'] for item in over)}.",
                details={"number": po.number, "lines": over},
            )

    # The order of inventory.locks: (the PO row, held) then the products, to
    # create the rows this delivery needs (`stock_rows_create`, one call for every
    # SKU, so two receipts naming the same new SKUs in opposite order cannot
    # deadlock), then the inventory rows in primary-key order.
    stock_services.stock_rows_create((sku, po.warehouse.code) for sku in take)
    row_ids = dict(
        Inventory.objects.filter(
            warehouse_id=po.warehouse_id,
            product_id__in=[by_sku[sku].product_id for sku in take],
        ).values_list("product_id", "id")
    )
    order = sorted(take, key=lambda sku: row_ids[by_sku[sku].product_id])

    reference = stock_services.Reference(ReferenceType.PURCHASE_ORDER, po.number)
    transactions: list[InventoryTransaction] = []
    for sku in order:
        result = stock_services.stock_receive(
            sku=sku,
            warehouse=po.warehouse.code,
            quantity=take[sku],
            actor=actor,
            reference=reference,
            reason=reason or f"received on {po.number}",
            idempotency_key=f"{key}:{sku}",
        )
        transactions.extend(result.transactions)
        by_sku[sku].quantity_received += take[sku]
    _close_short_lines(po, by_sku, close_short or {}, actor)
    _sync_lines(po, po_lines)
    receipt = PurchaseOrderReceipt.objects.create(
        purchase_order=po,
        key=key,
        fingerprint=fingerprint,
        lines={sku: take[sku] for sku in order},
        transaction_ids=[str(t.id) for t in transactions],
        allow_over_receipt=bool(allow_over_receipt),
        created_by=actor,
    )
    logger.info("%s: receipt %s booked by %s", po.number, key, actor)
    return ReceiptResult(purchase_order=po, receipt=receipt, transactions=transactions)


def _check_close_short(close_short: Mapping[str, str] | None) -> dict[str, str]:
    if not close_short:
        return {}
    checked = {}
    for sku, why in close_short.items():
        why = (why or "").strip() if isinstance(why, str) else ""
        if not why or len(why) > 200:
            raise stock_errors.InvalidInput(
                f"Closing {sku} short needs a reason (at most 200 characters).",
                details={"sku": sku},
            )
        checked[sku] = why
    return checked


def _close_short_lines(
    po: PurchaseOrder, by_sku: dict[str, PurchaseOrderLine], close_short: dict[str, str], actor
) -> list[str]:
    """Close the named lines short (those still short and not closed); returns their SKUs."""
    unknown = sorted(set(close_short) - by_sku.keys())
    if unknown:
        raise errors.NotOnPurchaseOrder(
            f"Not on {po.number}: {', '.join(unknown)}.",
            details={"number": po.number, "skus": unknown},
        )
    now = timezone.now()
    closed = []
    for sku, why in sorted(close_short.items()):
        line = by_sku[sku]
        if line.closed_short_at is None and line.quantity_received < line.quantity_ordered:
            line.closed_short_at, line.closed_short_by, line.closed_short_reason = now, actor, why
            closed.append(sku)
    if closed:
        logger.info("%s: %s closed short by %s", po.number, ", ".join(closed), actor)
    return closed


def purchase_order_close_short(
    *, purchase_order: PurchaseOrder | str, close_short: Mapping[str, str], actor: str
) -> list[str]:
    """Close lines short without a delivery ({sku: reason}); returns the SKUs closed.

    The same rule as `purchase_order_receive(close_short=…)`: no ledger row, the
    line keeps who, when and why. A cancelled order raises PurchaseOrderClosed.
    """
    closing = _check_close_short(close_short)
    with transaction.atomic():
        po = _lock_purchase_order(purchase_order)
        if po.status == PurchaseOrderStatus.CANCELLED:
            raise errors.PurchaseOrderClosed(
                f"{po.number} is cancelled.", details={"number": po.number, "status": po.status}
            )
        po_lines = list(po.lines.select_related("product").order_by("id"))
        closed = _close_short_lines(
            po, {line.product.sku: line for line in po_lines}, closing, actor
        )
        _sync_lines(po, po_lines)
    return closed
