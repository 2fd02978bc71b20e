"""The six stock operations: every change to stock happens here and nowhere else.

The API, the admin, Celery tasks and management commands all call these
functions. Each operation:

* validates its input and raises a typed `inventory.errors.InventoryError`
  that changes nothing;
* runs in one database transaction (joining the caller's, if there is one),
  locking rows as `inventory.locks` describes;
* writes one ledger row per inventory row it changes, with who (`actor`),
  why (`reason`) and what for (`reference`);
* is idempotent by its reference: reservations by order id, other operations
  by an idempotency key (given, or derived from the reference). A repeat has no
  effect and returns the first result;
* hands the committed change to `_publish_committed_changes` after commit, the
  one place where caches and reorder checks hear about stock changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial, wraps
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, models, transaction
from django.utils import timezone

from .. import availability_cache, clock, db_errors, errors
from ..context import current_request_id
from ..locks import lock_inventory_rows, lock_reservation
from ..models import (
    AppliedOperation,
    Inventory,
    InventoryTransaction,
    Product,
    ReferenceType,
    Reservation,
    ReservationLine,
    ReservationStatus,
    StockPolicy,
    TransactionType,
)

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------
# Inputs and results
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """What a change was for: an order, a purchase order, a transfer, a count, an import."""

    type: str
    id: str

    def __post_init__(self) -> None:
        if self.type not in ReferenceType.values:
            raise errors.InvalidInput(
                f"Unknown reference type {self.type!r}.",
                details={"reference_type": self.type, "allowed": ReferenceType.values},
            )
        if not self.id or len(str(self.id)) > 100:
            raise errors.InvalidInput("A reference id of 1 to 100 characters is required.")


@dataclass(frozen=True)
class ReserveLine:
    sku: str
    warehouse: str
    quantity: int


@dataclass(frozen=True)
class OrderLine:
    """A line of a partial release or fulfilment; warehouse optional."""

    sku: str
    quantity: int
    warehouse: str | None = None


@dataclass(frozen=True)
class TransferLine:
    sku: str
    quantity: int


@dataclass
class OperationResult:
    """The ledger rows an operation wrote. `replayed` is True for an idempotent repeat."""

    transactions: list[InventoryTransaction]
    replayed: bool = False
    reference: Reference | None = None


@dataclass
class ReservationResult:
    reservation: Reservation
    created: bool
    transactions: list[InventoryTransaction] = field(default_factory=list)


@dataclass(frozen=True)
class CommittedChange:
    """A committed change to one inventory row, as published after commit."""

    inventory_id: uuid.UUID
    product_id: uuid.UUID
    warehouse_id: uuid.UUID
    type: str
    on_hand: int
    reserved: int
    version: int
    # Natural keys, for listeners that key by them (the availability cache);
    # None when the publisher did not have them at hand.
    sku: str | None = None
    warehouse_code: str | None = None
    # The holds with an expiry this change opened (+units) or closed (-units):
    # (expires_at, units) pairs, so the availability read model can follow which
    # reserved units lapse when. None: not reported (for RESERVE, RELEASE and
    # FULFILL the read model then treats the row's holds as unknown and refills).
    holds: tuple[tuple[datetime, int], ...] | None = None

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class CommittedChanges(tuple):
    """The changes of one commit, as listeners receive them (a tuple of
    CommittedChange). `created_orders`: order ids that hold a reservation from
    this commit, for the availability cache's gate memory, which it writes in
    the same Redis call as the write-through."""

    created_orders: tuple[str, ...]

    def __new__(cls, changes: Iterable[CommittedChange], created_orders: Iterable[str] = ()):
        instance = super().__new__(cls, changes)
        instance.created_orders = tuple(created_orders)
        return instance


# --------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------


def _max_quantity() -> int:
    return settings.STOCKROOM_MAX_QUANTITY


def _check_quantity(value: Any, *, name: str = "quantity", allow_zero: bool = False) -> int:
    """A whole number from 1 (or 0) to STOCKROOM_MAX_QUANTITY; bools and floats refused."""
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= _max_quantity():
        raise errors.InvalidQuantity(
            f"{name} must be a whole number from {low} to {_max_quantity()}, got {value!r}.",
            details={"field": name, "value": repr(value), "min": low, "max": _max_quantity()},
        )
    return value


def _check_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise errors.ReasonRequired()
    return reason


def _fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


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


# The name the stock operations are decorated with (it began by translating
# lock timeouts only).
_translate_lock_timeouts = retry_busy


# --------------------------------------------------------------------------
# Row resolution, creation and the single write path
# --------------------------------------------------------------------------


class _RowsMissing(Exception):
    """Inventory rows must be created before locking; raised to roll back and retry."""

    def __init__(self, pairs: set[tuple[str, str]]) -> None:
        self.pairs = pairs


def _lock_rows(
    pairs: Iterable[tuple[str, str]],
    *,
    create_missing: bool,
    require_active: Iterable[str] = (),
) -> dict[tuple[str, str], Inventory]:
    """Lock the rows for (sku, warehouse) pairs; unknown SKUs/warehouses raise.

    With `create_missing`, a known product and warehouse without a row yet raise
    `_RowsMissing`: `_in_transaction` rolls back (releasing every lock), creates
    the empty rows holding no locks, and runs the operation again. Creating rows
    while holding locks could deadlock two transactions that each create a row
    the other is about to lock. Without `create_missing`, missing rows are absent
    from the result.
    """
    pairs = set(pairs)
    rows = lock_inventory_rows(pairs)
    missing = pairs - rows.keys()
    if missing:
        _check_known(missing)
        if create_missing:
            raise _RowsMissing(missing)
    inactive = {code for (_, code), row in rows.items() if not row.warehouse.is_active}
    inactive &= set(require_active)
    if inactive:
        raise errors.WarehouseInactive(list(inactive))
    return rows


def _check_known(
    pairs: set[tuple[str, str]],
) -> tuple[dict[str, Product], dict[str, Any]]:
    from warehouses.models import Warehouse

    skus = {sku for sku, _ in pairs}
    codes = {code for _, code in pairs}
    products = {p.sku: p for p in Product.objects.filter(sku__in=skus)}
    warehouses = {w.code: w for w in Warehouse.objects.filter(code__in=codes)}
    if skus - products.keys():
        raise errors.UnknownSku(list(skus - products.keys()))
    if codes - warehouses.keys():
        raise errors.UnknownWarehouse(list(codes - warehouses.keys()))
    return products, warehouses


def stock_rows_create(pairs: Iterable[tuple[str, str]]) -> None:
    """The one way inventory rows are born: empty (on hand 0) rows for (sku,
    warehouse code) pairs that have none; existing rows are left alone. Every
    caller that needs a row that may not exist yet comes here (receive, adjust,
    transfer, reserve, reorder settings, bulk receive, purchase-order receipts,
    cycle counts, reconcile --fix).

    Locks (the order of `inventory.locks`): the products, FOR SHARE in primary-key
    order, then the new rows are inserted in (product, warehouse) order. A
    stock-policy change holds its product row for update until it commits, so
    it conflicts: a change in flight commits first and the allowance the row is
    born with is the new one; a change that starts later waits for this
    transaction and then updates the new row too. On PostgreSQL the allowance is
    set by the database itself (trigger `inventory_allowance_from_product`,
    migration 0010), whatever the INSERT says, so a raw SQL insert is born right
    too. Call it before locking any inventory row in the transaction.
    Unknown SKUs or warehouses raise UnknownSku / UnknownWarehouse.
    """
    pairs = set(pairs)
    if not pairs:
        return
    products, warehouses = _check_known(pairs)
    ids = sorted({(products[sku].pk, warehouses[code].pk) for sku, code in pairs})
    if connection.vendor == "postgresql":
        create_rows_sql(
            "SELECT * FROM unnest(%s::uuid[], %s::uuid[]) AS w(product_id, warehouse_id)",
            [[p for p, _ in ids], [w for _, w in ids]],
        )
        return
    # SQLite (embedded, one writer at a time): the same rows through the ORM.
    with transaction.atomic():
        by_pk = {p.pk: p for p in Product.objects.filter(pk__in={p for p, _ in ids})}
        Inventory.objects.bulk_create(
            [
                Inventory(
                    product_id=p,
                    warehouse_id=w,
                    backorder_allowance=by_pk[p].allowance,
                )
                for p, w in ids
            ],
            ignore_conflicts=True,
        )


def create_rows_sql(source_sql: str, params: Any) -> int:
    """PostgreSQL: create the missing inventory rows for the (product_id,
    warehouse_id) pairs that `source_sql` selects; how many were created.

    The set-based core of `stock_rows_create`, which bulk receive calls with its
    staging table as the source. Products are locked FOR SHARE in pk order first
    (a policy change in flight commits before; one that starts waits for us).
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT count(*) FROM (
                SELECT p.id FROM inventory_product p
                WHERE p.id IN (SELECT w.product_id FROM ({source_sql}) w)
                ORDER BY p.id FOR SHARE OF p
            ) locked
            """,
            params,
        )
        # backorder_allowance: the trigger sets it from the (locked) product row.
        cursor.execute(
            f"""
            INSERT INTO inventory_inventory (id, product_id, warehouse_id, on_hand, reserved,
                backorder_allowance, reorder_threshold, reorder_quantity, version, updated_at)
            SELECT gen_random_uuid(), w.product_id, w.warehouse_id, 0, 0, 0, 0, 0, 0, now()
            FROM (SELECT DISTINCT product_id, warehouse_id FROM ({source_sql}) s) w
            WHERE NOT EXISTS (
                SELECT 1 FROM inventory_inventory i
                WHERE i.product_id = w.product_id AND i.warehouse_id = w.warehouse_id)
            ORDER BY w.product_id, w.warehouse_id
            ON CONFLICT (product_id, warehouse_id) DO NOTHING
            """,
            params,
        )
        return cursor.rowcount


# The reserve paths call it by this name.
_create_rows = stock_rows_create


def _in_transaction(body: Callable[[], Any]) -> Any:
    """Run `body` in one transaction, creating missing inventory rows first if it asks."""
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return body()
        except _RowsMissing as missing:
            stock_rows_create(missing.pairs)
    raise RuntimeError("inventory rows could not be created")  # pragma: no cover


@dataclass
class _Change:
    row: Inventory
    type: str
    on_hand_delta: int = 0
    reserved_delta: int = 0
    # Holds with an expiry opened/closed, as CommittedChange.holds (None: not reported).
    holds: tuple[tuple[datetime, int], ...] | None = None


def _apply_changes(
    changes: Sequence[_Change],
    *,
    actor: str,
    reference: Reference | None,
    reason: str = "",
    created_orders: Sequence[str] = (),
) -> list[InventoryTransaction]:
    """Apply deltas to locked rows, write their ledger rows, publish after commit.

    The only function that writes inventory balances. Rows must already be
    locked by the caller (the balances it computes from are the locked ones).
    `created_orders` (a reservation) travel with the published changes, for the
    sold-out gate's memory.
    """
    now = timezone.now()
    ledger: list[InventoryTransaction] = []
    touched: dict[uuid.UUID, Inventory] = {}
    for change in changes:
        if change.on_hand_delta == 0 and change.reserved_delta == 0:
            continue
        row = change.row
        row.on_hand += change.on_hand_delta
        row.reserved += change.reserved_delta
        row.version += 1
        row.updated_at = now
        touched[row.pk] = row
        ledger.append(
            InventoryTransaction(
                product_id=row.product_id,
                warehouse_id=row.warehouse_id,
                type=change.type,
                on_hand_delta=change.on_hand_delta,
                reserved_delta=change.reserved_delta,
                on_hand_after=row.on_hand,
                reserved_after=row.reserved,
                reference_type=reference.type if reference else "",
                reference_id=str(reference.id) if reference else "",
                reason=reason,
                created_by=actor,
                created_at=now,
                request_id=current_request_id(),
            )
        )
    if not touched:
        return []
    rows = list(touched.values())
    if len(rows) == 1:
        row = rows[0]
        Inventory.objects.filter(pk=row.pk).update(
            on_hand=row.on_hand, reserved=row.reserved, version=row.version, updated_at=now
        )
    else:
        Inventory.objects.bulk_update(rows, ["on_hand", "reserved", "version", "updated_at"])
    InventoryTransaction.objects.bulk_create(ledger)
    committed = tuple(
        CommittedChange(
            inventory_id=row.pk,
            product_id=row.product_id,
            warehouse_id=row.warehouse_id,
            type=ledger_row.type,
            on_hand=row.on_hand,
            reserved=row.reserved,
            version=row.version,
            sku=row.product.sku,
            warehouse_code=row.warehouse.code,
            holds=change.holds,
        )
        for change, ledger_row in zip(
            (c for c in changes if c.on_hand_delta or c.reserved_delta), ledger, strict=True
        )
        for row in (touched[change.row.pk],)
    )
    transaction.on_commit(
        partial(_publish_committed_changes, CommittedChanges(committed, created_orders))
    )
    return ledger


# Called after commit with every committed change. Other parts of the system
# (availability cache, reorder checks) register here, so that the service
# layer stays the one place that knows stock changed.
COMMITTED_CHANGE_LISTENERS: list[Callable[[tuple[CommittedChange, ...]], None]] = []


def _publish_committed_changes(changes: tuple[CommittedChange, ...]) -> None:
    """Hand committed changes to every listener; one failing never affects the others.

    The change is already committed: a listener error (cache or broker down) is
    logged, never raised to the caller, whose operation succeeded.
    """
    for listener in COMMITTED_CHANGE_LISTENERS:
        try:
            listener(changes)
        except Exception:
            logger.exception("committed-change listener %r failed", listener)


def _available(row: Inventory) -> int:
    """Units that can still be reserved in this row, counting the backorder allowance."""
    return row.on_hand - row.reserved + row.backorder_allowance


# --------------------------------------------------------------------------
# Idempotency by key
# --------------------------------------------------------------------------


def _replay(key: str, fingerprint: str) -> OperationResult | None:
    """The stored result for `key`, or None; a different request under it is a conflict."""
    applied = AppliedOperation.objects.filter(key=key).first()
    if applied is None:
        return None
    if applied.fingerprint != fingerprint:
        # No details: `key` is internal (operation, order, client pk); callers that
        # know the client's own key add it (api.views.with_idempotency_key).
        raise errors.IdempotencyConflict()
    ids = applied.result.get("transactions", [])
    ref = applied.result.get("reference")
    transactions = sorted(
        InventoryTransaction.objects.filter(id__in=ids), key=lambda t: ids.index(str(t.id))
    )
    return OperationResult(
        transactions=transactions,
        replayed=True,
        reference=Reference(**ref) if ref else None,
    )


def _run_idempotent(
    key: str | None, operation: str, payload: dict, body: Callable[[], OperationResult]
) -> OperationResult:
    """Run `body` once per key: a repeat returns the first result without effect.

    The key row is inserted in the same transaction as the change, so it exists
    exactly when the change is committed. A concurrent duplicate blocks on the
    key's unique index, then fails and replays the winner's result.
    """
    if key is None:
        return _in_transaction(body)
    fingerprint = _fingerprint({"operation": operation, **payload})
    replayed = _replay(key, fingerprint)
    if replayed is not None:
        return replayed

    def body_and_key() -> OperationResult:
        result = body()
        AppliedOperation.objects.create(
            key=key,
            operation=operation,
            fingerprint=fingerprint,
            result={
                "transactions": [str(t.id) for t in result.transactions],
                "reference": (
                    {"type": result.reference.type, "id": result.reference.id}
                    if result.reference
                    else None
                ),
            },
        )
        return result

    try:
        return _in_transaction(body_and_key)
    except IntegrityError:
        replayed = _replay(key, fingerprint)
        if replayed is not None:
            return replayed
        raise


def _derived_key(
    operation: str, idempotency_key: str | None, reference: Reference | None, *parts: str
) -> str | None:
    if idempotency_key:
        return _fit_key(operation, f"{operation}:key:{idempotency_key}")
    if reference is not None:
        return _fit_key(operation, ":".join([operation, reference.type, str(reference.id), *parts]))
    return None


def _fit_key(operation: str, key: str) -> str:
    """Keys longer than the column (200) are stored as a hash; stock_receive_bulk does the same."""
    if len(key) <= 200:
        return key
    return f"{operation}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


# --------------------------------------------------------------------------
# The operations
# --------------------------------------------------------------------------


def _lock_one_row(sku: str, warehouse: str) -> Inventory:
    """Lock one (active-warehouse) row, creating it empty if the product has none there."""
    return _lock_rows([(sku, warehouse)], create_missing=True, require_active=[warehouse])[
        (sku, warehouse)
    ]


def _change_one_row(
    row: Inventory,
    txn_type: str,
    on_hand_delta: int,
    actor: str,
    reference: Reference | None,
    reason: str,
) -> OperationResult:
    ledger = _apply_changes(
        [_Change(row, txn_type, on_hand_delta=on_hand_delta)],
        actor=actor,
        reference=reference,
        reason=reason,
    )
    return OperationResult(transactions=ledger, reference=reference)


@_translate_lock_timeouts
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
    quantity = _check_quantity(quantity)
    payload = {"sku": sku, "warehouse": warehouse, "quantity": quantity}

    def body() -> OperationResult:
        row = _lock_one_row(sku, warehouse)
        return _change_one_row(row, TransactionType.RECEIVE, quantity, actor, reference, reason)

    key = _derived_key("receive", idempotency_key, reference, sku, warehouse)
    return _run_idempotent(key, "receive", payload, body)


@_translate_lock_timeouts
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
    reason = _check_reason(reason)
    if (counted is None) == (delta is None):
        raise errors.InvalidInput("Give exactly one of counted or delta.")
    if counted is not None:
        _check_quantity(counted, name="counted", allow_zero=True)
    else:
        if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
            raise errors.InvalidQuantity(f"delta must be a non-zero whole number, got {delta!r}.")
        _check_quantity(abs(delta), name="delta")
    if expected_on_hand is not None:
        _check_quantity(expected_on_hand, name="expected_on_hand", allow_zero=True)
    payload = {
        "sku": sku,
        "warehouse": warehouse,
        "counted": counted,
        "delta": delta,
        "expected_on_hand": expected_on_hand,
    }

    def body() -> OperationResult:
        row = _lock_one_row(sku, warehouse)
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
        if new_on_hand - row.reserved < -row.backorder_allowance:
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

    key = _derived_key("adjust", idempotency_key, reference, sku, warehouse)
    return _run_idempotent(key, "adjust", payload, body)


@_translate_lock_timeouts
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

    Only available stock moves (on hand minus reserved, the backorder allowance
    does not count). The destination must be active; the source may be inactive
    (emptying a closing site). Locks: source and destination rows, in pk order.
    """
    if source == destination:
        raise errors.SameWarehouse()
    if not lines:
        raise errors.InvalidInput("A transfer needs at least one line.")
    merged: dict[str, int] = {}
    for line in lines:
        merged[line.sku] = merged.get(line.sku, 0) + _check_quantity(line.quantity)
    for sku, qty in merged.items():
        _check_quantity(qty, name=f"quantity of {sku}")
    reference = reference or Reference(ReferenceType.TRANSFER, str(uuid.uuid4()))
    payload = {"source": source, "destination": destination, "lines": sorted(merged.items())}

    def body() -> OperationResult:
        pairs = [(sku, source) for sku in merged] + [(sku, destination) for sku in merged]
        rows = _lock_rows(pairs, create_missing=True, require_active=[destination])
        short = []
        for sku, qty in merged.items():
            src = rows[(sku, source)]
            movable = src.on_hand - src.reserved
            if qty > movable:
                short.append(
                    {
                        "sku": sku,
                        "warehouse": source,
                        "requested": qty,
                        "available": max(movable, 0),
                    }
                )
        if short:
            raise errors.InsufficientStock(
                short, message=f"Not enough available stock in {source}."
            )
        changes = []
        for sku, qty in sorted(merged.items()):
            changes.append(
                _Change(rows[(sku, source)], TransactionType.TRANSFER, on_hand_delta=-qty)
            )
            changes.append(
                _Change(rows[(sku, destination)], TransactionType.TRANSFER, on_hand_delta=qty)
            )
        ledger = _apply_changes(changes, actor=actor, reference=reference, reason=reason)
        return OperationResult(transactions=ledger, reference=reference)

    key = _derived_key("transfer", idempotency_key, None)
    return _run_idempotent(key, "transfer", payload, body)


# --- Reservations ---------------------------------------------------------


def _normalise_reserve_lines(
    lines: Sequence[ReserveLine], requested_lines: int | None = None
) -> dict[tuple[str, str], int]:
    if not lines:
        raise errors.InvalidInput("An order needs at least one line.")
    if (requested_lines if requested_lines is not None else len(lines)) > (
        settings.STOCKROOM_MAX_ORDER_LINES
    ):
        raise errors.InvalidInput(
            f"At most {settings.STOCKROOM_MAX_ORDER_LINES} lines per order.",
            details={"max_lines": settings.STOCKROOM_MAX_ORDER_LINES},
        )
    merged: dict[tuple[str, str], int] = {}
    for line in lines:
        if not line.sku or not line.warehouse:
            raise errors.InvalidInput("Every line needs a SKU and a warehouse.")
        key = (line.sku, line.warehouse)
        merged[key] = merged.get(key, 0) + _check_quantity(line.quantity)
    for (sku, _), qty in merged.items():
        _check_quantity(qty, name=f"quantity of {sku}")
    return merged


def _reservation_fingerprint(merged: dict[tuple[str, str], int], actor: str) -> str:
    """Identifies "the same order again": the same lines, placed by the same actor.
    Another actor sending a taken order id with the same lines gets OrderConflict,
    never the other's reservation."""
    lines = sorted([sku, code, qty] for (sku, code), qty in merged.items())
    return _fingerprint({"placed_by": actor, "lines": lines})


def _existing_reservation(order_id: str, fingerprint: str) -> Reservation | None:
    existing = Reservation.objects.filter(order_id=order_id).first()
    if existing is not None and existing.request_fingerprint != fingerprint:
        raise errors.OrderConflict(details={"order_id": order_id})
    return existing


def reservation_exists(order_id: str) -> bool:
    """Whether an order id holds a reservation (any status).

    Asked before the sold-out gate's refusal stands: the gate's memory of placed
    orders is written after commit and can be lost (a process killed between the
    two), and a retry of a placed order must get its reservation, not "sold out".
    One index lookup, only on a refusal.
    """
    return Reservation.objects.filter(order_id=order_id).exists()


def _check_order_id(order_id: str) -> str:
    if not isinstance(order_id, str) or not order_id.strip() or len(order_id) > 100:
        raise errors.InvalidInput("order_id must be a string of 1 to 100 characters.")
    if "/" in order_id:
        # The order's own URL (/reservations/{order_id}/...) could not name it.
        raise errors.InvalidInput(
            "order_id may not contain '/'.", details={"order_id": ["May not contain '/'."]}
        )
    return order_id


@_translate_lock_timeouts
def stock_reserve(
    *,
    order_id: str,
    lines: Sequence[ReserveLine],
    actor: str,
    expires_at: datetime | None = None,
    requested_lines: int | None = None,
) -> ReservationResult:
    """RESERVE: hold stock for an order, all lines or none.

    Idempotent by order id: the same lines again return the existing
    reservation (created=False); different lines raise OrderConflict.
    Lines for the same SKU and warehouse are merged.
    Locks: the new Reservation row (a concurrent duplicate of the same order
    waits here, holding nothing else), then every line's inventory row in pk
    order. A short line raises InsufficientStock listing every short line.
    Holds past their `expires_at` (by `inventory.clock`) count nowhere: a line
    that needs their units releases them, earliest expiry first, in this
    transaction (their orders locked SKIP LOCKED after the rows).
    `requested_lines`: how many lines the client's request had, when routing
    split them (the STOCKROOM_MAX_ORDER_LINES limit counts those).
    """
    order_id = _check_order_id(order_id)
    merged = _normalise_reserve_lines(lines, requested_lines)
    # The sold-out gate: refused at cache speed, without touching the database,
    # only when every line is sold out in the committed cached state.
    sold_out = availability_cache.sold_out_lines(
        [(sku, code, qty) for (sku, code), qty in sorted(merged.items())], order_id=order_id
    )
    if sold_out and not reservation_exists(order_id):
        raise errors.SoldOut(sold_out)
    fingerprint = _reservation_fingerprint(merged, actor)
    if _use_sql_engine():
        request = _OrderRequest(order_id, merged, fingerprint, expires_at)
        outcome = _reserve_in_database([request], actor=actor)[0]
        if outcome.error is not None:
            raise outcome.error
        return outcome.result
    existing = _existing_reservation(order_id, fingerprint)
    if existing is not None:
        return ReservationResult(existing, created=False)
    now = clock.now()

    def body() -> ReservationResult:
        reservation = Reservation.objects.create(
            order_id=order_id,
            request_fingerprint=fingerprint,
            expires_at=expires_at,
            created_by=actor,
        )
        rows = _lock_rows(
            merged.keys(), create_missing=True, require_active={code for _, code in merged}
        )
        # Holds past their expiry count nowhere: a line short without them may
        # take their units (they are released below, in this transaction).
        lapsed = {
            pair: _lapsed_lines(rows[pair], now)
            for pair, qty in merged.items()
            if qty > _available(rows[pair])
        }
        short = [
            {
                "sku": sku,
                "warehouse": code,
                "requested": qty,
                "available": max(
                    _available(rows[(sku, code)])
                    + sum(line.quantity_open for line in lapsed.get((sku, code), ())),
                    0,
                ),
            }
            for (sku, code), qty in sorted(merged.items())
            if qty
            > _available(rows[(sku, code)])
            + sum(line.quantity_open for line in lapsed.get((sku, code), ()))
        ]
        if short:
            raise errors.InsufficientStock(short)
        for pair, lines_lapsed in sorted(lapsed.items(), key=lambda item: rows[item[0]].pk):
            _release_lapsed(rows[pair], lines_lapsed, merged[pair] - _available(rows[pair]))
        ordered = sorted(merged.items(), key=lambda item: rows[item[0]].pk)
        ledger = _apply_changes(
            [
                _Change(
                    rows[pair],
                    TransactionType.RESERVE,
                    reserved_delta=qty,
                    holds=((expires_at, qty),) if expires_at is not None else (),
                )
                for pair, qty in ordered
            ],
            actor=actor,
            reference=Reference(ReferenceType.ORDER, order_id),
            created_orders=[order_id],
        )
        new_lines = ReservationLine.objects.bulk_create(
            [
                ReservationLine(
                    reservation=reservation,
                    inventory=rows[pair],
                    product=rows[pair].product,
                    warehouse=rows[pair].warehouse,
                    quantity=qty,
                )
                for pair, qty in ordered
            ]
        )
        reservation._prefetched_objects_cache = {"lines": new_lines}
        return ReservationResult(reservation, created=True, transactions=ledger)

    try:
        return _in_transaction(body)
    except IntegrityError:
        # A concurrent request for the same order id committed first.
        existing = _existing_reservation(order_id, fingerprint)
        if existing is not None:
            return ReservationResult(existing, created=False)
        raise


def _lapsed_lines(row: Inventory, now: datetime) -> list[ReservationLine]:
    """Open lines on a locked row whose order's hold expired by `now`, earliest
    expiry first, with their orders locked. SKIP LOCKED: never waits (an order
    being closed right now is left to its closer), so taking these reservation
    locks after the row's cannot cycle with a closer's order (reservation, then
    rows; inventory/locks.py)."""
    return list(
        ReservationLine.objects.select_related("reservation")
        .select_for_update(no_key=True, of=("reservation",), skip_locked=True)
        .filter(
            inventory_id=row.pk,
            status=ReservationStatus.ACTIVE,
            reservation__status=ReservationStatus.ACTIVE,
            reservation__expires_at__lte=now,
        )
        .order_by("reservation__expires_at", "id")
    )


def _release_lapsed(row: Inventory, lines: Sequence[ReservationLine], needed: int) -> None:
    """Release lapsed lines on a locked row, earliest first, whole lines, until
    `needed` units are free: as the sweeper would (RELEASE, status expired), in
    the reserving transaction. The ORM twin of migration 0012's release."""
    from ..actors import SYSTEM_SWEEPER

    for line in lines:
        if needed <= 0:
            break
        units = line.quantity_open
        if units <= 0:
            continue
        reservation = line.reservation
        _apply_changes(
            [
                _Change(
                    row,
                    TransactionType.RELEASE,
                    reserved_delta=-units,
                    holds=((reservation.expires_at, -units),),
                )
            ],
            actor=SYSTEM_SWEEPER,
            reference=Reference(ReferenceType.ORDER, reservation.order_id),
            reason="reservation hold expired",
        )
        line.quantity_released += units
        line.status = (
            ReservationStatus.FULFILLED if line.quantity_fulfilled else ReservationStatus.EXPIRED
        )
        line.save(update_fields=["quantity_released", "status"])
        siblings = list(ReservationLine.objects.filter(reservation_id=reservation.pk))
        status = _order_status(siblings, ReservationStatus.EXPIRED)
        if status != reservation.status:
            reservation.status = status
            reservation.save(update_fields=["status", "updated_at"])
        needed -= units


# --- Reservations in one round trip (PostgreSQL) -----------------------------


def _use_sql_engine() -> bool:
    """PostgreSQL reserves through `stockroom_reserve_orders` (migration 0003):
    one statement per order or batch. STOCKROOM_RESERVE_ENGINE=python forces the
    Python implementation (the only one on SQLite); both give the same results."""
    from django.db import connection

    engine = getattr(settings, "STOCKROOM_RESERVE_ENGINE", "sql")
    return engine == "sql" and connection.vendor == "postgresql"


@dataclass(frozen=True)
class _OrderRequest:
    order_id: str
    merged: dict[tuple[str, str], int]
    fingerprint: str
    expires_at: datetime | None


class ReservationOutcome:
    """One order's result in a batch: `result` when reserved (or already held),
    `error` (an InventoryError) when not.

    `created`, `status` and `expires_at` are plain values; `result` (the
    Reservation with its lines and ledger rows, as model instances) is built
    on first access, so a caller that only reports outcomes (the batch API) does
    not pay for hundreds of model objects per call.
    """

    __slots__ = ("_build", "_result", "created", "error", "expires_at", "order_id", "status")

    def __init__(
        self,
        order_id: str,
        result: ReservationResult | None = None,
        error: errors.InventoryError | None = None,
        *,
        created: bool | None = None,
        status: str | None = None,
        expires_at: datetime | None = None,
        build: Callable[[], ReservationResult] | None = None,
    ) -> None:
        self.order_id = order_id
        self.error = error
        self._result = result
        self._build = build
        if result is not None:
            created = result.created
            status = result.reservation.status
            expires_at = result.reservation.expires_at
        self.created = created
        self.status = status
        self.expires_at = expires_at

    @property
    def result(self) -> ReservationResult | None:
        if self._result is None and self._build is not None:
            self._result = self._build()
            self._build = None
        return self._result

    def __repr__(self) -> str:
        state = "error" if self.error else ("created" if self.created else "exists")
        return f"ReservationOutcome({self.order_id!r}, {state})"


def _call_stock_function(sql: str, params: Sequence[Any]) -> dict:
    """Run one of the PostgreSQL stock functions (migrations 0003-0008); its JSON answer."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (payload,) = cursor.fetchone()
    return json.loads(payload) if isinstance(payload, str) else payload


def _call_reserve_function(requests: Sequence[_OrderRequest], actor: str, request_id: str) -> dict:
    skus, codes, qtys, counts = [], [], [], []
    for request in requests:
        items = sorted(request.merged.items())
        counts.append(len(items))
        for (sku, code), qty in items:
            skus.append(sku)
            codes.append(code)
            qtys.append(qty)
    return _call_stock_function(
        "SELECT stockroom_reserve_orders(%s, %s, %s::timestamptz[], %s, %s, %s, %s, %s, %s, %s)",
        [
            [r.order_id for r in requests],
            [r.fingerprint for r in requests],
            [r.expires_at for r in requests],
            counts,
            skus,
            codes,
            qtys,
            actor,
            request_id,
            clock.now(),  # holds expired by this instant count nowhere (migration 0012)
        ],
    )


def _hold_changes(
    requests: Sequence[_OrderRequest], created: set[str], released: Sequence[list]
) -> dict[tuple[str, str], list[tuple[datetime, int]]]:
    """Per row, the holds with an expiry that one call of the reserve function
    opened (created orders with `expires_at`) and closed (lapsed holds it
    released to make room), for the read model's write-through."""
    holds: dict[tuple[str, str], list[tuple[datetime, int]]] = {}
    for request in requests:
        if request.expires_at is not None and request.order_id in created:
            for pair, qty in request.merged.items():
                holds.setdefault(pair, []).append((request.expires_at, qty))
    for sku, code, expires_at, qty, _order_id in released:
        holds.setdefault((sku, code), []).append((datetime.fromisoformat(expires_at), -qty))
    return holds


def _reserve_in_database(
    requests: Sequence[_OrderRequest], *, actor: str
) -> list[ReservationOutcome]:
    """Reserve orders with one statement (one transaction when called outside a
    transaction). Orders that need inventory rows created first (a backorder SKU
    in a new warehouse) get them, holding no locks, and are tried once more."""
    outcomes: dict[str, ReservationOutcome] = {}
    pending = list(requests)
    request_id = current_request_id()
    for attempt in range(2):
        payload = _call_reserve_function(pending, actor, request_id)
        retry = []
        created_ids: list[str] = []
        existing: list[str] = []
        changes = _changes_from_sql(payload["changes"], TransactionType.RESERVE)
        batch = _CreatedBatch(payload, changes, actor, request_id)
        for request, (status, reservation_id, detail) in zip(
            pending, payload["orders"], strict=True
        ):
            order_id = request.order_id
            if status == "created":
                outcomes[order_id] = ReservationOutcome(
                    order_id,
                    created=True,
                    status=ReservationStatus.ACTIVE,
                    expires_at=request.expires_at,
                    build=partial(batch.result, request, reservation_id),
                )
                created_ids.append(order_id)
            elif status == "exists":
                existing.append(order_id)
            elif status == "conflict":
                outcomes[order_id] = ReservationOutcome(
                    order_id, error=errors.OrderConflict(details={"order_id": order_id})
                )
            elif status == "insufficient":
                outcomes[order_id] = ReservationOutcome(
                    order_id, error=errors.InsufficientStock(detail)
                )
            elif status == "inactive":
                outcomes[order_id] = ReservationOutcome(
                    order_id, error=errors.WarehouseInactive(detail)
                )
            elif status == "missing":
                pairs = {(sku, code) for sku, code in detail}
                try:
                    _check_known(pairs)
                except errors.InventoryError as exc:
                    outcomes[order_id] = ReservationOutcome(order_id, error=exc)
                    continue
                if attempt == 0:
                    _create_rows(pairs)
                    retry.append(request)
                else:  # pragma: no cover - rows exist after _create_rows
                    outcomes[order_id] = ReservationOutcome(
                        order_id, error=errors.InsufficientStock([])
                    )
        if existing:
            # Retried orders: their reservations, in one query.
            for reservation in Reservation.objects.filter(order_id__in=existing):
                outcomes[reservation.order_id] = ReservationOutcome(
                    reservation.order_id, ReservationResult(reservation, created=False)
                )
        if changes:
            holds = _hold_changes(pending, set(created_ids), payload.get("released", ()))
            changes = tuple(
                replace(c, holds=tuple(holds.get((c.sku, c.warehouse_code), ()))) for c in changes
            )
            # One after-commit publication: the availability cache writes the
            # rows and remembers the created orders (the gate's retry memory) in
            # one Redis call for the whole batch.
            transaction.on_commit(
                partial(_publish_committed_changes, CommittedChanges(changes, created_ids))
            )
        if not retry:
            break
        pending = retry
    return [outcomes[r.order_id] for r in requests]


def _changes_from_sql(rows: Sequence[list], txn_type: str) -> tuple[CommittedChange, ...]:
    """The changed rows a stock function answered ([id, product, warehouse,
    on_hand, reserved, version, sku, code]) as CommittedChanges to publish."""
    return tuple(
        CommittedChange(
            inventory_id=uuid.UUID(c[0]),
            product_id=uuid.UUID(c[1]),
            warehouse_id=uuid.UUID(c[2]),
            type=txn_type,
            on_hand=c[3],
            reserved=c[4],
            version=c[5],
            sku=c[6],
            warehouse_code=c[7],
        )
        for c in rows
    )


ModelT = TypeVar("ModelT", bound=models.Model)


def _saved(instance: ModelT) -> ModelT:
    """A model instance built from a row a stock function wrote: marked as saved,
    so Django treats it as loaded from the database."""
    instance._state.adding = False
    instance._state.db = "default"
    return instance


class _CreatedBatch:
    """What one call of the reserve function answered, kept to build a created
    order's ReservationResult (model instances) only when someone asks for it."""

    def __init__(
        self, payload: dict, changes: tuple[CommittedChange, ...], actor: str, request_id: str
    ) -> None:
        self.payload = payload
        self.changes = changes
        self.actor = actor
        self.request_id = request_id
        self._at: datetime | None = None
        self._names: dict[tuple[uuid.UUID, uuid.UUID], tuple[str, str]] | None = None
        self._ledger: dict[str, list[list]] | None = None

    def _index(self) -> None:
        self._at = datetime.fromisoformat(self.payload["at"])
        self._names = {
            (c.product_id, c.warehouse_id): (c.sku, c.warehouse_code) for c in self.changes
        }
        self._ledger = {}
        for entry in self.payload["ledger"]:
            self._ledger.setdefault(entry[6], []).append(entry)

    def result(self, request: _OrderRequest, reservation_id: str) -> ReservationResult:
        if self._ledger is None:
            self._index()
        at = self._at
        transactions = [
            _saved(
                InventoryTransaction(
                    id=uuid.UUID(entry[0]),
                    product_id=uuid.UUID(entry[1]),
                    warehouse_id=uuid.UUID(entry[2]),
                    type=TransactionType.RESERVE,
                    on_hand_delta=0,
                    reserved_delta=entry[3],
                    on_hand_after=entry[4],
                    reserved_after=entry[5],
                    reference_type=ReferenceType.ORDER,
                    reference_id=entry[6],
                    created_at=at,
                    created_by=self.actor,
                    request_id=self.request_id,
                )
            )
            for entry in self._ledger.get(request.order_id, [])
        ]
        reservation = _saved(
            Reservation(
                id=uuid.UUID(reservation_id),
                order_id=request.order_id,
                status=ReservationStatus.ACTIVE,
                expires_at=request.expires_at,
                request_fingerprint=request.fingerprint,
                created_by=self.actor,
                created_at=at,
                updated_at=at,
            )
        )
        _attach_new_lines(reservation, transactions, self._names)
        return ReservationResult(reservation, created=True, transactions=transactions)


def _attach_new_lines(
    reservation: Reservation,
    transactions: Sequence[InventoryTransaction],
    names: dict[tuple[uuid.UUID, uuid.UUID], tuple[str, str]],
) -> None:
    """Give a just-created reservation its lines (from its RESERVE ledger rows), as
    if prefetched: `reservation.lines.all()` then needs no query."""
    from warehouses.models import Warehouse

    lines = []
    for txn in transactions:
        sku, code = names[(txn.product_id, txn.warehouse_id)]
        line = _saved(
            ReservationLine(
                reservation=reservation,
                product=Product(id=txn.product_id, sku=sku),
                warehouse=Warehouse(id=txn.warehouse_id, code=code),
                quantity=txn.reserved_delta,
            )
        )
        lines.append(line)
    reservation._prefetched_objects_cache = {"lines": lines}


@dataclass(frozen=True)
class OrderRequest:
    """One order of a batch reservation."""

    order_id: str
    lines: Sequence[ReserveLine]
    expires_at: datetime | None = None


@_translate_lock_timeouts
def stock_reserve_batch(*, orders: Sequence[OrderRequest], actor: str) -> list[ReservationOutcome]:
    """RESERVE many orders at once; each order all-or-nothing on its own.

    Returns one outcome per order, in the order given: the reservation (created,
    or the existing one for a retried order id) or the error that order got.
    On PostgreSQL the whole batch is one statement and one commit: every row it
    needs is locked once, in primary-key order, and a SKU that many orders want
    is updated once with the summed quantity. Idempotent by order id. An order
    id may appear only once per batch. Invalid input in any order (bad quantity,
    too many lines) refuses the whole batch before anything happens.
    """
    max_orders = settings.STOCKROOM_MAX_BATCH_ORDERS
    if not orders or len(orders) > max_orders:
        raise errors.InvalidInput(
            f"A batch holds 1 to {max_orders} orders.", details={"max_orders": max_orders}
        )
    requests = []
    seen: set[str] = set()
    for order in orders:
        order_id = _check_order_id(order.order_id)
        if order_id in seen:
            raise errors.InvalidInput(
                f"Order id {order_id!r} appears twice in the batch.",
                details={"order_id": order_id},
            )
        seen.add(order_id)
        merged = _normalise_reserve_lines(order.lines)
        requests.append(
            _OrderRequest(
                order_id, merged, _reservation_fingerprint(merged, actor), order.expires_at
            )
        )
    if _use_sql_engine():
        return _reserve_in_database(requests, actor=actor)
    outcomes = []
    for request in requests:
        lines = [ReserveLine(sku, code, qty) for (sku, code), qty in request.merged.items()]
        try:
            result = stock_reserve(
                order_id=request.order_id, lines=lines, actor=actor, expires_at=request.expires_at
            )
            outcomes.append(ReservationOutcome(request.order_id, result=result))
        except errors.InventoryError as exc:
            outcomes.append(ReservationOutcome(request.order_id, error=exc))
    return outcomes


def _close_order_lines(
    *,
    order_id: str,
    lines: Sequence[OrderLine] | None,
    actor: str,
    reason: str,
    txn_type: str,
    closing_status: str,
    idempotency_key: str | None,
    placed_by: str | None,
) -> ReservationResult:
    """Release or fulfil what an order holds: all of it, or the given lines.
    With `placed_by`, only an order that actor placed is found.

    An order with nothing open (released, fulfilled, expired) raises OrderClosed
    naming its status; so does a hold past its `expires_at` (`clock.now()`),
    which is first expired as the sweeper would (`_expire_lapsed`). The sweeper
    itself (`closing_status` expired) finding nothing open is a no-op: it raced
    a release or fulfilment, which won.
    """
    order_id = _check_order_id(order_id)
    now = clock.now()
    if lines is None and idempotency_key is None and _use_sql_engine():
        return _close_in_database(
            order_id, txn_type, closing_status, actor, reason, placed_by, now=now
        )
    requested: list[OrderLine] | None = None
    if lines is not None:
        if not lines:
            raise errors.InvalidInput("Give at least one line, or none for the whole order.")
        requested = [
            OrderLine(line.sku, _check_quantity(line.quantity), line.warehouse) for line in lines
        ]
    payload = {
        "order_id": order_id,
        "lines": (
            sorted([line.sku, line.warehouse or "", line.quantity] for line in requested)
            if requested is not None
            else None
        ),
    }
    result_holder: dict[str, ReservationResult] = {}

    def body() -> OperationResult:
        reservation = lock_reservation(order_id, placed_by=placed_by)
        if reservation is None:
            raise errors.ReservationNotFound(details={"order_id": order_id})
        sweeping = closing_status == ReservationStatus.EXPIRED
        if not sweeping and _lapsed(reservation, now):
            raise _HoldLapsed()
        res_lines = list(reservation.lines.select_related("product", "warehouse").order_by("id"))
        if not sweeping and not any(line.quantity_open > 0 for line in res_lines):
            raise errors.OrderClosed(order_id, reservation.status)
        # How much to take from each reservation line.
        take: dict[uuid.UUID, int] = {}
        if requested is None:
            for line in res_lines:
                if line.quantity_open > 0:
                    take[line.pk] = line.quantity_open
        else:
            stocked: dict[tuple[str, str], Inventory] = {}
            if txn_type == TransactionType.FULFILL:
                # Ship from lines whose stock has arrived first: a backordered line
                # (nothing on hand) must not refuse what another warehouse's line
                # can ship. Locks the candidates' rows now, in pk order.
                wanted = {want.sku for want in requested}
                stocked = lock_inventory_rows(
                    {
                        (line.product.sku, line.warehouse.code)
                        for line in res_lines
                        if line.product.sku in wanted and line.quantity_open > 0
                    }
                )
            short = []
            for want in requested:
                candidates = [
                    line
                    for line in res_lines
                    if line.product.sku == want.sku
                    and (want.warehouse is None or line.warehouse.code == want.warehouse)
                ]
                if stocked:  # stable: line order among equals; closed lines have no row here
                    candidates.sort(key=lambda line: _nothing_on_hand(stocked, line))
                remaining = want.quantity
                for line in candidates:
                    can = line.quantity_open - take.get(line.pk, 0)
                    step = min(can, remaining)
                    if step > 0:
                        take[line.pk] = take.get(line.pk, 0) + step
                        remaining -= step
                if remaining > 0:
                    short.append(
                        {
                            "sku": want.sku,
                            "warehouse": want.warehouse,
                            "requested": want.quantity,
                            "held": want.quantity - remaining,
                        }
                    )
            if short:
                raise errors.ExceedsReservation(
                    f"Order {order_id} does not hold that much.", details={"lines": short}
                )
        by_pk = {line.pk: line for line in res_lines}
        pairs = {(by_pk[pk].product.sku, by_pk[pk].warehouse.code) for pk in take}
        rows = lock_inventory_rows(pairs)
        changes = []
        if txn_type == TransactionType.FULFILL:
            short = []
            for pk, qty in take.items():
                line = by_pk[pk]
                row = rows[(line.product.sku, line.warehouse.code)]
                if qty > row.on_hand:
                    short.append(
                        {
                            "sku": line.product.sku,
                            "warehouse": line.warehouse.code,
                            "requested": qty,
                            "on_hand": row.on_hand,
                        }
                    )
            if short:
                raise errors.InsufficientOnHand(short)
        for pk, qty in sorted(
            take.items(),
            key=lambda item: rows[(by_pk[item[0]].product.sku, by_pk[item[0]].warehouse.code)].pk,
        ):
            line = by_pk[pk]
            row = rows[(line.product.sku, line.warehouse.code)]
            if txn_type == TransactionType.FULFILL:
                changes.append(_Change(row, txn_type, on_hand_delta=-qty, reserved_delta=-qty))
                line.quantity_fulfilled += qty
            else:
                changes.append(_Change(row, txn_type, reserved_delta=-qty))
                line.quantity_released += qty
            if line.quantity_open == 0:
                line.status = (
                    ReservationStatus.FULFILLED if line.quantity_fulfilled else closing_status
                )
        ledger = _apply_changes(
            changes, actor=actor, reference=Reference(ReferenceType.ORDER, order_id), reason=reason
        )
        if take:
            ReservationLine.objects.bulk_update(
                [by_pk[pk] for pk in take], ["quantity_fulfilled", "quantity_released", "status"]
            )
        # Nothing open (a sweep of an order just cancelled; a release or fulfil
        # raised OrderClosed above): nothing closed, the order's status stays.
        new_status = _order_status(res_lines, closing_status) if take else reservation.status
        if new_status != reservation.status:
            reservation.status = new_status
            reservation.save(update_fields=["status", "updated_at"])
        result_holder["result"] = ReservationResult(reservation, created=False, transactions=ledger)
        return OperationResult(
            transactions=ledger, reference=Reference(ReferenceType.ORDER, order_id)
        )

    operation = "fulfill" if txn_type == TransactionType.FULFILL else "release"
    key = (
        _fit_key(operation, f"{operation}:order:{order_id}:key:{idempotency_key}")
        if idempotency_key
        else None
    )
    try:
        outcome = _run_idempotent(key, operation, payload, body)
    except _HoldLapsed:
        raise _expire_lapsed(order_id, placed_by) from None
    if outcome.replayed:
        reservation = Reservation.objects.get(order_id=order_id)
        return ReservationResult(reservation, created=False, transactions=outcome.transactions)
    return result_holder["result"]


class _HoldLapsed(Exception):
    """The order's hold is past its `expires_at`: rolls back a release, fulfilment or
    confirmation, which `_expire_lapsed` then turns into the expiry."""


# The ledger's reason on the RELEASE rows of an expired hold (sweeper or close).
EXPIRY_REASON = "reservation hold expired"


def _lapsed(reservation: Reservation, now: datetime) -> bool:
    """An active hold past its `expires_at`: it counts as expired, swept or not."""
    return (
        reservation.status == ReservationStatus.ACTIVE
        and reservation.expires_at is not None
        and reservation.expires_at <= now
    )


def _expire_lapsed(order_id: str, placed_by: str | None) -> errors.OrderClosed:
    """Expire a lapsed hold now, exactly as the sweeper would (RELEASE rows by the
    sweeper, status expired), and return the OrderClosed to raise for the call
    that found it lapsed. Committed even though that call answers an error: the
    hold is gone either way, and its units are sellable at once."""
    from ..actors import SYSTEM_SWEEPER

    result = _close_order_lines(
        order_id=order_id,
        lines=None,
        actor=SYSTEM_SWEEPER,
        reason=EXPIRY_REASON,
        txn_type=TransactionType.RELEASE,
        closing_status=ReservationStatus.EXPIRED,
        idempotency_key=None,
        placed_by=placed_by,
    )
    return errors.OrderClosed(order_id, result.reservation.status)


def _nothing_on_hand(rows: dict[tuple[str, str], Inventory], line: ReservationLine) -> bool:
    row = rows.get((line.product.sku, line.warehouse.code))
    return row is None or row.on_hand <= 0


def _close_in_database(
    order_id: str,
    txn_type: str,
    closing_status: str,
    actor: str,
    reason: str,
    placed_by: str | None,
    *,
    now: datetime,
) -> ReservationResult:
    """A whole order's release or fulfilment in one statement
    (`stockroom_close_order`, migrations 0008-0011); the same result as the ORM path.

    A hold past its `expires_at` at `now` is expired by the same statement (as the
    sweeper would) and answered 'lapsed'; an order with nothing open 'closed'.
    Both raise OrderClosed (the expiry is committed by then, unless the caller's
    own transaction rolls it back)."""
    from warehouses.models import Warehouse

    from ..actors import SYSTEM_SWEEPER

    request_id = current_request_id()
    payload = _call_stock_function(
        "SELECT stockroom_close_order(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            order_id,
            txn_type,
            closing_status,
            actor,
            reason,
            request_id,
            placed_by,
            now,
            SYSTEM_SWEEPER,
            EXPIRY_REASON,
        ],
    )
    if payload["status"] == "not_found":
        raise errors.ReservationNotFound(details={"order_id": order_id})
    if payload["status"] == "short":
        raise errors.InsufficientOnHand(payload["short"])
    if payload["status"] == "closed":
        raise errors.OrderClosed(order_id, payload["order_status"])
    if payload["status"] == "lapsed":
        changes = _changes_from_sql(payload["changes"], TransactionType.RELEASE)
        if changes:
            transaction.on_commit(partial(_publish_committed_changes, changes))
        raise errors.OrderClosed(order_id, payload["reservation"][1])
    at = datetime.fromisoformat(payload["at"])
    (
        res_id,
        status,
        expires_at,
        fingerprint,
        created_by,
        created_at,
        updated_at,
        confirmed_at,
    ) = payload["reservation"]
    reservation = _saved(
        Reservation(
            id=uuid.UUID(res_id),
            order_id=order_id,
            status=status,
            expires_at=datetime.fromisoformat(expires_at) if expires_at else None,
            confirmed_at=datetime.fromisoformat(confirmed_at) if confirmed_at else None,
            request_fingerprint=fingerprint,
            created_by=created_by,
            created_at=datetime.fromisoformat(created_at),
            updated_at=datetime.fromisoformat(updated_at),
        )
    )
    lines = []
    for (
        line_id,
        product_id,
        warehouse_id,
        sku,
        code,
        qty,
        fulfilled,
        released,
        line_status,
    ) in payload["lines"]:
        line = _saved(
            ReservationLine(
                id=uuid.UUID(line_id),
                reservation=reservation,
                product=Product(id=uuid.UUID(product_id), sku=sku),
                warehouse=Warehouse(id=uuid.UUID(warehouse_id), code=code),
                quantity=qty,
                quantity_fulfilled=fulfilled,
                quantity_released=released,
                status=line_status,
            )
        )
        lines.append(line)
    reservation._prefetched_objects_cache = {"lines": lines}
    transactions = []
    for (
        txn_id,
        product_id,
        warehouse_id,
        on_hand_delta,
        reserved_delta,
        on_hand,
        reserved,
    ) in payload["ledger"]:
        txn = _saved(
            InventoryTransaction(
                id=uuid.UUID(txn_id),
                product_id=uuid.UUID(product_id),
                warehouse_id=uuid.UUID(warehouse_id),
                type=txn_type,
                on_hand_delta=on_hand_delta,
                reserved_delta=reserved_delta,
                on_hand_after=on_hand,
                reserved_after=reserved,
                reference_type=ReferenceType.ORDER,
                reference_id=order_id,
                reason=reason,
                created_at=at,
                created_by=actor,
                request_id=request_id,
            )
        )
        transactions.append(txn)
    changes = _changes_from_sql(payload["changes"], txn_type)
    if changes:
        transaction.on_commit(partial(_publish_committed_changes, changes))
    return ReservationResult(reservation, created=False, transactions=transactions)


def _order_status(lines: Iterable[ReservationLine], closing_status: str) -> str:
    lines = list(lines)
    if any(line.quantity_open > 0 for line in lines):
        return ReservationStatus.ACTIVE
    if any(line.quantity_fulfilled > 0 for line in lines):
        return ReservationStatus.FULFILLED
    if any(line.status == ReservationStatus.EXPIRED for line in lines):
        return ReservationStatus.EXPIRED
    return closing_status


@_translate_lock_timeouts
def reservation_release(
    *,
    order_id: str,
    actor: str,
    lines: Sequence[OrderLine] | None = None,
    reason: str = "",
    idempotency_key: str | None = None,
    placed_by: str | None = None,
) -> ReservationResult:
    """RELEASE: give back what an order holds (order cancelled), all or the given lines.

    Releasing an order that holds nothing any more (released, fulfilled, expired)
    raises OrderClosed naming its status, and changes nothing; a hold past its
    `expires_at` is expired (as the sweeper would) and raises OrderClosed too. A
    retry with the same `idempotency_key` replays the first (successful) result.
    `placed_by` (an actor): only an order that actor placed is found, any
    other is ReservationNotFound (how storefront API clients are kept to their own).
    Locks: the order's Reservation row, then its inventory rows in pk order.
    """
    return _close_order_lines(
        order_id=order_id,
        lines=lines,
        actor=actor,
        reason=reason,
        txn_type=TransactionType.RELEASE,
        closing_status=ReservationStatus.RELEASED,
        idempotency_key=idempotency_key,
        placed_by=placed_by,
    )


@_translate_lock_timeouts
def reservation_fulfill(
    *,
    order_id: str,
    actor: str,
    lines: Sequence[OrderLine] | None = None,
    reason: str = "",
    idempotency_key: str | None = None,
    placed_by: str | None = None,
) -> ReservationResult:
    """FULFILL: the order shipped; on hand and reserved both drop by what ships.

    Partial fulfilment is allowed; shipping more than is on hand (a backordered
    line whose stock has not arrived) raises InsufficientOnHand. Fulfilling an
    order with nothing open raises OrderClosed naming its status (nothing ships);
    a hold past its `expires_at` is expired (as the sweeper would) and raises
    OrderClosed (status expired): a lapsed hold's units may already be sold to
    another order. A retry with the same `idempotency_key` replays the first
    result.
    `placed_by` (an actor): only an order that actor placed is found, any
    other is ReservationNotFound (how storefront API clients are kept to their own).
    Locks: the order's Reservation row, then its inventory rows in pk order.
    """
    return _close_order_lines(
        order_id=order_id,
        lines=lines,
        actor=actor,
        reason=reason,
        txn_type=TransactionType.FULFILL,
        closing_status=ReservationStatus.FULFILLED,
        idempotency_key=idempotency_key,
        placed_by=placed_by,
    )


# --- Confirming holds ------------------------------------------------------


# The longest hold: what `expires_in` may ask for (reserving and confirming).
MAX_HOLD_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class HoldChange:
    """A hold's expiry changed by a confirmation (`expires_at` None: it can no
    longer lapse) or an extension; published after commit to
    HOLD_CHANGE_LISTENERS. `lines`: (sku, warehouse code, units still held) of
    the order's open lines. No stock changed, so nothing goes to
    COMMITTED_CHANGE_LISTENERS."""

    order_id: str
    expires_at: datetime | None
    previous_expires_at: datetime | None
    lines: tuple[tuple[str, str, int], ...]


# Called after commit with the holds whose expiry a confirmation changed (a read
# model that counts holds by expiry registers here). Errors are logged, never raised.
HOLD_CHANGE_LISTENERS: list[Callable[[tuple[HoldChange, ...]], None]] = []


def _publish_hold_changes(changes: tuple[HoldChange, ...]) -> None:
    for listener in HOLD_CHANGE_LISTENERS:
        try:
            listener(changes)
        except Exception:
            logger.exception("hold-change listener %r failed", listener)


def _hold_changes_on_commit(changed: Sequence[tuple[Reservation, datetime | None]]) -> None:
    """Publish after commit what `changed` ((reservation, previous expiry)) did to
    each hold's expiry; reads the open lines only if anyone listens."""
    if not HOLD_CHANGE_LISTENERS:
        return
    moved = [(r, before) for r, before in changed if r.expires_at != before]
    if not moved:
        return
    open_lines: dict[uuid.UUID, list[tuple[str, str, int]]] = {}
    for res_id, sku, code, qty, fulfilled, released in ReservationLine.objects.filter(
        reservation__in=[r.pk for r, _ in moved], status=ReservationStatus.ACTIVE
    ).values_list(
        "reservation_id",
        "product__sku",
        "warehouse__code",
        "quantity",
        "quantity_fulfilled",
        "quantity_released",
    ):
        open_lines.setdefault(res_id, []).append((sku, code, qty - fulfilled - released))
    changes = tuple(
        HoldChange(r.order_id, r.expires_at, before, tuple(open_lines.get(r.pk, ())))
        for r, before in moved
    )
    transaction.on_commit(partial(_publish_hold_changes, changes))


def _check_expires_in(expires_in: Any) -> int | None:
    if expires_in is None:
        return None
    if (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, int)
        or not 1 <= expires_in <= MAX_HOLD_SECONDS
    ):
        raise errors.InvalidInput(
            f"expires_in must be a whole number of seconds from 1 to {MAX_HOLD_SECONDS}, "
            f"got {expires_in!r}.",
            details={"field": "expires_in", "min": 1, "max": MAX_HOLD_SECONDS},
        )
    return expires_in


_UNCHANGED, _CHANGED, _LAPSED = "unchanged", "changed", "lapsed"


def _confirm_locked(
    reservation: Reservation, *, actor: str, expires_in: int | None, now: datetime
) -> str:
    """Confirm (no `expires_in`) or extend one locked reservation in memory.

    Returns _CHANGED (the caller saves it), _UNCHANGED (a confirmed order confirmed
    again: nothing to write, the same answer) or _LAPSED (past its expiry: the
    caller expires it). A closed order raises OrderClosed."""
    if reservation.status != ReservationStatus.ACTIVE:
        raise errors.OrderClosed(reservation.order_id, reservation.status)
    if _lapsed(reservation, now):
        return _LAPSED
    if expires_in is None and reservation.expires_at is None and reservation.confirmed_at:
        return _UNCHANGED
    reservation.expires_at = None if expires_in is None else now + timedelta(seconds=expires_in)
    reservation.confirmed_at = now
    reservation.confirmed_by = actor
    reservation.updated_at = timezone.now()
    return _CHANGED


_CONFIRM_FIELDS = ["expires_at", "confirmed_at", "confirmed_by", "updated_at"]


@_translate_lock_timeouts
def reservation_confirm(
    *,
    order_id: str,
    actor: str,
    expires_in: int | None = None,
    placed_by: str | None = None,
) -> ReservationResult:
    """CONFIRM an order's hold (a payment arrived): it can no longer lapse.

    With `expires_in` (seconds) the hold is extended instead: it lapses at
    `clock.now() + expires_in`. Records `confirmed_at`/`confirmed_by`; changes no
    stock and writes no ledger row. Confirming a confirmed order again changes
    nothing (the same answer). A closed order (released, fulfilled, expired)
    raises OrderClosed; so does a hold already past its `expires_at`, which is
    expired first, as the sweeper would. `placed_by`: as for release.
    Locks: the order's Reservation row only.
    """
    order_id = _check_order_id(order_id)
    expires_in = _check_expires_in(expires_in)
    now = clock.now()
    with transaction.atomic():
        reservation = lock_reservation(order_id, placed_by=placed_by)
        if reservation is None:
            raise errors.ReservationNotFound(details={"order_id": order_id})
        before = reservation.expires_at
        outcome = _confirm_locked(reservation, actor=actor, expires_in=expires_in, now=now)
        if outcome == _CHANGED:
            reservation.save(update_fields=_CONFIRM_FIELDS)
            _hold_changes_on_commit([(reservation, before)])
    if outcome == _LAPSED:
        raise _expire_lapsed(order_id, placed_by)
    return ReservationResult(reservation, created=False)


@dataclass(frozen=True)
class ConfirmRequest:
    """One order of a batch confirmation; `expires_in` extends instead."""

    order_id: str
    expires_in: int | None = None


@dataclass
class ConfirmOutcome:
    """One order's result in a batch confirmation: the reservation, or the error
    (ReservationNotFound, OrderClosed) that order alone got."""

    order_id: str
    reservation: Reservation | None = None
    error: errors.InventoryError | None = None


@_translate_lock_timeouts
def reservations_confirm_batch(
    *, orders: Sequence[ConfirmRequest], actor: str, placed_by: str | None = None
) -> list[ConfirmOutcome]:
    """CONFIRM (or extend) many orders' holds at once; each order on its own.

    One outcome per order, in the order given, each what `reservation_confirm`
    would do for that order alone. Invalid input anywhere (an order id twice, a
    bad `expires_in`, too many orders) refuses the whole batch, changing nothing.
    Locks: the orders' Reservation rows, in primary-key order, in one statement
    (and no inventory row: a close, which locks one Reservation row and then
    inventory rows, never waits for a second Reservation row, so this cannot
    deadlock with it). Lapsed holds are expired afterwards, each in its own
    transaction, as the sweeper would.
    """
    max_orders = settings.STOCKROOM_MAX_BATCH_ORDERS
    if not orders or len(orders) > max_orders:
        raise errors.InvalidInput(
            f"A batch holds 1 to {max_orders} orders.", details={"max_orders": max_orders}
        )
    seen: set[str] = set()
    for order in orders:
        order_id = _check_order_id(order.order_id)
        if order_id in seen:
            raise errors.InvalidInput(
                f"Order id {order_id!r} appears twice in the batch.",
                details={"order_id": order_id},
            )
        seen.add(order_id)
        _check_expires_in(order.expires_in)
    now = clock.now()
    outcomes: dict[str, ConfirmOutcome] = {}
    lapsed: list[str] = []
    with transaction.atomic():
        found = Reservation.objects.select_for_update(no_key=True).filter(order_id__in=seen)
        if placed_by is not None:
            found = found.filter(created_by=placed_by)
        reservations = {r.order_id: r for r in found.order_by("pk")}
        changed: list[tuple[Reservation, datetime | None]] = []
        for order in orders:
            reservation = reservations.get(order.order_id)
            if reservation is None:
                outcomes[order.order_id] = ConfirmOutcome(
                    order.order_id,
                    error=errors.ReservationNotFound(details={"order_id": order.order_id}),
                )
                continue
            before = reservation.expires_at
            try:
                outcome = _confirm_locked(
                    reservation, actor=actor, expires_in=order.expires_in, now=now
                )
            except errors.OrderClosed as exc:
                outcomes[order.order_id] = ConfirmOutcome(order.order_id, error=exc)
                continue
            if outcome == _LAPSED:
                lapsed.append(order.order_id)
                continue
            if outcome == _CHANGED:
                changed.append((reservation, before))
            outcomes[order.order_id] = ConfirmOutcome(order.order_id, reservation=reservation)
        if changed:
            Reservation.objects.bulk_update([r for r, _ in changed], _CONFIRM_FIELDS)
            _hold_changes_on_commit(changed)
    expire = _translate_lock_timeouts(_expire_lapsed)
    for order_id in lapsed:
        try:
            error = expire(order_id, placed_by)
        except errors.StockBusy:
            # Its rows are busy: the sweeper expires it later; lapsed, it is closed now.
            error = errors.OrderClosed(order_id, ReservationStatus.EXPIRED)
        outcomes[order_id] = ConfirmOutcome(order_id, error=error)
    return [outcomes[order.order_id] for order in orders]


def reservations_expire(
    *, now: datetime | None = None, limit: int = 500, skus: Iterable[str] | None = None
) -> int:
    """Release active holds whose `expires_at` has passed; returns how many orders.

    Each order is released in its own transaction, so one busy order does not
    hold up the rest. Safe to run concurrently and repeatedly. `skus` limits it
    to orders holding any of those SKUs. The sweeper's: a reservation releases
    the lapsed holds it needs itself, in its own transaction. `now` defaults to
    `inventory.clock.now()`.
    """
    from ..actors import SYSTEM_SWEEPER

    now = now or clock.now()
    due = Reservation.objects.filter(status=ReservationStatus.ACTIVE, expires_at__lte=now)
    if skus is not None:
        due = due.filter(
            lines__product__sku__in=list(skus), lines__status=ReservationStatus.ACTIVE
        ).distinct()
    order_ids = list(due.order_by("expires_at").values_list("order_id", flat=True)[:limit])
    expired = 0
    for order_id in order_ids:
        try:
            with transaction.atomic():  # a failure rolls back this order only
                result = _close_order_lines(
                    order_id=order_id,
                    lines=None,
                    actor=SYSTEM_SWEEPER,
                    reason="reservation hold expired",
                    txn_type=TransactionType.RELEASE,
                    closing_status=ReservationStatus.EXPIRED,
                    idempotency_key=None,
                    placed_by=None,
                )
        except OperationalError as exc:
            if db_errors.sqlstate(exc) not in db_errors.BUSY:
                raise
            # A row held past lock_timeout (a bulk import, a stuck session): the
            # next sweep tries this order again; the others go on now.
            logger.warning("expiring order %s skipped, its stock rows are busy: %s", order_id, exc)
            continue
        expired += bool(result.transactions)
    return expired


# --- Catalogue ------------------------------------------------------------


def product_set_stock_policy(
    *, product: Product, stock_policy: str, backorder_limit: int
) -> Product:
    """Change a product's stock policy and copy its allowance to every inventory row.

    Lowering the limit below what a warehouse is already backordered is refused
    (AllowanceBelowBackorders) and changes nothing.
    """
    if stock_policy not in StockPolicy.values:
        raise errors.InvalidInput(f"Unknown stock policy {stock_policy!r}.")
    _check_quantity(backorder_limit, name="backorder_limit", allow_zero=True)
    if stock_policy == StockPolicy.NORMAL:
        backorder_limit = 0
    try:
        with transaction.atomic():
            product.stock_policy = stock_policy
            product.backorder_limit = backorder_limit
            product.save(update_fields=["stock_policy", "backorder_limit", "updated_at"])
            # The rows are locked in primary-key order first (the rule of
            # inventory.locks): a bare UPDATE would lock them in index order and
            # could deadlock with a reservation holding one of them.
            rows = Inventory.objects.select_for_update(no_key=True).filter(product=product)
            list(rows.order_by("pk").values_list("pk", flat=True))
            rows.update(backorder_allowance=product.allowance)
            # The cached entry carries the policy: drop it once this commits.
            transaction.on_commit(partial(availability_cache.invalidate, [product.sku]))
    except IntegrityError as exc:
        product.refresh_from_db()
        raise errors.AllowanceBelowBackorders(details={"sku": product.sku}) from exc
    return product
