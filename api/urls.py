"""Routes of the storefront and operations API, mounted at /api/v1/.

Each domain's views module (api/views/) holds its own `urlpatterns`; this list
joins them, then answers every other path with a JSON 404.
"""

from django.http import JsonResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt

from .exceptions import error_body
from .views import (
    availability,
    catalogue,
    inventory,
    ping,
    purchase_orders,
    reservations,
    returns,
    stock,
    transfers,
)

app_name = "api"


@csrf_exempt  # token-authenticated API: no cookies, so no CSRF check (as in APIView)
def not_found(request, *args, **kwargs):
    return JsonResponse(error_body("not_found", "No such endpoint."), status=404)


urlpatterns = [
    *availability.urlpatterns,
    *ping.urlpatterns,
    *reservations.urlpatterns,
    *stock.urlpatterns,
    *catalogue.urlpatterns,
    *inventory.urlpatterns,
    *purchase_orders.urlpatterns,
    *returns.urlpatterns,
    *transfers.urlpatterns,
    re_path(r"^[\s\S]*$", not_found),  # [\s\S]: a newline in a path is still a JSON 404
]
