"""Closing orders: release (cancelled), fulfil (shipped), and the expiry of lapsed holds.

`reservation_release` and `reservation_fulfill` close all of an order or the
given lines; `reservations_expire` (the sweeper) and `expire_lapsed` (a call
that found its order's hold lapsed) release an expired hold exactly alike. A
whole-order close without an idempotency key is one statement on PostgreSQL
(`reserve_sql.close_in_database`); otherwise `close_order_lines` locks the
order, plans what to take from each line (`_plan_take`), and applies it
(`_apply_take`): the same results either way.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import OperationalError, transaction

from .. import clock, db_errors, errors
from ..actors import SYSTEM_SWEEPER
from ..locks import lock_inventory_rows, lock_reservation
from ..models import (
    Inventory,
    InventoryTransaction,
    ReferenceType,
    Reservation,
    ReservationLine,
    ReservationStatus,
    TransactionType,
)
from . import reserve_sql
from .bundle_lines import Bundle, bundle_compositions, bundle_reason
from .idempotency import fit_key, run_idempotent
from .ledger import Change, OperationResult, Reference, apply_changes
from .orders import (
    EXPIRY_REASON,
    ReservationResult,
    check_order_id,
    hold_lapsed,
    order_status,
)
from .stock import check_quantity, retry_busy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OrderLine:
    """A line of a partial release or fulfilment; warehouse optional."""

    sku: str
    quantity: int
    warehouse: str | None = None


class _HoldLapsed(Exception):
    """The order's hold is past its `expires_at`: rolls back a release, fulfilment or
    confirmation, which `expire_lapsed` then turns into the expiry."""


def close_order_lines(
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
    which is first expired as the sweeper would (`expire_lapsed`). The sweeper
    itself (`closing_status` expired) finding nothing open is a no-op: it raced
    a release or fulfilment, which won.
    """
    order_id = check_order_id(order_id)
    now = clock.now()
    if lines is None and idempotency_key is None and reserve_sql.use_sql_engine():
        return reserve_sql.close_in_database(
            order_id, txn_type, closing_status, actor, reason, placed_by, now=now
        )
    requested: list[OrderLine] | None = None
    if lines is not None:
        if not lines:
            raise errors.InvalidInput("Give at least one line, or none for the whole order.")
        requested = [
            OrderLine(line.sku, check_quantity(line.quantity), line.warehouse) for line in lines
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
        if not sweeping and hold_lapsed(reservation, now):
            raise _HoldLapsed()
        res_lines = list(
            reservation.lines.select_related("product", "warehouse", "bundle").order_by("id")
        )
        if not sweeping and not any(line.quantity_open > 0 for line in res_lines):
            raise errors.OrderClosed(order_id, reservation.status)
        take = _plan_take(res_lines, requested, order_id=order_id, txn_type=txn_type)
        ledger = _apply_take(
            reservation,
            res_lines,
            take,
            txn_type=txn_type,
            closing_status=closing_status,
            actor=actor,
            reason=reason,
        )
        result_holder["result"] = ReservationResult(reservation, created=False, transactions=ledger)
        return OperationResult(
            transactions=ledger, reference=Reference(ReferenceType.ORDER, order_id)
        )

    operation = "fulfill" if txn_type == TransactionType.FULFILL else "release"
    key = (
        fit_key(operation, f"{operation}:order:{order_id}:key:{idempotency_key}")
        if idempotency_key
        else None
    )
    try:
        outcome = run_idempotent(key, operation, payload, body)
    except _HoldLapsed:
        raise expire_lapsed(order_id, placed_by) from None
    if outcome.replayed:
        reservation = Reservation.objects.get(order_id=order_id)
        return ReservationResult(reservation, created=False, transactions=outcome.transactions)
    return result_holder["result"]


def _plan_take(
    res_lines: Sequence[ReservationLine],
    requested: Sequence[OrderLine] | None,
    *,
    order_id: str,
    txn_type: str,
) -> dict[uuid.UUID, int]:
    """The plan step of a close: how much to take from each open line of the
    (locked) order. Everything open when no lines are `requested`; else each
    requested line from its SKU's lines (in its warehouse, if given), in line
    order, a fulfilment shipping first from lines whose stock has arrived.
    A requested bundle SKU takes whole bundle units from the component lines
    reserved for it (`_plan_bundle_take`); a plain SKU only its lines sold alone.
    More than the order holds raises ExceedsReservation."""
    take: dict[uuid.UUID, int] = {}
    if requested is None:
        for line in res_lines:
            if line.quantity_open > 0:
                take[line.pk] = line.quantity_open
        return take
    held_bundles = {line.bundle.sku for line in res_lines if line.bundle_id is not None}
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
                if _line_sku(line) in wanted and line.quantity_open > 0
            }
        )
    bundles = bundle_compositions({want.sku for want in requested} & held_bundles)
    short = []
    for want in requested:
        if want.sku in held_bundles:
            remaining = _plan_bundle_take(want, bundles.get(want.sku), res_lines, take, stocked)
            if remaining > 0:
                short.append(
                    {
                        "sku": want.sku,
                        "warehouse": want.warehouse,
                        "requested": want.quantity,
                        "held": want.quantity - remaining,
                    }
                )
            continue
        candidates = [
            line
            for line in res_lines
            if line.product.sku == want.sku
            and line.bundle_id is None
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
    return take


def _line_sku(line: ReservationLine) -> str:
    """The SKU a line is closed by: its bundle's for a bundle's component line."""
    return line.bundle.sku if line.bundle_id is not None else line.product.sku


def _plan_bundle_take(
    want: OrderLine,
    bundle: Bundle | None,
    res_lines: Sequence[ReservationLine],
    take: dict[uuid.UUID, int],
    stocked: dict[tuple[str, str], Inventory],
) -> int:
    """Plan taking `want.quantity` whole units of a bundle from the component lines
    reserved for it: per warehouse (the one given, else those whose component
    rows all have stock on hand first, then by code) as many whole units as every
    component's open lines there hold, each component n x its quantity per unit,
    in line order. Adds to `take`; returns the units it could not find."""
    remaining = want.quantity
    if bundle is None:
        return remaining
    lines_at: dict[str, dict[str, list[ReservationLine]]] = {}
    for line in res_lines:
        if line.bundle_id is not None and line.bundle.sku == want.sku:
            by_sku = lines_at.setdefault(line.warehouse.code, {})
            by_sku.setdefault(line.product.sku, []).append(line)
    codes = sorted(
        (code for code in lines_at if want.warehouse is None or code == want.warehouse),
        key=lambda code: (
            bool(stocked)
            and any(
                _nothing_on_hand(stocked, line)
                for lines in lines_at[code].values()
                for line in lines
            ),
            code,
        ),
    )
    for code in codes:
        if remaining <= 0:
            break
        open_units = min(
            sum(line.quantity_open - take.get(line.pk, 0) for line in lines_at[code].get(sku, ()))
            // per_unit
            for sku, per_unit in bundle.components
        )
        units = min(open_units, remaining)
        if units <= 0:
            continue
        remaining -= units
        for sku, per_unit in bundle.components:
            need = units * per_unit
            for line in lines_at[code][sku]:
                step = min(line.quantity_open - take.get(line.pk, 0), need)
                if step > 0:
                    take[line.pk] = take.get(line.pk, 0) + step
                    need -= step
    return remaining


def _apply_take(
    reservation: Reservation,
    res_lines: Sequence[ReservationLine],
    take: dict[uuid.UUID, int],
    *,
    txn_type: str,
    closing_status: str,
    actor: str,
    reason: str,
) -> list[InventoryTransaction]:
    """The apply step of a close: lock the rows `take` touches (pk order),
    refuse a fulfilment of more than is on hand (InsufficientOnHand), write the
    RELEASE or FULFILL changes and their ledger rows, and update the lines and
    the order's status. Its ledger rows."""
    order_id = reservation.order_id
    by_pk = {line.pk: line for line in res_lines}
    pairs = {(by_pk[pk].product.sku, by_pk[pk].warehouse.code) for pk in take}
    rows = lock_inventory_rows(pairs)
    changes = []
    if txn_type == TransactionType.FULFILL:
        # Per row, the total its lines ship (several lines share a row when
        # bundles share a component or one is also sold alone).
        per_row: dict[tuple[str, str], int] = {}
        for pk, qty in take.items():
            pair = (by_pk[pk].product.sku, by_pk[pk].warehouse.code)
            per_row[pair] = per_row.get(pair, 0) + qty
        short = []
        for (sku, code), qty in sorted(per_row.items()):
            row = rows[(sku, code)]
            # Only good units ship: damaged and quality-control units stay (issue #15).
            good = row.on_hand - row.damaged - row.quality_control
            if qty > good:
                short.append({"sku": sku, "warehouse": code, "requested": qty, "on_hand": good})
        if short:
            raise errors.InsufficientOnHand(short)
    for pk, qty in sorted(
        take.items(),
        key=lambda item: rows[(by_pk[item[0]].product.sku, by_pk[item[0]].warehouse.code)].pk,
    ):
        line = by_pk[pk]
        row = rows[(line.product.sku, line.warehouse.code)]
        line_reason = bundle_reason(line.bundle.sku, reason) if line.bundle_id else None
        if txn_type == TransactionType.FULFILL:
            changes.append(
                Change(row, txn_type, on_hand_delta=-qty, reserved_delta=-qty, reason=line_reason)
            )
            line.quantity_fulfilled += qty
        else:
            changes.append(Change(row, txn_type, reserved_delta=-qty, reason=line_reason))
            line.quantity_released += qty
        if line.quantity_open == 0:
            line.status = ReservationStatus.FULFILLED if line.quantity_fulfilled else closing_status
    ledger = apply_changes(
        changes, actor=actor, reference=Reference(ReferenceType.ORDER, order_id), reason=reason
    )
    if take:
        ReservationLine.objects.bulk_update(
            [by_pk[pk] for pk in take], ["quantity_fulfilled", "quantity_released", "status"]
        )
    # Nothing open (a sweep of an order just cancelled; a release or fulfil
    # raised OrderClosed above): nothing closed, the order's status stays.
    new_status = order_status(res_lines, closing_status) if take else reservation.status
    if new_status != reservation.status:
        reservation.status = new_status
        reservation.save(update_fields=["status", "updated_at"])
    return ledger


def _nothing_on_hand(rows: dict[tuple[str, str], Inventory], line: ReservationLine) -> bool:
    row = rows.get((line.product.sku, line.warehouse.code))
    return row is None or row.on_hand <= 0


def expire_lapsed(order_id: str, placed_by: str | None) -> errors.OrderClosed:
    """Expire a lapsed hold now, exactly as the sweeper would (RELEASE rows by the
    sweeper, status expired), and return the OrderClosed to raise for the call
    that found it lapsed. Committed even though that call answers an error: the
    hold is gone either way, and its units are sellable at once."""
    result = close_order_lines(
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


@retry_busy
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
    return close_order_lines(
        order_id=order_id,
        lines=lines,
        actor=actor,
        reason=reason,
        txn_type=TransactionType.RELEASE,
        closing_status=ReservationStatus.RELEASED,
        idempotency_key=idempotency_key,
        placed_by=placed_by,
    )


@retry_busy
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
    return close_order_lines(
        order_id=order_id,
        lines=lines,
        actor=actor,
        reason=reason,
        txn_type=TransactionType.FULFILL,
        closing_status=ReservationStatus.FULFILLED,
        idempotency_key=idempotency_key,
        placed_by=placed_by,
    )


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
                result = close_order_lines(
                    order_id=order_id,
                    lines=None,
                    actor=SYSTEM_SWEEPER,
                    reason=EXPIRY_REASON,
                    txn_type=TransactionType.RELEASE,
                    closing_status=ReservationStatus.EXPIRED,
                    idempotency_key=None,
                    placed_by=None,
                )
        except OperationalError as exc:
            if not db_errors.is_busy(exc):
                raise
            # A row held past lock_timeout (a bulk import, a stuck session): the
            # next sweep tries this order again; the others go on now.
            logger.warning("expiring order %s skipped, its stock rows are busy: %s", order_id, exc)
            continue
        expired += bool(result.transactions)
    return expired
