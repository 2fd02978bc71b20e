"""The stock service layer: every change to stock happens in this package.

By concern (import from here: `from inventory import services`):

* `stock`: receive, adjust, transfer, and what every operation shares
  (validation, `retry_busy`);
* `reservations`: reserve one order or a batch; `reservation_close`: release,
  fulfil, expire; `reservation_confirm`: confirm or extend a hold; `orders`: the
  order values and rules these share; `reserve_sql`: the PostgreSQL engine's
  adapter (the functions in `inventory/sql/`);
* `ledger`: the one write path of balances (`apply_changes`), `Reference`, and
  the after-commit publication caches and reorder checks listen on;
* `idempotency`: keys, fingerprints, replays; `rows`: row resolution, creation
  (`stock_rows_create`) and locking;
* `transfers`: transfers in two steps (ship, then receive; units in transit
  count as incoming at the destination);
* `states`: stock states (issue #15): moves between sellable, damaged and
  quality control, write-offs, customer returns with a disposition;
* `catalogue`: the catalogue writes (and a product's stock policy); `bulk`: the
  set-based work on whole files (bulk receive, reconcile, export).
* `checkpoints`: balance checkpoints (reconcile reads the ledger since the last
  one); `partitions`: the ledger as a pg_partman partitioned table (opt-in
  conversion, maintenance, archive and restore of old partitions).
"""

from .bulk import (
    BadRow,
    BulkFormatError,
    BulkReceiveResult,
    Discrepancy,
    ReconcileResult,
    inventory_export_csv,
    inventory_reconcile,
    stock_receive_bulk,
)
from .catalogue import (
    bundle_check_components,
    bundle_set_components,
    inventory_set_reorder,
    product_create,
    product_set_stock_policy,
    product_update,
    products_upsert,
    warehouse_create,
    warehouse_update,
)
from .checkpoints import CheckpointTaken, latest_checkpoint, ledger_checkpoint_take
from .ledger import (
    COMMITTED_CHANGE_LISTENERS,
    HOLD_CHANGE_LISTENERS,
    CommittedChange,
    HoldChange,
    OperationResult,
    Reference,
)
from .orders import (
    OrderRequest,
    ReservationOutcome,
    ReservationResult,
    ReserveLine,
)
from .partitions import (
    ArchiveResult,
    ConversionResult,
    ledger_is_partitioned,
    ledger_partition_convert,
    ledger_partition_maintenance,
    ledger_partition_restore,
    ledger_partitions,
    ledger_partitions_archive,
    partman_available,
)
from .reservation_close import (
    OrderLine,
    reservation_fulfill,
    reservation_release,
    reservations_expire,
)
from .reservation_confirm import (
    MAX_HOLD_SECONDS,
    ConfirmOutcome,
    ConfirmRequest,
    reservation_confirm,
    reservations_confirm_batch,
)
from .reservations import reservation_exists, stock_reserve, stock_reserve_batch
from .rows import stock_rows_create
from .states import (
    WRITTEN_OFF,
    ReturnLineRequest,
    ReturnResult,
    shipped_and_returned,
    stock_move_state,
    stock_return,
)
from .stock import (
    TransferLine,
    retry_busy,
    stock_adjust,
    stock_receive,
    stock_transfer,
    transferable_units,
)
from .transfers import ShipLine, TransferResult, transfer_receive, transfer_ship

__all__ = [
    "COMMITTED_CHANGE_LISTENERS",
    "HOLD_CHANGE_LISTENERS",
    "MAX_HOLD_SECONDS",
    "WRITTEN_OFF",
    "ArchiveResult",
    "BadRow",
    "BulkFormatError",
    "BulkReceiveResult",
    "CheckpointTaken",
    "CommittedChange",
    "ConfirmOutcome",
    "ConfirmRequest",
    "ConversionResult",
    "Discrepancy",
    "HoldChange",
    "OperationResult",
    "OrderLine",
    "OrderRequest",
    "ReconcileResult",
    "Reference",
    "ReservationOutcome",
    "ReservationResult",
    "ReserveLine",
    "ReturnLineRequest",
    "ReturnResult",
    "ShipLine",
    "TransferLine",
    "TransferResult",
    "bundle_check_components",
    "bundle_set_components",
    "inventory_export_csv",
    "inventory_reconcile",
    "inventory_set_reorder",
    "latest_checkpoint",
    "ledger_checkpoint_take",
    "ledger_is_partitioned",
    "ledger_partition_convert",
    "ledger_partition_maintenance",
    "ledger_partition_restore",
    "ledger_partitions",
    "ledger_partitions_archive",
    "partman_available",
    "product_create",
    "product_set_stock_policy",
    "product_update",
    "products_upsert",
    "reservation_confirm",
    "reservation_exists",
    "reservation_fulfill",
    "reservation_release",
    "reservations_confirm_batch",
    "reservations_expire",
    "retry_busy",
    "shipped_and_returned",
    "stock_adjust",
    "stock_move_state",
    "stock_receive",
    "stock_receive_bulk",
    "stock_reserve",
    "stock_reserve_batch",
    "stock_return",
    "stock_rows_create",
    "stock_transfer",
    "transfer_receive",
    "transfer_ship",
    "transferable_units",
    "warehouse_create",
    "warehouse_update",
]
