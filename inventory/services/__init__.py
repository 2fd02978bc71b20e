"""The stock service layer: every change to stock happens in this package.

`stock` holds the six ledger operations (and the after-commit hook that caches
and reorder checks listen on). Import from here: `from inventory import services`.
"""

from .stock import (
    COMMITTED_CHANGE_LISTENERS,
    CommittedChange,
    OperationResult,
    OrderLine,
    OrderRequest,
    Reference,
    ReservationOutcome,
    ReservationResult,
    ReserveLine,
    TransferLine,
    product_set_stock_policy,
    reservation_fulfill,
    reservation_release,
    reservations_expire,
    stock_adjust,
    stock_receive,
    stock_reserve,
    stock_reserve_batch,
    stock_transfer,
)

__all__ = [
    "COMMITTED_CHANGE_LISTENERS",
    "CommittedChange",
    "OperationResult",
    "OrderLine",
    "OrderRequest",
    "Reference",
    "ReservationOutcome",
    "ReservationResult",
    "ReserveLine",
    "TransferLine",
    "product_set_stock_policy",
    "reservation_fulfill",
    "reservation_release",
    "reservations_expire",
    "stock_adjust",
    "stock_receive",
    "stock_reserve",
    "stock_reserve_batch",
    "stock_transfer",
]
