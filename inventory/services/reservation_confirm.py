"""Confirming holds: a payment arrived, the hold can no longer lapse (or it is extended).

`reservation_confirm` and `reservations_confirm_batch` change no stock and write
no ledger row; they lock only Reservation rows, and publish the holds whose
expiry moved to `ledger.HOLD_CHANGE_LISTENERS` after commit (the availability
read model counts held units by expiry). A hold found already lapsed is expired
first, as the sweeper would (`reservation_close.expire_lapsed`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import clock, errors
from ..context import request_id_to_database
from ..locks import lock_reservation
from ..models import Reservation, ReservationLine, ReservationStatus
from . import ledger
from .orders import ReservationResult, check_order_id, hold_lapsed
from .reservation_close import expire_lapsed
from .stock import retry_busy

# The longest hold: what `expires_in` may ask for (reserving and confirming).
MAX_HOLD_SECONDS = 30 * 24 * 3600


def _hold_changes_on_commit(changed: Sequence[tuple[Reservation, datetime | None]]) -> None:
    """Publish after commit what `changed` ((reservation, previous expiry)) did to
    each hold's expiry; reads the open lines only if anyone listens."""
    if not ledger.HOLD_CHANGE_LISTENERS:
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
        ledger.HoldChange(r.order_id, r.expires_at, before, tuple(open_lines.get(r.pk, ())))
        for r, before in moved
    )
    transaction.on_commit(partial(ledger.publish_hold_changes, changes))


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
    if hold_lapsed(reservation, now):
        return _LAPSED
    if expires_in is None and reservation.expires_at is None and reservation.confirmed_at:
        return _UNCHANGED
    reservation.expires_at = None if expires_in is None else now + timedelta(seconds=expires_in)
    reservation.confirmed_at = now
    reservation.confirmed_by = actor
    reservation.updated_at = timezone.now()
    return _CHANGED


_CONFIRM_FIELDS = ["expires_at", "confirmed_at", "confirmed_by", "updated_at"]


@retry_busy
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
    order_id = check_order_id(order_id)
    expires_in = _check_expires_in(expires_in)
    now = clock.now()
    with transaction.atomic():
        reservation = lock_reservation(order_id, placed_by=placed_by)
        if reservation is None:
            raise errors.ReservationNotFound(details={"order_id": order_id})
        before = reservation.expires_at
        outcome = _confirm_locked(reservation, actor=actor, expires_in=expires_in, now=now)
        if outcome == _CHANGED:
            request_id_to_database()  # no ledger row: the confirmed event takes it from here
            reservation.save(update_fields=_CONFIRM_FIELDS)
            _hold_changes_on_commit([(reservation, before)])
    if outcome == _LAPSED:
        raise expire_lapsed(order_id, placed_by)
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


@retry_busy
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
        order_id = check_order_id(order.order_id)
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
            request_id_to_database()  # no ledger row: the confirmed events take it from here
            Reservation.objects.bulk_update([r for r, _ in changed], _CONFIRM_FIELDS)
            _hold_changes_on_commit(changed)
    expire = retry_busy(expire_lapsed)
    for order_id in lapsed:
        try:
            error = expire(order_id, placed_by)
        except errors.StockBusy:
            # Its rows are busy: the sweeper expires it later; lapsed, it is closed now.
            error = errors.OrderClosed(order_id, ReservationStatus.EXPIRED)
        outcomes[order_id] = ConfirmOutcome(order_id, error=error)
    return [outcomes[order.order_id] for order in orders]
