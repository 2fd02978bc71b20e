"""The front door: `/` says what Stockroom is and where everything lives.

Links to the back office, the API docs and schema, and health. With DEBUG (the
embedded `make run` default) it also shows the demo logins and the documented
demo SKUs and warehouses, which docs/API.md's examples use; never in production.
"""

from django.conf import settings
from django.db import DatabaseError
from django.shortcuts import render
from django.views.decorators.http import require_safe


def _demo() -> dict | None:
    if not settings.DEBUG:
        return None
    from backoffice.management.commands.demo_admin import (
        DEMO_PASSWORD,
        DEMO_STAFF,
        DEMO_USERNAME,
    )
    from inventory.demo import SHOWCASE, demo_sku
    from inventory.models import Product
    from warehouses.models import Warehouse

    skus = [demo_sku(n) for n in range(len(SHOWCASE))]
    try:
        products = list(
            Product.objects.filter(sku__in=skus).order_by("sku").values("sku", "name", "category")
        )
        warehouses = list(Warehouse.objects.order_by("code").values("code", "name")[:10])
        product_count = Product.objects.count()
    except DatabaseError:  # no migrations yet: the page still answers
        products, warehouses, product_count = [], [], 0
    return {
        "admin": {"username": DEMO_USERNAME, "password": DEMO_PASSWORD},
        "staff": [{"username": name, "role": role} for name, role in DEMO_STAFF.items()],
        "products": products,
        "warehouses": warehouses,
        "product_count": product_count,
    }


@require_safe
def front_door(request):
    return render(request, "front_door.html", {"demo": _demo()})
