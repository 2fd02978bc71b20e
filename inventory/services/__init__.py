"""The stock service layer: every change to stock happens in this package.

`stock` holds the six ledger operations (and the after-commit hook that caches
and reorder checks listen on); `catalog` the catalogue writes, which never
change stock quantities; `bulk` the set-based work on whole files (bulk
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
from .catalog import (
    inventory_set_reorder,
    product_create,
    product_update,
    products_upsert,
    warehouse_create,
    warehouse_update,
)
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
    reservation_exists,
    reservation_fulfill,
    reservation_release,
    reservations_expire,
    retry_busy,
    stock_adjust,
    stock_receive,
    stock_reserve,
    stock_reserve_batch,
    stock_rows_create,
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
    "OrderRequest",
    "ReconcileResult",
    "Reference",
    "ReservationOutcome",
    "ReservationResult",
    "ReserveLine",
    "TransferLine",
    "bulk_receive",
    "inventory_export_csv",
    "inventory_reconcile",
    "inventory_set_reorder",
    "product_create",
    "product_set_stock_policy",
    "product_update",
    "products_upsert",
    "reservation_exists",
    "reservation_fulfill",
    "reservation_release",
    "reservations_expire",
    "retry_busy",
    "stock_adjust",
    "stock_receive",
    "stock_reserve",
    "stock_reserve_batch",
    "stock_rows_create",
    "stock_transfer",
    "warehouse_create",
    "warehouse_update",
]
