"""Orders as the reservation services see them: requests, results, and the rules
both engines share.

`reservations` (reserve, batch), `reservation_close` (release, fulfil, expire),
`reservation_confirm` and the PostgreSQL adapter `reserve_sql` all build on this
module, which imports none of them: the order id and line checks, the order's
fingerprint ("the same order again"), the order status after a close, when a
hold has lapsed (and whose closer a short reservation waits for), and the values
an order's reservation is answered with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import encode_basestring_ascii

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from .. import errors
from ..models import InventoryTransaction, Reservation, ReservationLine, ReservationStatus
from .stock import check_quantity, max_quantity

# json.dumps' own string encoder (ensure_ascii, the C implementation when present).
_json_string = encode_basestring_ascii

# The ledger's reason on the RELEASE rows of an expired hold (sweeper, close, or
# a reservation that needed the lapsed hold's units).
EXPIRY_REASON = "reservation hold expired"


@dataclass(frozen=True)
class ReserveLine:
    sku: str
    warehouse: str
    quantity: int


@dataclass(frozen=True)
class OrderRequest:
    """One order of a batch reservation."""

    order_id: str
    lines: Sequence[ReserveLine]
    expires_at: datetime | None = None


@dataclass(frozen=True)
class MergedOrder:
    """An order checked and ready to reserve: its lines merged per (sku, warehouse).

    Once its bundle lines are expanded (`bundle_lines.expand_order`), `merged` is
    the total per inventory row (what is checked against stock) and `parts` the
    lines to write: (sku, warehouse, bundle SKU or None, quantity), several per
    row when bundles share a component or one is also sold alone. `fingerprint`
    stays the one of the order as requested."""

    order_id: str
    merged: dict[tuple[str, str], int]
    fingerprint: str
    expires_at: datetime | None
    parts: tuple[tuple[str, str, str | None, int], ...] | None = None
    bundle_ids: dict[str, object] = field(default_factory=dict)

    def lines(self) -> tuple[tuple[str, str, str | None, int], ...]:
        """The lines to write, sorted: (sku, warehouse, bundle SKU or None, quantity)."""
        if self.parts is not None:
            return self.parts
        return tuple((sku, code, None, qty) for (sku, code), qty in sorted(self.merged.items()))


@dataclass
class ReservationResult:
    reservation: Reservation
    created: bool
    transactions: list[InventoryTransaction] = field(default_factory=list)


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


def check_order_id(order_id: str) -> str:
    if not isinstance(order_id, str) or not order_id.strip() or len(order_id) > 100:
        raise errors.InvalidInput("order_id must be a string of 1 to 100 characters.")
    if "/" in order_id:
        # The order's own URL (/reservations/{order_id}/...) could not name it.
        raise errors.InvalidInput(
            "order_id may not contain '/'.", details={"order_id": ["May not contain '/'."]}
        )
    return order_id


def normalise_reserve_lines(
    lines: Sequence[ReserveLine], requested_lines: int | None = None
) -> dict[tuple[str, str], int]:
    if not lines:
        raise errors.InvalidInput("An order needs at least one line.")
    # Each setting read once per order (a batch normalises hundreds of orders).
    max_lines, max_qty = settings.STOCKROOM_MAX_ORDER_LINES, max_quantity()
    if (requested_lines if requested_lines is not None else len(lines)) > max_lines:
        raise errors.InvalidInput(
            f"At most {max_lines} lines per order.", details={"max_lines": max_lines}
        )
    merged: dict[tuple[str, str], int] = {}
    for line in lines:
        if not line.sku or not line.warehouse:
            raise errors.InvalidInput("Every line needs a SKU and a warehouse.")
        key = (line.sku, line.warehouse)
        merged[key] = merged.get(key, 0) + check_quantity(line.quantity, maximum=max_qty)
    if len(merged) < len(lines):  # lines were merged: their sums are checked too
        for (sku, _), qty in merged.items():
            check_quantity(qty, name=f"quantity of {sku}", maximum=max_qty)
    return merged


def reservation_fingerprint(merged: dict[tuple[str, str], int], actor: str) -> str:
    """Identifies "the same order again": the same lines, placed by the same actor.
    Another actor sending a taken order id with the same lines gets OrderConflict,
    never the other's reservation.

    The format is `idempotency.fingerprint({"placed_by": actor, "lines": sorted
    [sku, code, qty] lists})` (stored on every reservation: it must never
    change). That JSON is written out here directly with the encoder's own
    string escaping (`json.dumps` with sorted keys and default separators builds
    an encoder per call, a batch fingerprints hundreds of orders);
    tests/services/test_fingerprint.py checks both give the same digest."""
    lines = ", ".join(
        f"[{_json_string(sku)}, {_json_string(code)}, {int.__repr__(qty)}]"
        for (sku, code), qty in sorted(merged.items())
    )
    text = f'{{"lines": [{lines}], "placed_by": {_json_string(actor)}}}'
    return hashlib.sha256(text.encode()).hexdigest()


def hold_lapsed(reservation: Reservation, now: datetime) -> bool:
    """An active hold past its `expires_at`: it counts as expired, swept or not."""
    return (
        reservation.status == ReservationStatus.ACTIVE
        and reservation.expires_at is not None
        and reservation.expires_at <= now
    )


# A reservation is short only because closers (the sweeper, a release) hold the
# orders of lapsed holds on its rows: both engines skip those orders (SKIP
# LOCKED: waiting for them while holding the rows would invert the lock order,
# reservation then rows), so it is tried again, after waiting for those closers
# without holding any row (`wait_for_closers`), at most this many times.
LAPSED_BUSY_RETRIES = 3


def lapsed_orders_elsewhere(rows: Q, now: datetime) -> set:
    """The orders (reservation pks) of open lines on `rows` (a filter on the
    line's `inventory`) whose hold lapsed by `now` and that another transaction
    holds right now (a closer: SKIP LOCKED could not take them). Asked only for
    a short reservation: the lapsed holds it could take were already counted."""
    with transaction.atomic():
        lapsed = set(
            ReservationLine.objects.filter(
                rows,
                status=ReservationStatus.ACTIVE,
                reservation__status=ReservationStatus.ACTIVE,
                reservation__expires_at__lte=now,
            ).values_list("reservation_id", flat=True)
        )
        if not lapsed:
            return set()
        free = set(
            Reservation.objects.select_for_update(no_key=True, skip_locked=True)
            .filter(pk__in=lapsed)
            .values_list("pk", flat=True)
        )
    return lapsed - free


def wait_for_closers(reservation_pks: Iterable[object]) -> None:
    """Wait until no transaction holds these orders (their closers committed or
    rolled back): their locks taken and let go, before any row's."""
    with transaction.atomic():
        list(
            Reservation.objects.select_for_update(no_key=True)
            .filter(pk__in=list(reservation_pks))
            .values_list("pk", flat=True)
        )


def order_status(lines: Iterable[ReservationLine], closing_status: str) -> str:
    lines = list(lines)
    if any(line.quantity_open > 0 for line in lines):
        return ReservationStatus.ACTIVE
    if any(line.quantity_fulfilled > 0 for line in lines):
        return ReservationStatus.FULFILLED
    if any(line.status == ReservationStatus.EXPIRED for line in lines):
        return ReservationStatus.EXPIRED
    return closing_status
