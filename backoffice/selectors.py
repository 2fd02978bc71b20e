"""Reads for the back-office pages: the start page, previews and chart data.

Every query here is bounded (LIMIT, an indexed time window, or a capped count)
so the pages stay fast with millions of ledger and inventory rows.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Abs, Greatest, Upper
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
    """Inventory rows whose good units (on hand - damaged - quality control) are below
    their reorder threshold: the reorder rule's own test (purchasing.services), so the
    partial index inventory_below_threshold answers it. (Until issue #15 the panel
    compared `available`, which no index holds: a full scan, 4.5 s at 10 M rows.)"""
    return Inventory.objects.filter(
        reorder_threshold__gt=0,
        on_hand__lt=F("reorder_threshold") + F("damaged") + F("quality_control"),
    )


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


def deliveries_due(codes: frozenset[str] | None, *, today: datetime.date, limit: int = 20):
    """Sent purchase orders expected today or earlier (overdue first) into `codes`
    (None: every warehouse): what the dock should receive today."""
    from purchasing.models import PurchaseOrder, PurchaseOrderStatus

    orders = PurchaseOrder.objects.filter(
        status__in=[PurchaseOrderStatus.ORDERED, PurchaseOrderStatus.PARTIALLY_RECEIVED],
        expected_arrival_date__lte=today,
    )
    if codes is not None:
        orders = orders.filter(warehouse__code__in=codes)
    return list(
        orders.select_related("supplier", "warehouse").order_by("expected_arrival_date", "number")[
            :limit
        ]
    )


def counts_due(
    codes: frozenset[str] | None, *, now: datetime.datetime, limit: int = START_PAGE_ROWS
) -> tuple[list[Inventory], int, bool]:
    """Stock rows due a cycle count in `codes` (None: every active warehouse), oldest
    count first (never counted first): (rows, count, capped).

    A row is due `Warehouse.count_every_days` after its `last_counted_at` (set by the
    cycle count). Per warehouse, one index scan of inventory_count_due (warehouse,
    last_counted_at NULLS FIRST) that stops after `limit` rows, and a capped count.
    """
    from warehouses.models import Warehouse

    sites = Warehouse.objects.filter(is_active=True).order_by("code")
    if codes is not None:
        sites = sites.filter(code__in=codes)
    rows, total, capped = [], 0, False
    for site in sites:
        cut = now - datetime.timedelta(days=site.count_every_days)
        due = Inventory.objects.filter(warehouse=site).filter(
            Q(last_counted_at__isnull=True) | Q(last_counted_at__lt=cut)
        )
        rows += list(
            due.select_related("product", "warehouse").order_by(
                F("last_counted_at").asc(nulls_first=True), "product_id"
            )[:limit]
        )
        count, over = capped_count(due)
        total, capped = total + count, capped or over
    epoch = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    rows.sort(key=lambda row: (row.last_counted_at or epoch, row.warehouse.code))
    return rows[:limit], min(total, ATTENTION_COUNT_CAP), capped or total > ATTENTION_COUNT_CAP


RETURNS_WAITING_DAYS = 14


def quality_control_waiting(
    codes: frozenset[str] | None, *, limit: int = START_PAGE_ROWS
) -> tuple[list[Inventory], int, bool]:
    """Stock rows holding units in quality control (waiting for a decision: release to
    sellable, damaged, or write off) in `codes` (None: every warehouse), most units
    first: (rows, count, capped). Through the partial index inventory_qc_waiting
    (backoffice migration 0004)."""
    waiting = Inventory.objects.filter(quality_control__gt=0)
    if codes is not None:
        from warehouses.models import Warehouse

        ids = list(Warehouse.objects.filter(code__in=codes).values_list("pk", flat=True))
        waiting = waiting.filter(warehouse_id__in=ids)
    count, capped = capped_count(waiting)
    rows = list(
        waiting.select_related("product", "warehouse").order_by("-quality_control", "pk")[:limit]
    )
    return rows, count, capped


def returns_waiting(
    codes: frozenset[str] | None, *, now: datetime.datetime, limit: int = START_PAGE_ROWS
) -> list[dict]:
    """Return lines of the last RETURNS_WAITING_DAYS days booked into quality control or
    damaged at `codes`, whose stock row still holds units in that state: returned
    goods nobody has decided on yet. Newest first."""
    from inventory.models import ReturnDisposition, ReturnLine

    since = now - datetime.timedelta(days=RETURNS_WAITING_DAYS)
    lines = ReturnLine.objects.filter(
        return_record__created_at__gte=since,
        disposition__in=[ReturnDisposition.QUALITY_CONTROL, ReturnDisposition.DAMAGED],
    )
    if codes is not None:
        lines = lines.filter(warehouse__code__in=codes)
    lines = list(
        lines.select_related("return_record", "product", "warehouse").order_by(
            "-return_record__created_at", "-id"
        )[: limit * 5]
    )
    rows = {
        (row.product_id, row.warehouse_id): row
        for row in Inventory.objects.filter(
            product_id__in={x.product_id for x in lines},
            warehouse_id__in={x.warehouse_id for x in lines},
        )
    }
    waiting = []
    for line in lines:
        row = rows.get((line.product_id, line.warehouse_id))
        held = 0
        if row is not None:
            held = row.quality_control if line.disposition == "quality_control" else row.damaged
        if held > 0:
            waiting.append({"line": line, "row": row, "held": held})
    return waiting[:limit]


def start_page(*, user=None, now: datetime.datetime | None = None) -> dict:
    """Everything the staff start page shows, for `user`'s roles and warehouses.

    * below reorder threshold: for who sets reorder levels (`inventory.change_inventory`:
      Purchasing, managers), with the purchase orders due within a week
      (`purchasing.change_purchaseorder`);
    * deliveries due today and overdue at the user's warehouses (who may view
      purchase orders and receive stock: warehouse staff, managers);
    * counts due (who may count), large adjustments (who may see the ledger), at the
      user's warehouses;
    * quality control waiting for a decision (who may move stock between states) and
      returns waiting (returned units still in quality control or damaged; who may
      book returns), at the user's warehouses (issue #15).
    """
    from .access import warehouse_codes_for
    from .models import BOOK_RETURN, CYCLE_COUNT, MOVE_STOCK_STATE, RECEIVE_STOCK

    now = now or timezone.now()
    today = now.date()
    codes = warehouse_codes_for(user) if user is not None else None

    def may(perm: str) -> bool:
        return user is None or user.has_perm(perm)

    context: dict = {"today": today, "my_warehouses": sorted(codes) if codes else None}
    if may("inventory.change_inventory"):
        below = below_threshold_rows()
        below_count, below_capped = capped_count(below)
        context.update(
            show_below_threshold=True,
            below_threshold=list(
                below.select_related("product", "warehouse").order_by("available")[:START_PAGE_ROWS]
            ),
            below_threshold_count=below_count,
            below_threshold_capped=below_capped,
        )
    if may("purchasing.change_purchaseorder"):
        context["purchase_orders_due"] = list(
            purchase_orders_due(within_days=PURCHASE_ORDERS_DUE_DAYS, today=today)
        )
        context["purchase_orders_due_days"] = PURCHASE_ORDERS_DUE_DAYS
    if may("purchasing.view_purchaseorder") and may(RECEIVE_STOCK):
        context["show_deliveries_due"] = True
        context["deliveries_due"] = deliveries_due(codes, today=today)
    if may(CYCLE_COUNT):
        rows, count, capped = counts_due(codes, now=now)
        context.update(
            show_counts_due=True, counts_due=rows, counts_due_count=count, counts_due_capped=capped
        )
    if may(MOVE_STOCK_STATE):
        rows, count, capped = quality_control_waiting(codes)
        context.update(show_qc_waiting=True, qc_waiting=rows, qc_waiting_count=count)
        context["qc_waiting_capped"] = capped
    if may(BOOK_RETURN):
        context.update(
            show_returns_waiting=True,
            returns_waiting=returns_waiting(codes, now=now),
            returns_waiting_days=RETURNS_WAITING_DAYS,
        )
    adjustments = large_adjustments(now=now)
    if codes is not None:
        adjustments = adjustments.filter(warehouse__code__in=codes)
    movements = movements_today(now=now)
    return {
        **context,
        "large_adjustments": list(adjustments[:START_PAGE_ROWS]),
        "large_adjustment_units": LARGE_ADJUSTMENT_UNITS,
        "large_adjustment_days": LARGE_ADJUSTMENT_DAYS,
        "movements_today": movements,
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
    damaged: int = 0
    quality_control: int = 0


def _state_steps(movements: list[dict], row: Inventory | None) -> list[tuple[int, int]]:
    """(damaged, quality control) after each movement, walked back from the row's
    current states with the ledger's per-state deltas (issue #15; the ledger keeps
    no per-state balance columns). `movements` are the newest rows, oldest first,
    so every movement after any listed one is listed too. First item: before the
    first movement."""
    damaged = row.damaged if row else 0
    quality = row.quality_control if row else 0
    after = []
    for m in reversed(movements):
        after.append((damaged, quality))
        damaged -= m["damaged_delta"]
        quality -= m["quality_control_delta"]
    after.append((damaged, quality))
    after.reverse()
    return after


def product_stock_history(
    product: Product, *, now: datetime.datetime | None = None, days: int = CHART_DAYS
) -> list[WarehouseHistory]:
    """Per warehouse, a chart of on hand / reserved / available, damaged and quality
    control over the last `days`.

    Drawn from the ledger's `on_hand_after` / `reserved_after` columns: the newest
    CHART_MAX_ROWS rows of the window (index ledger_product_time), plus today's
    balances for warehouses without movements in the window (flat lines). Damaged
    and quality control are walked back from the row's current states with the
    per-state deltas; available = on hand - reserved - damaged - quality control
    (safety stock, a setting without history, is left out).
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
            "damaged_delta",
            "quality_control_delta",
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
    return [
        _warehouse_history(warehouse, by_warehouse.get(warehouse.pk, []), stock, start, now)
        for warehouse in sorted(warehouses.values(), key=lambda w: w.code)
    ]


def _warehouse_history(warehouse, movements, stock, start, now) -> WarehouseHistory:
    states = _state_steps(movements, stock.get(warehouse.pk))
    if movements:
        first = movements[0]
        initial = (
            first["on_hand_after"] - first["on_hand_delta"],
            first["reserved_after"] - first["reserved_delta"],
        )
        steps = [(start, *initial, *states[0])] + [
            (m["created_at"], m["on_hand_after"], m["reserved_after"], *s)
            for m, s in zip(movements, states[1:], strict=True)
        ]
    else:
        inv = stock[warehouse.pk]
        steps = [(start, inv.on_hand, inv.reserved, inv.damaged, inv.quality_control)]
    series = [
        StepSeries("on hand", [(t, oh) for t, oh, *_ in steps]),
        StepSeries("reserved", [(t, r) for t, _, r, *_ in steps]),
        StepSeries("available", [(t, oh - r - d - q) for t, oh, r, d, q in steps]),
    ]
    if any(d or q for *_, d, q in steps):
        series += [
            StepSeries("damaged", [(t, d) for t, _, _, d, _ in steps]),
            StepSeries("quality control", [(t, q) for t, *_, q in steps]),
        ]
    return WarehouseHistory(
        warehouse_code=warehouse.code,
        warehouse_name=warehouse.name,
        chart=step_chart(
            series, start=start, end=now, title=f"{warehouse.code} — {warehouse.name}"
        ),
        movements=len(movements),
        on_hand=steps[-1][1],
        reserved=steps[-1][2],
        damaged=steps[-1][3],
        quality_control=steps[-1][4],
    )


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


def products_by_code(codes: Iterable[str]) -> dict[str, Product]:
    """What staff typed or scanned -> the product it names, for every code that names one.

    A code names a product by its exact SKU, else by its barcode, else by its SKU
    ignoring case (as the lists search: `a-1` finds `A-1`). Unknown codes, and a
    code that matches two SKUs differing only in case and neither exactly, are
    absent. One query, through the unique SKU and barcode indexes and
    product_sku_upper_prefix (migration 0013).
    """
    codes = {code.strip() for code in codes if code and code.strip()}
    if not codes:
        return {}
    upper = {code.upper() for code in codes}
    found = list(
        Product.objects.annotate(sku_upper=Upper("sku")).filter(
            Q(sku__in=codes) | Q(barcode__in=codes) | Q(sku_upper__in=upper)
        )[: 4 * len(codes) + 10]
    )
    by_sku = {p.sku: p for p in found}
    by_barcode = {p.barcode: p for p in found if p.barcode}
    by_upper: dict[str, list[Product]] = defaultdict(list)
    for p in found:
        by_upper[p.sku.upper()].append(p)
    resolved = {}
    for code in codes:
        if code in by_sku:
            resolved[code] = by_sku[code]
        elif code in by_barcode:
            resolved[code] = by_barcode[code]
        elif len(by_upper.get(code.upper(), [])) == 1:
            resolved[code] = by_upper[code.upper()][0]
    return resolved


def product_search_condition(term: str, path: str = "") -> Q:
    """Products a search box term finds: SKU prefix (any case), exact barcode, or part
    of the name (any case). `path` prefixes the lookups (e.g. "product__").

    Django writes these as `UPPER(sku::text) LIKE UPPER('term%')` and
    `UPPER(name::text) LIKE UPPER('%term%')`: the indexes product_sku_upper_prefix
    and product_name_trgm of migration inventory 0013.
    """
    return (
        Q(**{f"{path}sku__istartswith": term})
        | Q(**{f"{path}barcode": term})
        | Q(**{f"{path}name__icontains": term})
    )


def purchase_order_line(purchase_order_id, product: Product):
    """The line of `product` on a purchase order (by primary key), or None."""
    from purchasing.models import PurchaseOrderLine

    try:
        return PurchaseOrderLine.objects.filter(
            purchase_order_id=int(purchase_order_id), product=product
        ).first()
    except (TypeError, ValueError):
        return None
