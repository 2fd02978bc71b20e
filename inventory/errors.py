"""Domain errors for stock operations.

Every error has a stable machine-readable `code`, a human message and `details`
(data a client can act on). `http_status` is the status the API answers with;
the admin shows `message`. Raising one inside a service rolls back everything
that service did.
"""

from typing import Any


class InventoryError(Exception):
    code = "inventory_error"
    http_status = 400
    default_message = "The stock operation was refused."

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or self.default_message
        self.details = details if details is not None else {}
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidInput(InventoryError):
    code = "validation_error"
    default_message = "The request is not valid."


class InvalidQuantity(InvalidInput):
    code = "invalid_quantity"
    default_message = "Quantities must be whole numbers within the allowed range."


class ReasonRequired(InvalidInput):
    code = "reason_required"
    default_message = "A reason is required for this operation."


class SameWarehouse(InvalidInput):
    code = "same_warehouse"
    default_message = "Source and destination warehouse must differ."


class UnknownSku(InventoryError):
    code = "unknown_sku"
    default_message = "Unknown SKU."

    def __init__(self, skus: list[str]) -> None:
        super().__init__(f"Unknown SKU: {', '.join(sorted(skus))}.", details={"skus": sorted(skus)})


class UnknownWarehouse(InventoryError):
    code = "unknown_warehouse"
    default_message = "Unknown warehouse."

    def __init__(self, codes: list[str]) -> None:
        super().__init__(
            f"Unknown warehouse: {', '.join(sorted(codes))}.", details={"warehouses": sorted(codes)}
        )


class WarehouseInactive(InventoryError):
    code = "warehouse_inactive"
    http_status = 409
    default_message = "The warehouse is inactive."

    def __init__(self, codes: list[str]) -> None:
        codes = sorted(set(codes))  # the reserve function lists a code once per line
        super().__init__(f"Warehouse inactive: {', '.join(codes)}.", details={"warehouses": codes})


class InsufficientStock(InventoryError):
    """Not enough available stock; `lines` lists each short line."""

    code = "insufficient_stock"
    http_status = 409
    default_message = "Not enough stock available."

    def __init__(self, lines: list[dict[str, Any]], message: str | None = None) -> None:
        self.lines = lines
        super().__init__(message, details={"lines": lines})


class SoldOut(InsufficientStock):
    """Refused by the sold-out gate from the committed cached state: the database
    was not asked (same code and shape as InsufficientStock)."""


class InsufficientOnHand(InsufficientStock):
    """Shipping more than is physically on hand (a backordered line not yet in stock)."""

    code = "insufficient_on_hand"
    default_message = "Not enough stock on hand to fulfil."


class BelowReserved(InventoryError):
    code = "below_reserved"
    http_status = 409
    default_message = "On hand cannot go below what open orders have reserved."


class StockChanged(InventoryError):
    """Compare-and-set failed: stock moved since the caller looked at it."""

    code = "stock_changed"
    http_status = 409
    default_message = "Stock changed since it was read; review and try again."


class ReservationNotFound(InventoryError):
    code = "not_found"
    http_status = 404
    default_message = "No reservation for that order."


class ExceedsReservation(InventoryError):
    code = "exceeds_reservation"
    http_status = 409
    default_message = "More than the order still holds."


class OrderClosed(ExceedsReservation):
    """The order holds nothing any more: it was released, fulfilled or expired
    (a hold past its `expires_at` counts as expired even before the sweeper ran).

    `details`: `{"order_id": ..., "status": <the order's status>}`, so a client
    retrying after a lost answer learns that and how the order was closed. A
    kind of ExceedsReservation (the order holds less than asked: nothing).
    """

    code = "order_closed"
    http_status = 409
    default_message = "The order is closed: it holds nothing any more."

    def __init__(self, order_id: str, status: str) -> None:
        self.status = status
        super().__init__(
            f"Order {order_id} is closed ({status}): it holds nothing any more.",
            details={"order_id": order_id, "status": status},
        )


class OrderConflict(InventoryError):
    code = "order_conflict"
    http_status = 409
    default_message = "This order id was already used with different lines."


class IdempotencyConflict(InventoryError):
    code = "idempotency_conflict"
    http_status = 422
    default_message = "This idempotency key was already used with a different request."


class AllowanceBelowBackorders(InventoryError):
    code = "allowance_below_backorders"
    http_status = 409
    default_message = "Some warehouses are already further below zero than the new limit."


class StockBusy(InventoryError):
    """The operation lost a fight over rows and was rolled back: a row stayed
    locked past lock_timeout (a hot SKU or a stuck session), or a deadlock or
    serialization failure persisted through the service's own retries
    (`inventory.db_errors`). Nothing was applied; the same call can be retried.

    `details["reason"]`: lock_timeout, deadlock or serialization_failure
    (or bundle_composition_changed: a bundle's composition changed twice while
    an order reserving it was being expanded, issue #16)."""

    code = "stock_busy"
    http_status = 503
    default_message = "The stock rows are busy; nothing was applied. Retry shortly."

    def __init__(self, message: str | None = None, *, reason: str = "lock_timeout") -> None:
        super().__init__(message, details={"reason": reason, "applied": False})


class DatabaseUnavailable(InventoryError):
    """The database connection was lost or the database did not answer in time.

    A read can simply be retried. A write's outcome is unknown to the server too
    (the connection may have died during COMMIT): retry it with the same order id
    or Idempotency-Key, which answers the first outcome if it was applied.
    """

    code = "database_unavailable"
    http_status = 503
    default_message = (
        "The database is unavailable; retry shortly. A write may or may not have been "
        "applied: retry it with the same order id or Idempotency-Key."
    )


# --- Catalogue (added with the API) ---------------------------------------


class NotFound(InventoryError):
    code = "not_found"
    http_status = 404
    default_message = "Not found."


class AlreadyExists(InventoryError):
    code = "already_exists"
    http_status = 409
    default_message = "That already exists."


class InsufficientState(InsufficientStock):
    """Moving, writing off or shipping more units out of a stock state (damaged,
    quality control) than the row holds in it (issue #15)."""

    code = "insufficient_state"
    default_message = "Not enough units in that stock state."


class ExceedsFulfilled(InventoryError):
    """A return line names an order and would bring back more of the SKU than
    that order shipped, counting earlier returns."""

    code = "exceeds_fulfilled"
    http_status = 409
    default_message = "More units returned than the order shipped."


class ReturnConflict(InventoryError):
    """The return id was already used for different lines."""

    code = "return_conflict"
    http_status = 409
    default_message = "This return id was already recorded with different lines."


class SkuIsBundle(InventoryError):
    """A stock operation named a bundle: a bundle has no stock of its own (its
    components do; receive, adjust or count those)."""

    code = "sku_is_bundle"
    http_status = 409
    default_message = "A bundle has no stock of its own; its components do."

    def __init__(self, skus: list[str]) -> None:
        skus = sorted(set(skus))
        super().__init__(
            f"Bundle SKU has no stock of its own: {', '.join(skus)}.", details={"skus": skus}
        )


class InvalidBundleComponent(InvalidInput):
    """A composition that cannot be: a component that is a bundle itself (no
    nesting), the bundle itself, a SKU listed twice, or a quantity below 1."""

    code = "invalid_bundle_component"
    default_message = "The bundle's components are not valid."


class BundleConflict(InventoryError):
    """A product cannot become a bundle while it has stock rows or is a component
    of a bundle."""

    code = "bundle_conflict"
    http_status = 409
    default_message = "This product cannot become a bundle."


class BundleInUse(InventoryError):
    """A bundle's composition cannot change while open reservations hold it."""

    code = "bundle_in_use"
    http_status = 409
    default_message = "Open reservations hold this bundle; its composition cannot change now."


class LedgerPartitionError(InventoryError):
    """A ledger partitioning, archive or restore step refused (issue #21): pg_partman
    missing, the ledger already (or not yet) partitioned, a partition not covered
    by a balance checkpoint, an archive file that does not match its manifest."""

    code = "ledger_partition"
    http_status = 409
    default_message = "The ledger partition operation was refused."


class TransferConflict(InventoryError):
    """The transfer id was already shipped with a different request (issue #15)."""

    code = "transfer_conflict"
    http_status = 409
    default_message = "This transfer id was already shipped with different lines."


class TransferNotInTransit(InventoryError):
    """A receipt for a transfer that was already received (with other figures)."""

    code = "transfer_not_in_transit"
    http_status = 409
    default_message = "This transfer is no longer in transit: it was received."


class ExceedsShipped(InvalidInput):
    """A transfer receipt names a SKU the transfer did not carry, or more units
    than were shipped."""

    code = "exceeds_shipped"
    default_message = "More units received than the transfer shipped."
