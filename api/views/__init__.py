"""The storefront and operations API: one small view per operation, per domain.

    base.py             ApiView, scopes, lists, validated, with_idempotency_key
    availability.py     availability of one or many SKUs
    reservations.py     create, batch, read, release, fulfil, confirm, batch confirm
    stock.py            receive, adjust, transfer
    catalogue.py        products, warehouses
    inventory.py        stock rows, the ledger
    purchase_orders.py  booking a delivery
    ping.py             the cheapest authenticated call

Each view validates input with its InputSerializer (`self.validated`), calls one
service, selector or the router, and answers with its OutputSerializer or, on the
hot paths, the renderer in api/renderers.py. No stock logic lives here. Each
module holds its own `urlpatterns` (joined in api/urls.py).

The names below are re-exported for code written against the former single
module `api.views`; new code imports from the domain module.
"""

from ..renderers import reservation_data
from .availability import AvailabilityBatchView, AvailabilityDetailView
from .base import (
    ALL_SCOPES,
    CATALOGUE_SCOPES,
    LIST_SCOPES,
    ApiView,
    ListView,
    with_idempotency_key,
)
from .catalogue import (
    ProductBulkUpsertView,
    ProductDetailView,
    ProductListCreateView,
    WarehouseDetailView,
    WarehouseListCreateView,
)
from .inventory import InventoryDetailView, InventoryListView, TransactionListView
from .ping import PingView
from .purchase_orders import PurchaseOrderReceiveView
from .reservations import (
    ReservationBatchConfirmView,
    ReservationBatchView,
    ReservationConfirmView,
    ReservationCreateView,
    ReservationDetailView,
    ReservationFulfillView,
    ReservationReleaseView,
)
from .stock import StockAdjustView, StockReceiveView, StockTransferView

__all__ = [
    "ALL_SCOPES",
    "CATALOGUE_SCOPES",
    "LIST_SCOPES",
    "ApiView",
    "AvailabilityBatchView",
    "AvailabilityDetailView",
    "InventoryDetailView",
    "InventoryListView",
    "ListView",
    "PingView",
    "ProductBulkUpsertView",
    "ProductDetailView",
    "ProductListCreateView",
    "PurchaseOrderReceiveView",
    "ReservationBatchConfirmView",
    "ReservationBatchView",
    "ReservationConfirmView",
    "ReservationCreateView",
    "ReservationDetailView",
    "ReservationFulfillView",
    "ReservationReleaseView",
    "StockAdjustView",
    "StockReceiveView",
    "StockTransferView",
    "TransactionListView",
    "WarehouseDetailView",
    "WarehouseListCreateView",
    "reservation_data",
    "with_idempotency_key",
]
