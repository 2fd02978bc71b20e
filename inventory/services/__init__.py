"""The stock service layer: every change to stock happens in this package.

`stock` holds the six ledger operations (and the after-commit hook that caches
and reorder checks listen on); `bulk` the set-based work on whole files (bulk
receive, reconcile, export). Import from here: `from inventory import services`.
"""

from .bulk import (
    BadRow,
    BulkFormatError,
    BulkReceiveResult,
    Discrepancy,
    ReconcileResult,
    bulk_receive,
    inventory_export_csv,
    inventory_reconcile,
)
from .stock import (
    COMMITTED_CHANGE_LISTENERS,
    CommittedChange,
    OperationResult,
    OrderLine,
    Reference,
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
    stock_transfer,
)

__all__ = [
    "COMMITTED_CHANGE_LISTENERS",
    "BadRow",
    "BulkFormatError",
    "BulkReceiveResult",
    "CommittedChange",
    "Discrepancy",
    "OperationResult",
    "OrderLine",
    "ReconcileResult",
    "Reference",
    "ReservationResult",
    "ReserveLine",
    "TransferLine",
    "bulk_receive",
    "inventory_export_csv",
    "inventory_reconcile",
    "product_set_stock_policy",
    "reservation_fulfill",
    "reservation_release",
    "reservations_expire",
    "stock_adjust",
    "stock_receive",
    "stock_reserve",
    "stock_transfer",
]
