"""Stock states (issue #15): moving units between sellable, damaged and quality
control, writing them off, and customer returns with a disposition.

The states of a stock row (docs/ARCHITECTURE.md, "Stock states"): of `on_hand`,
`damaged` and `quality_control` units cannot be sold; `safety_stock` (a setting)
is kept back; sellable = on hand - reserved - safety stock - damaged - quality
control. Every change of `damaged` / `quality_control` is a ledger row with its
per-state deltas, so the ledger's sums equal each state's balance:

* MOVE: units between states, on hand unchanged (sellable -> damaged is
  damaged_delta +q; quality control -> sellable is quality_control_delta -q;
  quality control -> damaged is both);
* WRITE_OFF: units leave on hand from a state (on_hand_delta -q and, from
  damaged or quality control, that state's delta -q);
* RETURN: units come back onto on hand, into the state the dock chose
  (`stock_return`).

Moving out of sellable takes good units nobody holds: the good units on hand
(on hand - damaged - quality control) minus reserved may not go below the
backorder allowance (the row's CHECK, checked here first for a clear error).
Safety stock may be moved into damaged (a broken unit is broken): sellable
then reads lower, which is what safety stock is for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError
from django.db.models import Sum

from .. import errors
from ..models import (
    Inventory,
    InventoryTransaction,
    ReferenceType,
    Reservation,
    ReservationLine,
    Return,
    ReturnDisposition,
    ReturnLine,
    StockState,
    TransactionType,
)
from .idempotency import derived_key, fingerprint, run_idempotent
from .ledger import Change, OperationResult, Reference, apply_changes
from .rows import lock_one_row, lock_rows
from .stock import check_quantity, check_reason, retry_busy

# Where a move may end: a state, or out of stock altogether.
WRITTEN_OFF = "written_off"
TO_STATES = (*StockState.values, WRITTEN_OFF)

_STATE_FIELD = {
    StockState.DAMAGED: "damaged",
    StockState.QUALITY_CONTROL: "quality_control",
}


def good_units(row: Inventory) -> int:
    """Units on hand that can ship (neither damaged nor held for quality control)."""
    return row.on_hand - row.damaged - row.quality_control


def _state_deltas(state: str, quantity: int) -> dict[str, int]:
    field = _STATE_FIELD.get(state)
    return {f"{field}_delta": quantity} if field else {}


def _check_out_of(row: Inventory, state: str, quantity: int, sku: str, warehouse: str) -> None:
    """Refuse taking `quantity` units out of `state` when the row has not got them."""
    if state == StockState.SELLABLE:
        good = good_units(row)
        free = good - row.reserved + row.backorder_allowance
        if quantity > good or quantity > free:
            raise errors.InsufficientStock(
                [
                    {
                        "sku": sku,
                        "warehouse": warehouse,
                        "state": state,
                        "requested": quantity,
                        "available": max(min(good, free), 0),
                    }
                ],
                message=(
                    f"Only {max(min(good, free), 0)} good units of {sku} in {warehouse} are "
                    "not held by open orders; release or re-route an order first."
                ),
            )
        return
    held = getattr(row, _STATE_FIELD[state])
    if quantity > held:
        raise errors.InsufficientState(
            [
                {
                    "sku": sku,
                    "warehouse": warehouse,
                    "state": state,
                    "requested": quantity,
                    "available": held,
                }
            ],
            message=f"{sku} in {warehouse} has {held} units in {state}, not {quantity}.",
        )


@retry_busy
def stock_move_state(
    *,
    sku: str,
    warehouse: str,
    from_state: str,
    to_state: str,
    quantity: int,
    reason: str,
    actor: str,
    reference: Reference | None = None,
    idempotency_key: str | None = None,
) -> OperationResult:
    """MOVE units between states of one stock row, or WRITE_OFF them.

    `from_state`: sellable, damaged or quality_control; `to_state`: one of those
    or `written_off` (the units leave on hand). A reason is required. One ledger
    row with the per-state deltas. Idempotent by `idempotency_key`, or else by
    reference + SKU + warehouse. Locks: the one inventory row.
    """
    reason = check_reason(reason)
    quantity = check_quantity(quantity)
    if from_state not in StockState.values:
        raise errors.InvalidInput(
            f"Unknown from_state {from_state!r}.",
            details={"field": "from_state", "allowed": list(StockState.values)},
        )
    if to_state not in TO_STATES:
        raise errors.InvalidInput(
            f"Unknown to_state {to_state!r}.",
            details={"field": "to_state", "allowed": list(TO_STATES)},
        )
    if from_state == to_state:
        raise errors.InvalidInput("from_state and to_state must differ.")
    payload = {
        "sku": sku,
        "warehouse": warehouse,
        "from_state": from_state,
        "to_state": to_state,
        "quantity": quantity,
    }

    def body() -> OperationResult:
        row = lock_one_row(sku, warehouse)
        _check_out_of(row, from_state, quantity, sku, warehouse)
        deltas = _state_deltas(from_state, -quantity)
        if to_state == WRITTEN_OFF:
            txn_type = TransactionType.WRITE_OFF
            deltas["on_hand_delta"] = -quantity
        else:
            txn_type = TransactionType.MOVE
            for name, value in _state_deltas(to_state, quantity).items():
                deltas[name] = deltas.get(name, 0) + value
        ledger = apply_changes(
            [Change(row, txn_type, **deltas)], actor=actor, reference=reference, reason=reason
        )
        return OperationResult(transactions=ledger, reference=reference)

    key = derived_key("move", idempotency_key, reference, sku, warehouse)
    return run_idempotent(key, "move", payload, body)


# --------------------------------------------------------------------------
# Returns
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReturnLineRequest:
    sku: str
    warehouse: str
    quantity: int
    disposition: str
    order_id: str = ""


@dataclass
class ReturnResult:
    return_record: Return
    lines: list[ReturnLine]
    transactions: list[InventoryTransaction]
    replayed: bool = False


_DISPOSITION_STATE = {
    ReturnDisposition.RESTOCK: StockState.SELLABLE,
    ReturnDisposition.DAMAGED: StockState.DAMAGED,
    ReturnDisposition.QUALITY_CONTROL: StockState.QUALITY_CONTROL,
}


def _normalise_return_lines(lines: Sequence[ReturnLineRequest]) -> list[ReturnLineRequest]:
    if not lines:
        raise errors.InvalidInput("A return needs at least one line.")
    merged: dict[tuple[str, str, str, str], int] = {}
    for line in lines:
        if line.disposition not in ReturnDisposition.values:
            raise errors.InvalidInput(
                f"Unknown disposition {line.disposition!r}.",
                details={"field": "disposition", "allowed": list(ReturnDisposition.values)},
            )
        check_quantity(line.quantity)
        if len(line.order_id or "") > 100:
            raise errors.InvalidInput("An order id has at most 100 characters.")
        key = (line.sku, line.warehouse, line.disposition, line.order_id or "")
        merged[key] = merged.get(key, 0) + line.quantity
    result = []
    for (sku, warehouse, disposition, order_id), quantity in sorted(merged.items()):
        check_quantity(quantity, name=f"quantity of {sku}")
        result.append(ReturnLineRequest(sku, warehouse, quantity, disposition, order_id))
    return result


def _return_result(record: Return, replayed: bool) -> ReturnResult:
    lines = list(record.lines.select_related("product", "warehouse").order_by("id"))
    transactions = list(
        InventoryTransaction.objects.filter(
            reference_type=ReferenceType.RETURN, reference_id=record.return_id
        ).order_by("id")
    )
    return ReturnResult(record, lines, transactions, replayed=replayed)


def shipped_and_returned(
    order_ids: Sequence[str],
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """({(order_id, sku): units fulfilled}, {(order_id, sku): units returned}) of the
    orders: what a return naming the order may bring back is the difference (the
    rule `stock_return` enforces; the returns dock shows it)."""
    shipped = {
        (o, s): int(q or 0)
        for o, s, q in ReservationLine.objects.filter(reservation__order_id__in=order_ids)
        .values_list("reservation__order_id", "product__sku")
        .annotate(q=Sum("quantity_fulfilled"))
    }
    returned = {
        (o, s): int(q or 0)
        for o, s, q in ReturnLine.objects.filter(order_id__in=order_ids)
        .values_list("order_id", "product__sku")
        .annotate(q=Sum("quantity"))
    }
    return shipped, returned


def _check_shipped(lines: list[ReturnLineRequest]) -> None:
    """Lines naming an order may not bring back more of a SKU than that order
    shipped (fulfilled), counting earlier returns. The orders' reservation rows
    are locked first (by order id: closes and other returns of the same order
    wait), so the fulfilled and returned figures cannot move under us."""
    wanted: dict[tuple[str, str], int] = {}
    for line in lines:
        if line.order_id:
            wanted[(line.order_id, line.sku)] = wanted.get((line.order_id, line.sku), 0) + (
                line.quantity
            )
    if not wanted:
        return
    order_ids = sorted({order_id for order_id, _ in wanted})
    list(
        Reservation.objects.select_for_update(no_key=True, of=("self",))
        .filter(order_id__in=order_ids)
        .order_by("order_id")
        .values_list("pk", flat=True)
    )
    shipped, returned = shipped_and_returned(order_ids)
    over = []
    for (order_id, sku), quantity in sorted(wanted.items()):
        left = shipped.get((order_id, sku), 0) - returned.get((order_id, sku), 0)
        if quantity > left:
            over.append(
                {
                    "order_id": order_id,
                    "sku": sku,
                    "requested": quantity,
                    "shipped": shipped.get((order_id, sku), 0),
                    "returned": returned.get((order_id, sku), 0),
                    "returnable": max(left, 0),
                }
            )
    if over:
        raise errors.ExceedsFulfilled(
            "A return line brings back more than its order shipped (earlier returns counted).",
            details={"lines": over},
        )


@retry_busy
def stock_return(
    *,
    return_id: str,
    lines: Sequence[ReturnLineRequest],
    actor: str,
    reason: str = "",
) -> ReturnResult:
    """RETURN: customer units come back, each line into the state its disposition
    names (restock: sellable; damaged; quality_control) or, for `dispose`,
    recorded on the return without a stock change.

    Idempotent by `return_id`: a retry with the same lines answers the first
    result (`replayed`); other lines under the same id raise ReturnConflict.
    A line with an `order_id` is bounded by what that order fulfilled of the SKU
    minus earlier returns (ExceedsFulfilled). Locks, in the order of
    inventory.locks: the named orders' reservation rows (by order id), then the
    inventory rows (pk order). Ledger rows: one RETURN per row changed,
    reference (return, return_id).
    """
    if not return_id or len(return_id) > 100:
        raise errors.InvalidInput("A return_id of 1 to 100 characters is required.")
    normalised = _normalise_return_lines(lines)
    payload = {
        "return_id": return_id,
        "lines": [[x.sku, x.warehouse, x.quantity, x.disposition, x.order_id] for x in normalised],
    }
    request = fingerprint({"operation": "return", **payload})
    reference = Reference(ReferenceType.RETURN, return_id)

    def existing() -> ReturnResult | None:
        record = Return.objects.filter(return_id=return_id).first()
        if record is None:
            return None
        if record.request_fingerprint != request:
            raise errors.ReturnConflict(details={"return_id": return_id})
        return _return_result(record, replayed=True)

    found = existing()
    if found is not None:
        return found

    def body() -> OperationResult:
        record = Return.objects.create(
            return_id=return_id, reason=reason, request_fingerprint=request, created_by=actor
        )
        _check_shipped(normalised)
        pairs = {(x.sku, x.warehouse) for x in normalised}
        codes = {x.warehouse for x in normalised}
        rows = lock_rows(pairs, create_missing=True, require_active=codes)
        per_row: dict[tuple[str, str], dict[str, int]] = {}
        for x in normalised:
            if x.disposition == ReturnDisposition.DISPOSE:
                continue
            deltas = per_row.setdefault((x.sku, x.warehouse), {})
            deltas["on_hand_delta"] = deltas.get("on_hand_delta", 0) + x.quantity
            for name, value in _state_deltas(_DISPOSITION_STATE[x.disposition], x.quantity).items():
                deltas[name] = deltas.get(name, 0) + value
        changes = [
            Change(rows[pair], TransactionType.RETURN, **deltas)
            for pair, deltas in sorted(per_row.items(), key=lambda item: rows[item[0]].pk)
        ]
        ReturnLine.objects.bulk_create(
            [
                ReturnLine(
                    return_record=record,
                    product=rows[(x.sku, x.warehouse)].product,
                    warehouse=rows[(x.sku, x.warehouse)].warehouse,
                    quantity=x.quantity,
                    disposition=x.disposition,
                    order_id=x.order_id,
                )
                for x in normalised
            ]
        )
        ledger = apply_changes(
            changes,
            actor=actor,
            reference=reference,
            reason=reason or f"customer return {return_id}",
        )
        return OperationResult(transactions=ledger, reference=reference)

    try:
        run_idempotent(None, "return", payload, body)
    except IntegrityError:
        # A concurrent request with the same return_id won the unique index.
        found = existing()
        if found is None:
            raise
        return found
    return _return_result(Return.objects.get(return_id=return_id), replayed=False)
