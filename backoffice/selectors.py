"""Reads for the back-office pages: the start page, previews and chart data.

Every query here is bounded (LIMIT, an indexed time window, or a capped count)
so the pages stay fast with millions of ledger and inventory rows.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Abs, Greatest
from django.utils import timezone

from inventory.models import Inventory, InventoryTransaction, Product, TransactionType
from purchasing.selectors import purchase_orders_due

from .charts import Bar, StepSeries, bar_chart, step_chart

START_PAGE_ROWS = 10
# Count rows needing attention up to this many; beyond it the page says "1000+".
ATTENTION_COUNT_CAP = 1000
# An ADJUST that changed on hand by at least this many units is "large".
LARGE_ADJUSTMENT_UNITS = settings.BACKOFFICE_LARGE_ADJUSTMENT_UNITS
LARGE_ADJUSTMENT_DAYS = 7
PURCHASE_ORDERS_DUE_DAYS = 7
CHART_DAYS = 90
CHART_MAX_ROWS = 2000


def below_threshold_rows():
    """Inventory rows whose available stock is below their reorder threshold."""
    return Inventory.objects.filter(reorder_threshold__gt=0, available__lt=F("reorder_threshold"))


def out_of_stock_rows():
    return Inventory.objects.filter(available__lte=0)


def capped_count(queryset, cap: int = ATTENTION_COUNT_CAP) -> tuple[int, bool]:
    """(count, capped): counts at most `cap` rows instead of the whole table."""
    count = queryset.order_by()[: cap + 1].count()
    return min(count, cap), count > cap


def large_adjustments(*, now: datetime.datetime | None = None):
    since = (now or timezone.now()) - datetime.timedelta(days=LARGE_ADJUSTMENT_DAYS)
    return (
        InventoryTransaction.objects.filter(type=TransactionType.ADJUST, created_at__gte=since)
        .filter(
            Q(on_hand_delta__gte=LARGE_ADJUSTMENT_UNITS)
            | Q(on_hand_delta__lte=-LARGE_ADJUSTMENT_UNITS)
        )
        .select_related("product", "warehouse")
        .order_by("-created_at", "-id")
    )


def movements_today(*, now: datetime.datetime | None = None) -> list[dict]:
    """Per ledger type: rows written today (UTC) and units moved (on hand or reserved)."""
    now = now or timezone.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    totals = {
        row["type"]: row
        for row in InventoryTransaction.objects.filter(created_at__gte=midnight)
        .order_by()
        .values("type")
        .annotate(
            rows=Count("id"),
            units=Sum(Greatest(Abs("on_hand_delta"), Abs("reserved_delta"))),
        )
    }
    return [
        {
            "type": value,
            "rows": totals.get(value, {}).get("rows", 0),
            "units": totals.get(value, {}).get("units") or 0,
        }
        for value in TransactionType.values
    ]


def start_page(*, now: datetime.datetime | None = None) -> dict:
    """Everything the staff start page shows."""
    today = (now or timezone.now()).date()
    below = below_threshold_rows()
    below_count, below_capped = capped_count(below)
    movements = movements_today(now=now)
    return {
        "below_threshold": list(
            below.select_related("product", "warehouse").order_by("available")[:START_PAGE_ROWS]
        ),
        "below_threshold_count": below_count,
        "below_threshold_capped": below_capped,
        "large_adjustments": list(large_adjustments(now=now)[:START_PAGE_ROWS]),
        "large_adjustment_units": LARGE_ADJUSTMENT_UNITS,
        "large_adjustment_days": LARGE_ADJUSTMENT_DAYS,
        "movements_today": movements,
        "purchase_orders_due": list(
            purchase_orders_due(within_days=PURCHASE_ORDERS_DUE_DAYS, today=today)
        ),
        "today": today,
        "purchase_orders_due_days": PURCHASE_ORDERS_DUE_DAYS,
        "movements_chart": bar_chart(
            [Bar(m["type"], m["units"], f"units · {m['rows']} rows") for m in movements],
            title="Units moved today, by ledger type",
        ),
    }


# --- Product stock history ---------------------------------------------------


@dataclass
class WarehouseHistory:
    warehouse_code: str
    warehouse_name: str
    chart: str
    movements: int
    on_hand: int
    reserved: int


def product_stock_history(
    product: Product, *, now: datetime.datetime | None = None, days: int = CHART_DAYS
) -> list[WarehouseHistory]:
    """Per warehouse, a chart of on hand / reserved / available over the last `days`.

    Drawn from the ledger's `on_hand_after` / `reserved_after` columns: the newest
    CHART_MAX_ROWS rows of the window (index ledger_product_time), plus today's
    balances for warehouses without movements in the window (flat lines).
    """
    now = now or timezone.now()
    start = now - datetime.timedelta(days=days)
    rows = list(
        InventoryTransaction.objects.filter(product=product, created_at__gte=start)
        .order_by("-created_at", "-id")
        .values(
            "warehouse_id",
            "created_at",
            "on_hand_delta",
            "reserved_delta",
            "on_hand_after",
            "reserved_after",
        )[:CHART_MAX_ROWS]
    )
    rows.reverse()
    by_warehouse: dict = defaultdict(list)
    for row in rows:
        by_warehouse[row["warehouse_id"]].append(row)
    stock = {
        inv.warehouse_id: inv
        for inv in Inventory.objects.filter(product=product).select_related("warehouse")
    }
    from warehouses.models import Warehouse

    warehouses = {w.pk: w for w in Warehouse.objects.filter(pk__in={*by_warehouse, *stock})}
    # Zoom the time axis to the movements (all charts share it): a product that
    # only moved today should not be a flat line with a cliff at the right edge.
    if rows:
        first = rows[0]["created_at"]
        span = max(now - first, datetime.timedelta(hours=1))
        start = max(start, first - span / 10)
    histories = []
    for warehouse in sorted(warehouses.values(), key=lambda w: w.code):
        movements = by_warehouse.get(warehouse.pk, [])
        chart_start = start
        if movements:
            first = movements[0]
            initial = (
                first["on_hand_after"] - first["on_hand_delta"],
                first["reserved_after"] - first["reserved_delta"],
            )
            steps = [(chart_start, *initial)] + [
                (m["created_at"], m["on_hand_after"], m["reserved_after"]) for m in movements
            ]
        else:
            inv = stock[warehouse.pk]
            steps = [(start, inv.on_hand, inv.reserved)]
        series = [
            StepSeries("on hand", [(t, oh) for t, oh, _ in steps]),
            StepSeries("reserved", [(t, r) for t, _, r in steps]),
            StepSeries("available", [(t, oh - r) for t, oh, r in steps]),
        ]
        histories.append(
            WarehouseHistory(
                warehouse_code=warehouse.code,
                warehouse_name=warehouse.name,
                chart=step_chart(
                    series,
                    start=chart_start,
                    end=now,
                    title=f"{warehouse.code} — {warehouse.name}",
                ),
                movements=len(movements),
                on_hand=steps[-1][1],
                reserved=steps[-1][2],
            )
        )
    return histories


# --- Previews ------------------------------------------------------------------


def balances_for(warehouse_code: str, skus: list[str]) -> dict[str, Inventory]:
    """Current inventory rows of `skus` in one warehouse, keyed by SKU (missing: absent)."""
    return {
        row.product.sku: row
        for row in Inventory.objects.filter(
            warehouse__code=warehouse_code, product__sku__in=skus
        ).select_related("product")
    }


def products_by_sku(skus: list[str]) -> dict[str, Product]:
    return {p.sku: p for p in Product.objects.filter(sku__in=skus)}
