"""Transfers in two steps (issue #15, item 3): ship, then receive.

Beside the instant `stock_transfer` (both warehouses change in one
transaction), a transfer can travel:

* `transfer_ship`: the units leave the source's on hand (one TRANSFER ledger
  row per SKU at the source, on_hand_delta -q). Only sellable units ship (the
  rule of the instant transfer, `stock.check_sellable`). While the `Transfer`
  is `shipped` its units are in transit: availability reports them as
  `incoming` at the destination with the transfer's `expected_date`
  (`selectors.in_transit_for_products`), and the reorder rule counts them.
* `transfer_receive`: the units arrive at the destination (one TRANSFER row
  per SKU, on_hand_delta +shipped); a SKU that arrived short has the
  difference written off there, with a reason (a WRITE_OFF row, on_hand_delta
  -short). Status `received` or `received_short`.

Every ledger row carries reference (transfer, transfer_id): the ledger alone
tells what left, what arrived and what was lost. Each step is one transaction,
idempotent by the client's `transfer_id` (a retry with the same request
replays the first result, also one that arrives while the first still runs;
another request under the id is refused). Locks (`inventory.locks`): each step
its idempotency key first (`run_idempotent`); ship then locks the source and
destination rows (pk order; destination rows are created empty if missing, so
incoming shows on a row); receive locks the transfer row (step 0), then the
destination rows.

Events (docs/EVENTS.md, events migration 0006): the statement order below is
what the triggers rely on. Ship writes the source's ledger rows, then the
transfer row, then every line in one statement: the line trigger emits
`transfer.shipped` with the whole shipment. Receive writes the destination's
ledger rows and each line's `quantity_received`, then the status update, its
last statement: the transfer trigger emits `transfer.received`.

An inactive destination: shipping to it is refused (WarehouseInactive); a
transfer already on its way to a warehouse made inactive meanwhile is received
there (the goods are at its dock; inactive closes a warehouse for sale and new
shipments, not for arrivals).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from django.db import IntegrityError
from django.utils import timezone

from .. import clock, errors
from ..locks import lock_transfer
from ..models import (
    InventoryTransaction,
    ReferenceType,
    TransactionType,
    Transfer,
    TransferLine,
    TransferStatus,
)
from ..selectors import transfer_with_ledger
from .idempotency import fingerprint, fit_key, replay, run_idempotent
from .ledger import Change, OperationResult, Reference, apply_changes
from .rows import lock_rows
from .stock import TransferLine as ShipLine
from .stock import check_quantity, check_reason, check_sellable, merge_transfer_lines, retry_busy

__all__ = ["ShipLine", "TransferResult", "transfer_receive", "transfer_ship"]


@dataclass
class TransferResult:
    transfer: Transfer
    lines: list[TransferLine]
    transactions: list[InventoryTransaction]
    replayed: bool = False


def _check_transfer_id(transfer_id: str) -> str:
    # No "/": the id names the transfer in one URL path segment (/transfers/<id>/).
    if (
        not isinstance(transfer_id, str)
        or not 1 <= len(transfer_id) <= 100
        or not transfer_id.strip()
        or "/" in transfer_id
        or "\x00" in transfer_id
    ):
        raise errors.InvalidInput(
            "A transfer_id of 1 to 100 characters without '/' is required.",
            details={"field": "transfer_id"},
        )
    return transfer_id


def _result(transfer_id: str, replayed: bool) -> TransferResult:
    record, lines, transactions = transfer_with_ledger(transfer_id)
    return TransferResult(record, lines, transactions, replayed=replayed)


def _check_expected_date(expected_date: datetime.date | None) -> None:
    if expected_date is None:
        return
    if not isinstance(expected_date, datetime.date) or isinstance(expected_date, datetime.datetime):
        raise errors.InvalidInput(
            "expected_date must be a date.", details={"field": "expected_date"}
        )
    if expected_date < timezone.localdate(clock.now()):
        raise errors.InvalidInput(
            "expected_date may not be in the past.",
            details={"field": "expected_date", "value": expected_date.isoformat()},
        )


@retry_busy
def transfer_ship(
    *,
    transfer_id: str,
    source: str,
    destination: str,
    lines: Sequence[ShipLine],
    actor: str,
    expected_date: datetime.date | None = None,
    reason: str = "",
) -> TransferResult:
    """Ship: the units leave the source's on hand and travel to the destination.

    Only sellable units ship (InsufficientStock otherwise); the destination
    must be active, the source may be inactive (emptying a closing site).
    Idempotent by `transfer_id`: the same request again answers the first
    result (`replayed`), another request under the id raises TransferConflict.
    """
    _check_transfer_id(transfer_id)
    if source == destination:
        raise errors.SameWarehouse()
    merged = merge_transfer_lines(lines)
    if not Transfer.objects.filter(transfer_id=transfer_id).exists():
        # A retry of a shipment replays even once its expected date has passed.
        _check_expected_date(expected_date)
    reason = (reason or "").strip()
    payload = {
        "transfer_id": transfer_id,
        "source": source,
        "destination": destination,
        "lines": sorted(merged.items()),
        "expected_date": expected_date.isoformat() if expected_date else None,
    }
    reference = Reference(ReferenceType.TRANSFER, transfer_id)

    def body() -> OperationResult:
        pairs = [(sku, source) for sku in merged] + [(sku, destination) for sku in merged]
        rows = lock_rows(pairs, create_missing=True, require_active=[destination])
        check_sellable(rows, source, merged)
        changes = [
            Change(rows[(sku, source)], TransactionType.TRANSFER, on_hand_delta=-qty)
            for sku, qty in sorted(merged.items(), key=lambda item: rows[(item[0], source)].pk)
        ]
        # The ledger rows first: the transfer's lines, inserted last, carry the whole
        # shipment to the `transfer.shipped` event, ledger ids included
        # (events/sql/events_transfer_shipped.sql).
        ledger = apply_changes(
            changes,
            actor=actor,
            reference=reference,
            reason=reason or f"transfer {transfer_id} shipped to {destination}",
        )
        record = Transfer.objects.create(
            transfer_id=transfer_id,
            source=rows[(next(iter(merged)), source)].warehouse,
            destination=rows[(next(iter(merged)), destination)].warehouse,
            expected_date=expected_date,
            reason=reason,
            shipped_by=actor,
        )
        TransferLine.objects.bulk_create(
            [
                TransferLine(
                    transfer=record, product=rows[(sku, source)].product, quantity_shipped=qty
                )
                for sku, qty in sorted(merged.items())
            ]
        )
        return OperationResult(transactions=ledger, reference=reference)

    key = fit_key("transfer_ship", f"transfer_ship:{transfer_id}")
    try:
        # A concurrent duplicate waits on the key (run_idempotent), then replays.
        result = run_idempotent(key, "transfer_ship", payload, body)
    except errors.IdempotencyConflict:
        raise errors.TransferConflict(details={"transfer_id": transfer_id}) from None
    except IntegrityError:
        # Shipped under this id by an earlier, non-idempotent path: never twice.
        raise errors.TransferConflict(details={"transfer_id": transfer_id}) from None
    return _result(transfer_id, replayed=result.replayed)


def _check_received(
    record: Transfer, received: Mapping[str, int] | None
) -> tuple[dict[str, int], dict[str, TransferLine]]:
    """Per SKU of the transfer, the units that arrived (a SKU not named arrived
    in full); a SKU the transfer did not carry, or more than shipped, raises."""
    by_sku = {line.product.sku: line for line in record.lines.select_related("product")}
    received = dict(received or {})
    for sku, qty in received.items():
        check_quantity(qty, name=f"quantity_received of {sku}", allow_zero=True)
    over = [
        {
            "sku": sku,
            "received": qty,
            "shipped": by_sku[sku].quantity_shipped if sku in by_sku else 0,
        }
        for sku, qty in sorted(received.items())
        if sku not in by_sku or qty > by_sku[sku].quantity_shipped
    ]
    if over:
        raise errors.ExceedsShipped(
            f"Transfer {record.transfer_id} did not ship that many units (or that SKU).",
            details={"transfer_id": record.transfer_id, "lines": over},
        )
    arrived = {sku: received.get(sku, line.quantity_shipped) for sku, line in by_sku.items()}
    return arrived, by_sku


@retry_busy
def transfer_receive(
    *,
    transfer_id: str,
    actor: str,
    received: Mapping[str, int] | None = None,
    reason: str = "",
) -> TransferResult:
    """Receive: the shipped units arrive at the destination (active or not).

    `received`: {sku: units that arrived} for SKUs that arrived short (a SKU
    not named arrived in full; None: everything arrived). Units short are
    written off at the destination and need a `reason`. Idempotent by
    `transfer_id`: the same receipt again replays; another receipt of a
    transfer no longer in transit raises TransferNotInTransit.
    """
    _check_transfer_id(transfer_id)
    record = Transfer.objects.filter(transfer_id=transfer_id).first()
    if record is None:
        raise errors.NotFound(f"No transfer {transfer_id}.", details={"transfer_id": transfer_id})
    arrived, by_sku = _check_received(record, received)
    short = {sku: by_sku[sku].quantity_shipped - qty for sku, qty in arrived.items()}
    short = {sku: qty for sku, qty in short.items() if qty}
    reason = (reason or "").strip()
    if short:
        reason = check_reason(reason)
    payload = {"transfer_id": transfer_id, "arrived": sorted(arrived.items())}
    reference = Reference(ReferenceType.TRANSFER, transfer_id)
    key = fit_key("transfer_receive", f"transfer_receive:{transfer_id}")

    def body() -> OperationResult:
        locked = lock_transfer(transfer_id)
        if locked.status != TransferStatus.SHIPPED:
            raise errors.TransferNotInTransit(
                details={"transfer_id": transfer_id, "status": locked.status}
            )
        code = locked.destination.code
        rows = lock_rows([(sku, code) for sku in arrived], create_missing=True)
        changes = []
        for sku in sorted(arrived, key=lambda s: rows[(s, code)].pk):
            row = rows[(sku, code)]
            changes.append(
                Change(row, TransactionType.TRANSFER, on_hand_delta=by_sku[sku].quantity_shipped)
            )
        ledger = apply_changes(
            changes,
            actor=actor,
            reference=reference,
            reason=f"transfer {transfer_id} received from {locked.source.code}",
        )
        write_offs = [
            Change(rows[(sku, code)], TransactionType.WRITE_OFF, on_hand_delta=-qty)
            for sku, qty in sorted(short.items(), key=lambda item: rows[(item[0], code)].pk)
        ]
        if write_offs:
            ledger += apply_changes(
                write_offs, actor=actor, reference=reference, reason=f"short on receipt: {reason}"
            )
        for sku, line in by_sku.items():
            line.quantity_received = arrived[sku]
        TransferLine.objects.bulk_update(list(by_sku.values()), ["quantity_received"])
        locked.status = TransferStatus.RECEIVED_SHORT if short else TransferStatus.RECEIVED
        locked.received_by = actor
        locked.received_at = timezone.now()
        locked.receive_reason = reason
        locked.save(update_fields=["status", "received_by", "received_at", "receive_reason"])
        return OperationResult(transactions=ledger, reference=reference)

    try:
        result = run_idempotent(key, "transfer_receive", payload, body)
    except (errors.IdempotencyConflict, errors.TransferNotInTransit) as exc:
        # The same receipt that won a race replays; another one is refused.
        try:
            again = replay(key, fingerprint({"operation": "transfer_receive", **payload}))
        except errors.IdempotencyConflict:
            again = None
        if again is not None:
            return _result(transfer_id, replayed=True)
        status = Transfer.objects.get(transfer_id=transfer_id).status
        raise errors.TransferNotInTransit(
            details={"transfer_id": transfer_id, "status": status}
        ) from exc
    return _result(transfer_id, replayed=result.replayed)
