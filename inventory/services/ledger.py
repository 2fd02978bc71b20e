"""The ledger: the one write path of inventory balances and its after-commit publication.

`apply_changes` is the only function that writes inventory balances (bulk
receive and reconcile do the same set-based, in SQL): it applies deltas to rows
the caller locked, writes one ledger row per changed row with who, why and what
for (`Reference`), and hands the committed changes to `publish_committed_changes`
after commit. Listeners (the availability cache, reorder checks) register on
`COMMITTED_CHANGE_LISTENERS`, and on `HOLD_CHANGE_LISTENERS` for holds whose
expiry a confirmation moved: the service layer stays the one place that knows
stock changed. The SQL engine (`reserve_sql`) and `bulk` publish through the
same two functions.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.db import transaction
from django.utils import timezone

from .. import errors
from ..context import current_request_id
from ..models import Inventory, InventoryTransaction, ReferenceType

logger = logging.getLogger(__name__)


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


@dataclass
class OperationResult:
    """The ledger rows an operation wrote. `replayed` is True for an idempotent repeat."""

    transactions: list[InventoryTransaction]
    replayed: bool = False
    reference: Reference | None = None


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
    # The row's units on hand that cannot be sold after the change: safety
    # stock + damaged + quality control (issue #15). Every publisher sets it
    # from the row it wrote, so `available` is the sellable figure.
    unsellable: int = 0

    @property
    def available(self) -> int:
        """Sellable: on hand - reserved - safety stock - damaged - quality control."""
        return self.on_hand - self.reserved - self.unsellable


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


@dataclass
class Change:
    """A delta to apply to one locked inventory row (`apply_changes`)."""

    row: Inventory
    type: str
    on_hand_delta: int = 0
    reserved_delta: int = 0
    # Holds with an expiry opened/closed, as CommittedChange.holds (None: not reported).
    holds: tuple[tuple[datetime, int], ...] | None = None
    # State deltas (issue #15): units into (+) or out of (-) damaged / quality control.
    damaged_delta: int = 0
    quality_control_delta: int = 0
    # The ledger row's reason when it differs from the operation's (a bundle's
    # component line names its bundle: `bundle_lines.bundle_reason`).
    reason: str | None = None

    @property
    def changes_something(self) -> bool:
        return bool(
            self.on_hand_delta
            or self.reserved_delta
            or self.damaged_delta
            or self.quality_control_delta
        )


def apply_changes(
    changes: Sequence[Change],
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
    states = False
    for change in changes:
        if not change.changes_something:
            continue
        row = change.row
        row.on_hand += change.on_hand_delta
        row.reserved += change.reserved_delta
        if change.damaged_delta or change.quality_control_delta:
            states = True
            row.damaged += change.damaged_delta
            row.quality_control += change.quality_control_delta
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
                damaged_delta=change.damaged_delta,
                quality_control_delta=change.quality_control_delta,
                on_hand_after=row.on_hand,
                reserved_after=row.reserved,
                reference_type=reference.type if reference else "",
                reference_id=str(reference.id) if reference else "",
                reason=change.reason if change.reason is not None else reason,
                created_by=actor,
                created_at=now,
                request_id=current_request_id(),
            )
        )
    if not touched:
        return []
    rows = list(touched.values())
    fields = ["on_hand", "reserved", "version", "updated_at"]
    if states:
        fields += ["damaged", "quality_control"]
    if len(rows) == 1:
        row = rows[0]
        Inventory.objects.filter(pk=row.pk).update(**{name: getattr(row, name) for name in fields})
    else:
        Inventory.objects.bulk_update(rows, fields)
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
            unsellable=row.safety_stock + row.damaged + row.quality_control,
        )
        for change, ledger_row in zip(
            (c for c in changes if c.changes_something), ledger, strict=True
        )
        for row in (touched[change.row.pk],)
    )
    publish_on_commit(CommittedChanges(committed, created_orders))
    return ledger


# Called after commit with every committed change. Other parts of the system
# (availability cache, reorder checks) register here, so that the service
# layer stays the one place that knows stock changed.
COMMITTED_CHANGE_LISTENERS: list[Callable[[tuple[CommittedChange, ...]], None]] = []


def publish_committed_changes(changes: tuple[CommittedChange, ...]) -> None:
    """Hand committed changes to every listener; one failing never affects the others.

    The change is already committed: a listener error (cache or broker down) is
    logged, never raised to the caller, whose operation succeeded.
    """
    for listener in COMMITTED_CHANGE_LISTENERS:
        try:
            listener(changes)
        except Exception:
            logger.exception("committed-change listener %r failed", listener)


def publish_on_commit(changes: tuple[CommittedChange, ...]) -> None:
    """Publish `changes` once the current transaction commits (at once outside one)."""
    transaction.on_commit(partial(publish_committed_changes, changes))


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


def publish_hold_changes(changes: tuple[HoldChange, ...]) -> None:
    for listener in HOLD_CHANGE_LISTENERS:
        try:
            listener(changes)
        except Exception:
            logger.exception("hold-change listener %r failed", listener)
