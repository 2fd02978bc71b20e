"""Purchasing reads: when depleted products can ship again (availability's `ships_in_days`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date

from django.utils import timezone

from .models import ProductSupplier, PurchaseOrderLine


def ships_in_days_for_products(
    product_ids: Iterable[uuid.UUID | str], *, today: date | None = None
) -> dict[uuid.UUID, dict[str, int]]:
    """Days until new stock can ship, per product: {product_id: {"min": d1, "max": d2}}.

    Keys are `uuid.UUID` (whatever the type of the ids passed in).

    From the earliest open purchase-order line for the product (any warehouse):
    its order's `expected_arrival_date` (days from today, 0 when due or overdue,
    min == max), or, for an order without a date yet (a draft), its supplier's
    lead time. A product with no open line gets its preferred, active supplier's
    lead time (min and max days). Products with neither are absent. Two queries,
    whatever the number of products.
    """
    today = today or timezone.localdate()
    ids = {uuid.UUID(str(pid)) for pid in product_ids}
    if not ids:
        return {}
    result: dict[uuid.UUID, dict[str, int]] = {}
    open_lines = PurchaseOrderLine.objects.filter(product_id__in=ids, is_open=True).values_list(
        "product_id",
        "purchase_order__expected_arrival_date",
        "purchase_order__supplier__lead_time_min_days",
        "purchase_order__supplier__lead_time_max_days",
    )
    for product_id, arrival, lead_min, lead_max in open_lines:
        if arrival is not None:
            days = max((arrival - today).days, 0)
            candidate = {"min": days, "max": days}
        else:
            candidate = {"min": lead_min, "max": lead_max}
        best = result.get(product_id)
        if best is None or (candidate["min"], candidate["max"]) < (best["min"], best["max"]):
            result[product_id] = candidate
    missing = ids - result.keys()
    if missing:
        links = ProductSupplier.objects.filter(
            product_id__in=missing, is_preferred=True, supplier__is_active=True
        ).values_list("product_id", "supplier__lead_time_min_days", "supplier__lead_time_max_days")
        for product_id, lead_min, lead_max in links:
            result[product_id] = {"min": lead_min, "max": lead_max}
    return result


def purchase_orders_due(*, within_days: int = 7, today: date | None = None, limit: int = 20):
    """Open purchase orders expected within `within_days` (overdue ones first).

    For the staff start page: what should arrive soon, and what is late.
    """
    from datetime import timedelta

    from .models import OPEN_STATUSES, PurchaseOrder

    today = today or timezone.localdate()
    return (
        PurchaseOrder.objects.filter(
            status__in=OPEN_STATUSES,
            expected_arrival_date__isnull=False,
            expected_arrival_date__lte=today + timedelta(days=within_days),
        )
        .select_related("supplier", "warehouse")
        .order_by("expected_arrival_date", "number")[:limit]
    )


def incoming_for_products(
    product_ids: Iterable[uuid.UUID | str],
) -> dict[tuple[uuid.UUID, uuid.UUID], tuple[int, date | None]]:
    """Stock on its way (issue #15, `incoming`): per (product, warehouse), the units
    still outstanding on open purchase-order lines and the earliest expected
    arrival date among them (None when no open order has a date yet). One query."""
    from django.db.models import F, Min, Sum

    ids = {uuid.UUID(str(pid)) for pid in product_ids}
    if not ids:
        return {}
    rows = (
        PurchaseOrderLine.objects.filter(product_id__in=ids, is_open=True)
        .values("product_id", "warehouse_id")
        .annotate(
            units=Sum(F("quantity_ordered") - F("quantity_received")),
            earliest=Min("purchase_order__expected_arrival_date"),
        )
    )
    return {
        (r["product_id"], r["warehouse_id"]): (max(int(r["units"] or 0), 0), r["earliest"])
        for r in rows
    }
