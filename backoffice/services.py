"""Back-office writes: a multi-SKU cycle count, and a multi-SKU direct receipt, each
one all-or-nothing change.

The stock itself changes only in `inventory.services`; this module decides how
several of those calls form one staff action.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction

from inventory import clock, services
from inventory.locks import lock_inventory_rows
from inventory.models import Inventory, InventoryTransaction, ReferenceType
from inventory.services import Reference


@dataclass(frozen=True)
class CountLine:
    sku: str
    counted: int
    expected_on_hand: int  # on hand as shown in the preview


@dataclass
class CycleCountResult:
    transactions: list[InventoryTransaction]
    replayed: bool
    reference: Reference


@services.retry_busy
def cycle_count_apply(
    *, warehouse: str, lines: Sequence[CountLine], reason: str, actor: str, count_id: str
) -> CycleCountResult:
    """Set on hand to the counted quantities of several SKUs in one warehouse: all or none.

    Each line is a `stock_adjust` compare-and-set on the previewed on hand: if
    any row moved since the preview, `StockChanged` is raised. All lines run in
    one transaction (the services join it), so any refused line (`StockChanged`,
    `BelowReserved`, `WarehouseInactive`, …) rolls back the whole count.

    Locks (the order of `inventory.locks`): missing inventory rows are created
    first (`stock_rows_create`, which locks the products), then the count's rows
    are locked in one statement in primary-key order, so two counts, or a count
    and a receipt, cannot deadlock; each `stock_adjust` then re-locks a row it
    holds. A deadlock or serialization failure is retried (`retry_busy`); a row
    locked past lock_timeout, or retries run out: StockBusy, nothing applied.
    Idempotent by `count_id`: confirming the same preview twice adjusts once.
    """
    reference = Reference(ReferenceType.CYCLE_COUNT, count_id)
    ledger: list[InventoryTransaction] = []
    replayed = False
    with transaction.atomic():
        # The order of inventory.locks: products (creating missing rows) first,
        # then every inventory row of the count in one statement in pk order.
        services.stock_rows_create((line.sku, warehouse) for line in lines)
        lock_inventory_rows((line.sku, warehouse) for line in lines)
        for line in sorted(lines, key=lambda line: line.sku):
            result = services.stock_adjust(
                sku=line.sku,
                warehouse=warehouse,
                counted=line.counted,
                expected_on_hand=line.expected_on_hand,
                reason=reason,
                actor=actor,
                reference=reference,
            )
            ledger.extend(result.transactions)
            replayed = replayed or result.replayed
        # The count schedule (start page, "counts due"): these rows were counted now,
        # changed or not. Not a stock change: no ledger row, no version bump.
        if not replayed:
            Inventory.objects.filter(
                warehouse__code=warehouse, product__sku__in=[line.sku for line in lines]
            ).update(last_counted_at=clock.now())
    return CycleCountResult(transactions=ledger, replayed=replayed, reference=reference)


@dataclass(frozen=True)
class ReceiveLine:
    sku: str
    quantity: int


@dataclass
class ReceiveResult:
    transactions: list[InventoryTransaction]
    replayed: bool
    reference: Reference


@services.retry_busy
def receive_apply(
    *,
    warehouse: str,
    lines: Sequence[ReceiveLine],
    reference: Reference,
    reason: str,
    actor: str,
    receipt_id: str,
) -> ReceiveResult:
    """Receive several SKUs into one warehouse (a scanned delivery): all or none.

    Each line is a `stock_receive` under the idempotency key
    `admin-receive:<receipt_id>:<sku>`, so confirming the same preview twice
    receives once. Locks as `cycle_count_apply`: missing rows created first, then
    every row of the receipt in one statement in primary-key order.
    """
    ledger: list[InventoryTransaction] = []
    replayed = False
    with transaction.atomic():
        services.stock_rows_create((line.sku, warehouse) for line in lines)
        lock_inventory_rows((line.sku, warehouse) for line in lines)
        for line in sorted(lines, key=lambda line: line.sku):
            result = services.stock_receive(
                sku=line.sku,
                warehouse=warehouse,
                quantity=line.quantity,
                actor=actor,
                reference=reference,
                reason=reason,
                idempotency_key=f"admin-receive:{receipt_id}:{line.sku}",
            )
            ledger.extend(result.transactions)
            replayed = replayed or result.replayed
    return ReceiveResult(transactions=ledger, replayed=replayed, reference=reference)
