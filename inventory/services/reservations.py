"""Reserving: holding stock for orders, one order (`stock_reserve`) or a batch
(`stock_reserve_batch`), each order all lines or none.

On PostgreSQL an order or a whole batch is one statement (`reserve_sql`); the ORM
path here gives the same results (STOCKROOM_RESERVE_ENGINE=python, and SQLite).
Both refuse at cache speed what the sold-out gate knows is sold out, and both
release just enough lapsed holds (past their `expires_at`, by `inventory.clock`)
in the reserving transaction when a line needs their units. Closing an order is
`reservation_close`; confirming a hold `reservation_confirm`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial

from django.conf import settings
from django.db import IntegrityError, connection
from django.db.models import Q

from .. import availability_cache, clock, errors
from ..actors import SYSTEM_SWEEPER
from ..models import (
    Inventory,
    ReferenceType,
    Reservation,
    ReservationLine,
    ReservationStatus,
    TransactionType,
)
from . import reserve_sql
from .bundle_lines import Bundle, bundle_reason, bundles_locked, expand_order, with_bundles
from .ledger import Change, Reference, apply_changes
from .orders import (
    EXPIRY_REASON,
    LAPSED_BUSY_RETRIES,
    MergedOrder,
    OrderRequest,
    ReservationOutcome,
    ReservationResult,
    ReserveLine,
    check_order_id,
    lapsed_orders_elsewhere,
    normalise_reserve_lines,
    order_status,
    reservation_fingerprint,
    wait_for_closers,
)
from .rows import in_transaction, lock_rows
from .stock import retry_busy


def _available(row: Inventory) -> int:
    """Units that can still be reserved in this row, counting the backorder allowance:
    sellable stock only (safety stock, damaged and quality control are kept back;
    the SQL engine's rule in inventory/sql/reserve_orders.sql)."""
    return sellable(row) + row.backorder_allowance


def sellable(row: Inventory) -> int:
    """The row's sellable units from its (possibly just changed, in memory)
    balances: the rule of the generated column `Inventory.available` (which is
    only as fresh as the last read)."""
    return row.on_hand - row.reserved - row.safety_stock - row.damaged - row.quality_control


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


@retry_busy
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
    order_id = check_order_id(order_id)
    merged = normalise_reserve_lines(lines, requested_lines)
    # The sold-out gate: refused at cache speed, without touching the database,
    # only when every line is sold out in the committed cached state.
    sold_out = availability_cache.sold_out_lines(
        [(sku, code, qty) for (sku, code), qty in sorted(merged.items())], order_id=order_id
    )
    if sold_out and not reservation_exists(order_id):
        raise errors.SoldOut(sold_out)
    fingerprint = reservation_fingerprint(merged, actor)
    if reserve_sql.use_sql_engine():
        request = MergedOrder(order_id, merged, fingerprint, expires_at)
        outcome = reserve_sql.reserve_in_database([request], actor=actor)[0]
        if outcome.error is not None:
            _watch_refused(request, outcome.error)
            raise outcome.error
        return outcome.result
    existing = _existing_reservation(order_id, fingerprint)
    if existing is not None:
        return ReservationResult(existing, created=False)
    now = clock.now()
    request = MergedOrder(order_id, merged, fingerprint, expires_at)

    # (Inside a caller's transaction a rollback would keep the rows locked: no retry.)
    busy_retries_left = 0 if connection.in_atomic_block else LAPSED_BUSY_RETRIES
    wait_for: set = set()

    def body(bundles: dict[str, Bundle]) -> ReservationResult:
        # Bundle lines become their components' lines; `merged` is then the total
        # per row (what is checked), `order.lines()` what is written. The
        # remembered (or just read) compositions are read again under the
        # bundles' FOR SHARE locks (the composition race, issue #16); a plain
        # order pays nothing for this (`bundle_lines.with_bundles`).
        order = expand_order(request, bundles_locked(bundles))
        merged = order.merged
        reservation = Reservation.objects.create(
            order_id=order_id,
            request_fingerprint=fingerprint,
            expires_at=expires_at,
            created_by=actor,
        )
        if wait_for:
            # Tried again after `_LapsedHoldBusy`: their closers first, then rows.
            wait_for_closers(wait_for)
        rows = lock_rows(
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
            held = busy_retries_left and {
                pk
                for pair in ((line["sku"], line["warehouse"]) for line in short)
                for pk in lapsed_orders_elsewhere(Q(inventory_id=rows[pair].pk), now)
            }
            if held:
                raise _LapsedHoldBusy(held)
            raise errors.InsufficientStock(short)
        for pair, lines_lapsed in sorted(lapsed.items(), key=lambda item: rows[item[0]].pk):
            _release_lapsed(rows[pair], lines_lapsed, merged[pair] - _available(rows[pair]))
        # One line and one ledger row per part (a row shared by bundles, or by a
        # bundle and the component sold alone, has several), rows in pk order.
        ordered = sorted(order.lines(), key=lambda part: rows[part[:2]].pk)
        ledger = apply_changes(
            [
                Change(
                    rows[(sku, code)],
                    TransactionType.RESERVE,
                    reserved_delta=qty,
                    holds=((expires_at, qty),) if expires_at is not None else (),
                    reason=bundle_reason(bundle),
                )
                for sku, code, bundle, qty in ordered
            ],
            actor=actor,
            reference=Reference(ReferenceType.ORDER, order_id),
            created_orders=[order_id],
        )
        new_lines = ReservationLine.objects.bulk_create(
            [
                ReservationLine(
                    reservation=reservation,
                    inventory=rows[(sku, code)],
                    product=rows[(sku, code)].product,
                    warehouse=rows[(sku, code)].warehouse,
                    quantity=qty,
                    bundle_id=order.bundle_ids.get(bundle) if bundle else None,
                )
                for sku, code, bundle, qty in ordered
            ]
        )
        reservation._prefetched_objects_cache = {"lines": new_lines}
        return ReservationResult(reservation, created=True, transactions=ledger)

    try:
        # A line short only because a closer (the sweeper, a release) holds the
        # order of a lapsed hold on it (orders.LAPSED_BUSY_RETRIES): our rollback
        # lets it take the row it may wait for; the retry waits for its commit
        # before taking any row, then sees what it left.
        while True:
            try:
                return with_bundles(
                    (sku for sku, _ in merged),
                    lambda bundles: in_transaction(partial(body, bundles)),
                )
            except _LapsedHoldBusy as busy:
                busy_retries_left -= 1
                wait_for = busy.reservations
    except errors.InsufficientStock as exc:
        _watch_refused(request, exc)
        raise
    except IntegrityError:
        # A concurrent request for the same order id committed first.
        existing = _existing_reservation(order_id, fingerprint)
        if existing is not None:
            return ReservationResult(existing, created=False)
        raise


def _watch_refused(request: MergedOrder, error: Exception) -> None:
    """The database found an order short: the sold-out gate is worth asking for
    its SKUs from now on (`availability_cache.watch`)."""
    if isinstance(error, errors.InsufficientStock):
        availability_cache.watch(sku for sku, _ in request.merged)


def _lapsed_lines(row: Inventory, now: datetime) -> list[ReservationLine]:
    """Open lines on a locked row whose order's hold expired by `now`, earliest
    expiry first, with their orders locked. SKIP LOCKED: never waits (an order
    being closed right now is left to its closer), so taking these reservation
    locks after the row's cannot cycle with a closer's order (reservation, then
    rows; inventory/locks.py)."""
    return list(
        ReservationLine.objects.select_related("reservation", "bundle")
        .select_for_update(no_key=True, of=("reservation",), skip_locked=True)
        .filter(
            inventory_id=row.pk,
            status=ReservationStatus.ACTIVE,
            reservation__status=ReservationStatus.ACTIVE,
            reservation__expires_at__lte=now,
        )
        .order_by("reservation__expires_at", "id")
    )


class _LapsedHoldBusy(Exception):
    """A short line had lapsed holds whose orders another transaction holds
    (`orders.lapsed_orders_elsewhere`): tried again after waiting for them."""

    def __init__(self, reservations: set) -> None:
        super().__init__(reservations)
        self.reservations = reservations


def _release_lapsed(row: Inventory, lines: Sequence[ReservationLine], needed: int) -> None:
    """Release lapsed lines on a locked row, earliest first, whole lines, until
    `needed` units are free: as the sweeper would (RELEASE, status expired), in
    the reserving transaction. The ORM twin of migration 0012's release."""
    for line in lines:
        if needed <= 0:
            break
        units = line.quantity_open
        if units <= 0:
            continue
        reservation = line.reservation
        apply_changes(
            [
                Change(
                    row,
                    TransactionType.RELEASE,
                    reserved_delta=-units,
                    holds=((reservation.expires_at, -units),),
                    reason=bundle_reason(
                        line.bundle.sku if line.bundle_id else None, EXPIRY_REASON
                    ),
                )
            ],
            actor=SYSTEM_SWEEPER,
            reference=Reference(ReferenceType.ORDER, reservation.order_id),
            reason=EXPIRY_REASON,
        )
        line.quantity_released += units
        line.status = (
            ReservationStatus.FULFILLED if line.quantity_fulfilled else ReservationStatus.EXPIRED
        )
        line.save(update_fields=["quantity_released", "status"])
        siblings = list(ReservationLine.objects.filter(reservation_id=reservation.pk))
        status = order_status(siblings, ReservationStatus.EXPIRED)
        if status != reservation.status:
            reservation.status = status
            reservation.save(update_fields=["status", "updated_at"])
        needed -= units


@retry_busy
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
        order_id = check_order_id(order.order_id)
        if order_id in seen:
            raise errors.InvalidInput(
                f"Order id {order_id!r} appears twice in the batch.",
                details={"order_id": order_id},
            )
        seen.add(order_id)
        merged = normalise_reserve_lines(order.lines)
        requests.append(
            MergedOrder(order_id, merged, reservation_fingerprint(merged, actor), order.expires_at)
        )
    if reserve_sql.use_sql_engine():
        outcomes = reserve_sql.reserve_in_database(requests, actor=actor)
        for request, outcome in zip(requests, outcomes, strict=True):
            if outcome.error is not None:
                _watch_refused(request, outcome.error)
        return outcomes
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
