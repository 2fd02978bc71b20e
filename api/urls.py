"""Routes of the storefront and operations API, mounted at /api/v1/."""

from django.http import JsonResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from . import views
from .exceptions import error_body

app_name = "api"


@csrf_exempt  # token-authenticated API: no cookies, so no CSRF check (as in APIView)
def not_found(request, *args, **kwargs):
    return JsonResponse(error_body("not_found", "No such endpoint."), status=404)


urlpatterns = [
    path("availability/", views.AvailabilityBatchView.as_view(), name="availability-batch"),
    path(
        "availability/<path:sku>/",
        views.AvailabilityDetailView.as_view(),
        name="availability-detail",
    ),
    path("ping/", views.PingView.as_view(), name="ping"),
    path("reservations/", views.ReservationCreateView.as_view(), name="reservation-create"),
    path("reservations/batch/", views.ReservationBatchView.as_view(), name="reservation-batch"),
    path(
        "reservations/batch/confirm/",
        views.ReservationBatchConfirmView.as_view(),
        name="reservation-batch-confirm",
    ),
    path(
        "reservations/<str:order_id>/",
        views.ReservationDetailView.as_view(),
        name="reservation-detail",
    ),
    path(
        "reservations/<str:order_id>/release/",
        views.ReservationReleaseView.as_view(),
        name="reservation-release",
    ),
    path(
        "reservations/<str:order_id>/fulfill/",
        views.ReservationFulfillView.as_view(),
        name="reservation-fulfill",
    ),
    path(
        "reservations/<str:order_id>/confirm/",
        views.ReservationConfirmView.as_view(),
        name="reservation-confirm",
    ),
    path("stock/receive/", views.StockReceiveView.as_view(), name="stock-receive"),
    path("stock/adjust/", views.StockAdjustView.as_view(), name="stock-adjust"),
    path("stock/transfer/", views.StockTransferView.as_view(), name="stock-transfer"),
    path("products/", views.ProductListCreateView.as_view(), name="product-list"),
    path("products/bulk/", views.ProductBulkUpsertView.as_view(), name="product-bulk"),
    path("products/<path:sku>/", views.ProductDetailView.as_view(), name="product-detail"),
    path("warehouses/", views.WarehouseListCreateView.as_view(), name="warehouse-list"),
    path("warehouses/<str:code>/", views.WarehouseDetailView.as_view(), name="warehouse-detail"),
    path("inventory/", views.InventoryListView.as_view(), name="inventory-list"),
    path(
        "inventory/<path:sku>/<str:warehouse>/",
        views.InventoryDetailView.as_view(),
        name="inventory-detail",
    ),
    path("transactions/", views.TransactionListView.as_view(), name="transaction-list"),
    path(
        "purchase-orders/<str:number>/receive/",
        views.PurchaseOrderReceiveView.as_view(),
        name="purchase-order-receive",
    ),
    re_path(r"^[\s\S]*$", not_found),  # [\s\S]: a newline in a path is still a JSON 404
]
