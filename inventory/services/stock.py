"""The stock verbs: receive, adjust, transfer; and what every stock operation shares.

The API, the admin, Celery tasks and management commands call these functions
(through `inventory.services`); the reservation verbs live beside them
(`reservations`, `reservation_close`, `reservation_confirm`). Each operation:

* validates its input (`check_quantity`, `check_reason`) and raises a typed
  `inventory.errors.InventoryError` that changes nothing;
* runs in one database transaction (joining the caller's, if there is one),
  locking rows as `inventory.locks` describes (`rows`), and is retried after a
  deadlock by `retry_busy`;
* writes one ledger row per inventory row it changes, with who (`actor`),
  why (`reason`) and what for (`reference`), through `ledger.apply_changes`;
* is idempotent by its reference: reservations by order id, other operations
  by an idempotency key (given, or derived from the reference; `idempotency`).
  A repeat has no effect and returns the first result;
* hands the committed change to `ledger.publish_committed_changes` after commit,
  the one place where caches and reorder checks hear about stock changes.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection

from .. import db_errors, errors
from ..models import Inventory, ReferenceType, TransactionType
from .idempotency import derived_key, run_idempotent
from .ledger import Change, OperationResult, Reference, apply_changes
from .rows import lock_one_row, lock_rows

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransferLine:
    sku: str
    quantity: int


# --------------------------------------------------------------------------
# Validation and the busy retry, shared by every stock operation
# --------------------------------------------------------------------------


def max_quantity() -> int:
    return settings.STOCKROOM_MAX_QUANTITY


def check_quantity(
    value: Any, *, name: str = "quantity", allow_zero: bool = False, maximum: int | None = None
) -> int:
    """A whole number from 1 (or 0) to STOCKROOM_MAX_QUANTITY; bools and floats refused.
    `maximum`: that setting as the caller already read it (a loop over many lines)."""
    low = 0 if allow_zero else 1
    high = max_quantity() if maximum is None else maximum
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise errors.InvalidQuantity(
            f"{name} must be a whole number from {low} to {high}, got {value!r}.",
            details={"field": name, "value": repr(value), "min": low, "max": high},
        )
    return value


def check_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise errors.ReasonRequired()
    return reason


def _busy_retries() -> int:
    return settings.STOCKROOM_BUSY_RETRIES


def _backoff(attempt: int) -> float:
    """Seconds before retry `attempt` (1, 2, ...): 20 ms doubling, full jitter, at most 0.5 s."""
    return random.uniform(0.5, 1.5) * min(0.02 * 2 ** (attempt - 1), 0.5)


def retry_busy(func: Callable) -> Callable:
    """The one place a stock operation is retried after losing a fight over rows.

    A deadlock (40P01) or serialization failure (40001) rolled the whole
    transaction back, changing nothing: when the decorated service owns the whole
    transaction (it was not called inside an outer `atomic` block), it runs again
    from the start, up to STOCKROOM_BUSY_RETRIES (3) more times with jittered
    backoff. Inside an outer block the caller owns the transaction (it may have
    done work of its own) and must decide: the error is raised as `StockBusy`,
    and a decorated caller that owns its transaction retries it in turn.

    A lock timeout (55P03), a retryable error after the last retry, or one inside
    an outer block become `errors.StockBusy` (HTTP 503 `stock_busy` with
    Retry-After; "nothing was applied"). SQLSTATEs: `inventory.db_errors`.
    """

    @wraps(func)
    def wrapper(*args, **kwargs):
        owns_transaction = not connection.in_atomic_block
        retries = _busy_retries() if owns_transaction else 0
        attempt = 0
        while True:
            try:
                return func(*args, **kwargs)
            except (OperationalError, errors.StockBusy) as exc:
                state = db_errors.sqlstate(exc)
                if state not in db_errors.BUSY:
                    raise
                if state in db_errors.RETRYABLE and attempt < retries:
                    attempt += 1
                    logger.info(
                        "%s: %s, retry %d of %d", func.__name__, db_errors.REASONS[state],
                        attempt, retries,
                    )  # fmt: skip
                    time.sleep(_backoff(attempt))
                    continue
                if isinstance(exc, errors.StockBusy):
                    raise
                raise errors.StockBusy(reason=db_errors.REASONS[state]) from exc

    return wrapper


# --------------------------------------------------------------------------
# Receive, adjust, transfer
# --------------------------------------------------------------------------


def _change_one_row(
    row: Inventory,
    txn_type: str,
    on_hand_delta: int,
    actor: str,
    reference: Reference | None,
    reason: str,
) -> OperationResult:
    ledger = apply_changes(
        [Change(row, txn_type, on_hand_delta=on_hand_delta)],
        actor=actor,
        reference=reference,
        reason=reason,
    )
    return OperationResult(transactions=ledger, reference=reference)


@retry_busy
def stock_receive(
    *,
    sku: str,
    warehouse: str,
    quantity: int,
    actor: str,
    reference: Reference | None = None,
    reason: str = "",
    idempotency_key: str | None = None,
) -> OperationResult:
    """RECEIVE: new stock arrives; on hand += quantity.

    Idempotent by `idempotency_key`, or else by reference + SKU + warehouse.
    Locks: the one inventory row (created if the product has none there yet).
    """
    quantity = check_quantity(quantity)
    payload = {"sku": sku, "warehouse": warehouse, "quantity": quantity}

    def body() -> OperationResult:
        row = lock_one_row(sku, warehouse)
        return _change_one_row(row, TransactionType.RECEIVE, quantity, actor, reference, reason)

    key = derived_key("receive", idempotency_key, reference, sku, warehouse)
    return run_idempotent(key, "receive", payload, body)


@retry_busy
def stock_adjust(
    *,
    sku: str,
    warehouse: str,
    reason: str,
    actor: str,
    counted: int | None = None,
    delta: int | None = None,
    expected_on_hand: int | None = None,
    reference: Reference | None = None,
    idempotency_key: str | None = None,
) -> OperationResult:
    """ADJUST: set on hand to a counted quantity, or change it by a signed delta.

    `expected_on_hand` makes a counted adjustment a compare-and-set: if on hand
    moved since the counter looked, StockChanged is raised and nothing changes.
    On hand may not go below zero, nor below what open orders reserve (beyond
    the backorder allowance). A count equal to on hand writes no ledger row.
    Locks: the one inventory row.
    """
    reason = check_reason(reason)
    if (counted is None) == (delta is None):
        raise errors.InvalidInput("Give exactly one of counted or delta.")
    if counted is not None:
        check_quantity(counted, name="counted", allow_zero=True)
    else:
        if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
            raise errors.InvalidQuantity(f"delta must be a non-zero whole number, got {delta!r}.")
        check_quantity(abs(delta), name="delta")
    if expected_on_hand is not None:
        check_quantity(expected_on_hand, name="expected_on_hand", allow_zero=True)
    payload = {
        "sku": sku,
        "warehouse": warehouse,
        "counted": counted,
        "delta": delta,
        "expected_on_hand": expected_on_hand,
    }

    def body() -> OperationResult:
        row = lock_one_row(sku, warehouse)
        if expected_on_hand is not None and row.on_hand != expected_on_hand:
            raise errors.StockChanged(
                f"On hand of {sku} in {warehouse} is now {row.on_hand}, "
                f"not the {expected_on_hand} that was counted against.",
                details={
                    "sku": sku,
                    "warehouse": warehouse,
                    "expected_on_hand": expected_on_hand,
                    "on_hand": row.on_hand,
                },
            )
        new_on_hand = counted if counted is not None else row.on_hand + delta
        if new_on_hand < 0:
            raise errors.InvalidQuantity(
                f"On hand of {sku} in {warehouse} would become {new_on_hand}.",
                details={"sku": sku, "warehouse": warehouse, "on_hand": row.on_hand},
            )
        unsellable = row.damaged + row.quality_control
        if new_on_hand < unsellable:
            raise errors.BelowReserved(
                f"{unsellable} units of {sku} in {warehouse} are damaged or held for quality "
                f"control; on hand cannot become {new_on_hand}. Write those off first.",
                details={
                    "sku": sku,
                    "warehouse": warehouse,
                    "damaged": row.damaged,
                    "quality_control": row.quality_control,
                    "requested_on_hand": new_on_hand,
                },
            )
        if new_on_hand - unsellable - row.reserved < -row.backorder_allowance:
            raise errors.BelowReserved(
                f"{row.reserved} units of {sku} in {warehouse} are reserved by open orders; "
                f"on hand cannot become {new_on_hand}. Release or re-route those orders first.",
                details={
                    "sku": sku,
                    "warehouse": warehouse,
                    "reserved": row.reserved,
                    "requested_on_hand": new_on_hand,
                },
            )
        delta_on_hand = new_on_hand - row.on_hand
        return _change_one_row(row, TransactionType.ADJUST, delta_on_hand, actor, reference, reason)

    key = derived_key("adjust", idempotency_key, reference, sku, warehouse)
    return run_idempotent(key, "adjust", payload, body)


def transferable_units(row: Inventory | None) -> int:
    """Units that may leave a stock row in a transfer (instant or shipped): its
    sellable units, on hand minus reserved, safety stock, damaged and quality
    control (the row's `available` column), never below 0; the backorder
    allowance does not count. The one rule: the services check it under the lock
    (`check_sellable`), the back office's previews show it (no row: 0)."""
    if row is None:
        return 0
    return max(row.available, 0)


def check_sellable(
    rows: dict[tuple[str, str], Inventory], source: str, quantities: dict[str, int]
) -> None:
    """Refuse taking more than `transferable_units` of each SKU out of `source`
    (a transfer, instant or shipped). The rows are locked by the caller."""
    short = []
    for sku, qty in quantities.items():
        movable = transferable_units(rows[(sku, source)])
        if qty > movable:
            short.append({"sku": sku, "warehouse": source, "requested": qty, "available": movable})
    if short:
        raise errors.InsufficientStock(short, message=f"Not enough available stock in {source}.")


def merge_transfer_lines(lines) -> dict[str, int]:
    """A transfer's lines as {sku: quantity}, a SKU named twice summed; each
    quantity and each sum checked (instant and two-step transfers alike)."""
    if not lines:
        raise errors.InvalidInput("A transfer needs at least one line.")
    merged: dict[str, int] = {}
    for line in lines:
        merged[line.sku] = merged.get(line.sku, 0) + check_quantity(line.quantity)
    for sku, qty in merged.items():
        check_quantity(qty, name=f"quantity of {sku}")
    return merged


@retry_busy
def stock_transfer(
    *,
    source: str,
    destination: str,
    lines: Sequence[TransferLine],
    actor: str,
    reason: str = "",
    reference: Reference | None = None,
    idempotency_key: str | None = None,
) -> OperationResult:
    """TRANSFER: move stock between warehouses; two ledger rows per SKU, one reference.

    Only sellable stock moves (on hand minus reserved, safety stock, damaged and
    quality control; the backorder allowance does not count). The destination
    must be active; the source may be inactive (emptying a closing site).
    Locks: source and destination rows, in pk order.
    """
    if source == destination:
        raise errors.SameWarehouse()
    merged = merge_transfer_lines(lines)
    reference = reference or Reference(ReferenceType.TRANSFER, str(uuid.uuid4()))
    payload = {"source": source, "destination": destination, "lines": sorted(merged.items())}

    def body() -> OperationResult:
        pairs = [(sku, source) for sku in merged] + [(sku, destination) for sku in merged]
        rows = lock_rows(pairs, create_missing=True, require_active=[destination])
        check_sellable(rows, source, merged)
        changes = []
        for sku, qty in sorted(merged.items()):
            changes.append(
                Change(rows[(sku, source)], TransactionType.TRANSFER, on_hand_delta=-qty)
            )
            changes.append(
                Change(rows[(sku, destination)], TransactionType.TRANSFER, on_hand_delta=qty)
            )
        ledger = apply_changes(changes, actor=actor, reference=reference, reason=reason)
        return OperationResult(transactions=ledger, reference=reference)

    key = derived_key("transfer", idempotency_key, None)
    return run_idempotent(key, "transfer", payload, body)


# --- Reservations ---------------------------------------------------------
