"""Reads of stock and catalogue data: the API and other edges read through here.

`availability_for_skus` is the single function the availability cache will sit
in front of (one SQL query for any batch of SKUs). Lists return querysets for
cursor pagination, filtered by the FilterSets below.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import django_filters
from django.conf import settings
from django.db import connection
from django.db.models import F, Min, Prefetch, QuerySet, Sum
from django.utils import timezone

from warehouses.models import Warehouse

from . import clock, errors
from .models import (
    BundleComponent,
    Inventory,
    InventoryTransaction,
    Product,
    ReferenceType,
    StockPolicy,
    TransactionType,
    policy_allowance,
)


class AvailabilityStatus:
    IN_STOCK = "in_stock"
    LOW_STOCK = "low_stock"
    OUT_OF_STOCK = "out_of_stock"
    BACKORDER = "backorder"
    PREORDER = "preorder"
    ALL = (IN_STOCK, LOW_STOCK, OUT_OF_STOCK, BACKORDER, PREORDER)


@dataclass(frozen=True)
class WarehouseAvailability:
    code: str
    available: int  # units that can be sold from stock now (never below 0)


@dataclass(frozen=True)
class SkuAvailability:
    sku: str
    product_id: uuid.UUID
    available: int
    status: str
    warehouses: tuple[WarehouseAvailability, ...]
    ships_in_days: Mapping[str, int] | None = None


# One row per (product, inventory row); products without rows come back once with
# NULL inventory columns. `lapsed` is what active holds past their expires_at
# still reserve on the row: it does not count against availability (the sweeper
# releases it; until it has, a reservation that needs it expires it first).
# `lapsed` starts from the (few) reservations already past their expiry, found
# through the partial index on active reservations' expires_at, so its cost does
# not grow with the number of live holds on a hot SKU.
_ROWS_SQL = """
WITH lapsed AS (
    SELECT rl.inventory_id,
           SUM(rl.quantity - rl.quantity_fulfilled - rl.quantity_released) AS quantity
    FROM inventory_reservation r
    JOIN inventory_reservationline rl ON rl.reservation_id = r.id
    WHERE r.status = 'active' AND r.expires_at IS NOT NULL AND r.expires_at <= %s
      AND rl.status = 'active'
    GROUP BY rl.inventory_id
)
SELECT p.id, p.sku, p.stock_policy, p.backorder_limit,
       w.code, w.is_active, i.on_hand, i.reserved, i.reorder_threshold,
       COALESCE(l.quantity, 0) AS lapsed,
       COALESCE(i.safety_stock + i.damaged + i.quality_control, 0) AS unsellable,
       (SELECT COUNT(*) FROM warehouses_warehouse aw WHERE aw.is_active) AS active_warehouses
FROM inventory_product p
LEFT JOIN inventory_inventory i ON i.product_id = p.id
LEFT JOIN warehouses_warehouse w ON w.id = i.warehouse_id
LEFT JOIN lapsed l ON l.inventory_id = i.id
WHERE p.sku IN ({placeholders})
ORDER BY p.sku, w.code
"""


@dataclass
class _Row:
    product_id: uuid.UUID
    sku: str
    stock_policy: str
    backorder_limit: int
    code: str | None
    is_active: bool
    on_hand: int
    reserved: int
    reorder_threshold: int
    lapsed: int
    active_warehouses: int
    unsellable: int = 0  # safety stock + damaged + quality control

    @property
    def allowance(self) -> int:
        return policy_allowance(self.stock_policy, self.backorder_limit)

    @property
    def free(self) -> int:
        """Sellable: on hand minus what live (not lapsed) holds reserve, minus the
        unsellable states (safety stock, damaged, quality control); negative when
        backordered."""
        return self.on_hand - self.reserved - self.unsellable + self.lapsed


def _stock_rows(skus: Collection[str], now: datetime) -> dict[str, list[_Row]]:
    skus = sorted(set(skus))
    if not skus:
        return {}
    sql = _ROWS_SQL.format(placeholders=", ".join(["%s"] * len(skus)))
    by_sku: dict[str, list[_Row]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, *skus])
        for (
            pid,
            sku,
            policy,
            limit,
            code,
            active,
            on_hand,
            reserved,
            thr,
            lapsed,
            unsell,
            n,
        ) in cursor:
            by_sku.setdefault(sku, []).append(
                _Row(
                    product_id=uuid.UUID(str(pid)),
                    sku=sku,
                    stock_policy=policy,
                    backorder_limit=limit,
                    code=code,
                    is_active=bool(active),
                    on_hand=on_hand or 0,
                    reserved=reserved or 0,
                    reorder_threshold=thr or 0,
                    lapsed=int(lapsed or 0),
                    active_warehouses=n,
                    unsellable=int(unsell or 0),
                )
            )
    return by_sku


def low_stock_level(reorder_thresholds: Iterable[int]) -> int:
    """Units at or below which a SKU in stock is `low_stock`.

    The sum of its reorder thresholds in active warehouses (the level purchasing
    reorders at), or STOCKROOM_LOW_STOCK_UNITS when no threshold is set.
    """
    return sum(reorder_thresholds) or settings.STOCKROOM_LOW_STOCK_UNITS


def sku_availability(
    *,
    sku: str,
    product_id: uuid.UUID,
    stock_policy: str,
    allowance: int,
    free: Mapping[str, int],
    thresholds: Iterable[int],
    active_warehouses: int,
    ships_in_days: Mapping[str, int] | None = None,
) -> SkuAvailability:
    """The availability status rule, the one place it is written.

    `free`: per active warehouse with a stock row, in the order to report them,
    on hand minus what live holds reserve (negative when backordered);
    `thresholds`: their reorder thresholds; `active_warehouses`: how many
    warehouses are active (one without a row yet can take the whole allowance).
    In stock (low stock at or below `low_stock_level`) while units are
    available; else backorder or pre-order while some active warehouse can still
    go below zero; else out of stock. `ships_in_days` is reported unless in stock.
    """
    warehouses = tuple(WarehouseAvailability(code, max(units, 0)) for code, units in free.items())
    available = sum(w.available for w in warehouses)
    if available > 0:
        level = low_stock_level(thresholds)
        status = AvailabilityStatus.LOW_STOCK if available <= level else AvailabilityStatus.IN_STOCK
    else:
        # Backorder / pre-order: some active warehouse can still go below zero
        # (an active warehouse without a row yet can take the whole allowance).
        can_backorder = allowance > 0 and (
            any(units + allowance > 0 for units in free.values()) or len(free) < active_warehouses
        )
        if can_backorder and stock_policy == StockPolicy.PREORDER:
            status = AvailabilityStatus.PREORDER
        elif can_backorder:
            status = AvailabilityStatus.BACKORDER
        else:
            status = AvailabilityStatus.OUT_OF_STOCK
    return SkuAvailability(
        sku=sku,
        product_id=product_id,
        available=available,
        status=status,
        warehouses=warehouses,
        ships_in_days=ships_in_days if status != AvailabilityStatus.IN_STOCK else None,
    )


@dataclass(frozen=True)
class ComponentStock:
    """One component of a bundle as the bundle rule needs it (from either path)."""

    sku: str
    quantity: int  # units per bundle unit (>= 1)
    stock_policy: str
    allowance: int
    # Per active warehouse with a stock row: sellable now (negative when backordered).
    free: Mapping[str, int]
    thresholds: Mapping[str, int]
    ships_in_days: Mapping[str, int] | None = None


def bundle_availability(
    *,
    sku: str,
    product_id: uuid.UUID,
    components: Collection[ComponentStock],
    active_codes: Collection[str],
) -> SkuAvailability:
    """A bundle's availability, derived from its components (the one place the
    bundle rule is written; docs/ARCHITECTURE.md, "Bundles").

    Per active warehouse: available = min over components of ⌊component sellable
    / quantity per bundle⌋ (never below 0); total = the sum over warehouses.
    Warehouses are listed where every component has a stock row. Low stock: at or
    below `low_stock_level` of the bundle's thresholds, a warehouse's threshold
    being min ⌊component threshold / quantity⌋. When none is available, the bundle
    is backorder (or pre-order) only if some active warehouse can still take a
    whole bundle unit with each component within its own backorder allowance
    (a normal component caps the bundle at its stock: the bundle is backorderable
    only as far as all its components are); pre-order if a component that is
    short of one bundle's worth everywhere is a pre-order SKU. `ships_in_days`
    (unless in stock): the latest window of the components that have one (the
    bundle ships when its last component does). A bundle without components
    (none can exist: see the guards) would be out of stock.
    """
    codes = sorted(active_codes)
    listed = [c for c in codes if components and all(c in part.free for part in components)]

    def units(code: str, with_allowance: bool) -> int:
        return min(
            (part.free.get(code, 0) + (part.allowance if with_allowance else 0)) // part.quantity
            for part in components
        )

    free = {code: units(code, False) for code in listed}
    warehouses = tuple(WarehouseAvailability(code, max(n, 0)) for code, n in free.items())
    available = sum(w.available for w in warehouses)
    if available > 0:
        thresholds = [
            min(part.thresholds.get(code, 0) // part.quantity for part in components)
            for code in listed
        ]
        level = low_stock_level(thresholds)
        status = AvailabilityStatus.LOW_STOCK if available <= level else AvailabilityStatus.IN_STOCK
    elif components and any(units(code, True) > 0 for code in codes):
        short = [
            part
            for part in components
            if all(part.free.get(code, 0) < part.quantity for code in codes)
        ]
        preorder = any(part.stock_policy == StockPolicy.PREORDER for part in short)
        status = AvailabilityStatus.PREORDER if preorder else AvailabilityStatus.BACKORDER
    else:
        status = AvailabilityStatus.OUT_OF_STOCK
    ships = None
    if status != AvailabilityStatus.IN_STOCK:
        windows = [part.ships_in_days for part in components if part.ships_in_days]
        if windows:
            ships = {
                "min": max(w["min"] for w in windows),
                "max": max(w["max"] for w in windows),
            }
    return SkuAvailability(
        sku=sku,
        product_id=product_id,
        available=available,
        status=status,
        warehouses=warehouses,
        ships_in_days=ships,
    )


def _availability(rows: list[_Row]) -> SkuAvailability:
    first = rows[0]
    active = [row for row in rows if row.code is not None and row.is_active]
    return sku_availability(
        sku=first.sku,
        product_id=first.product_id,
        stock_policy=first.stock_policy,
        allowance=first.allowance,
        free={row.code: row.free for row in active},
        thresholds=[row.reorder_threshold for row in active],
        active_warehouses=first.active_warehouses,
    )


def availability_for_skus(
    skus: Collection[str], *, now: datetime | None = None
) -> dict[str, SkuAvailability | None]:
    """Availability of each SKU (None for an unknown SKU).

    With STOCKROOM_AVAILABILITY_CACHE on (the default), served by the read model
    in `inventory.availability_cache`: one Redis round trip, and the misses read
    from the database in one query and written back. Otherwise (or to compare)
    `availability_from_database`. Both count stock in active warehouses.
    """
    if not settings.STOCKROOM_AVAILABILITY_CACHE:
        return availability_from_database(skus, now=now)
    from . import availability_cache

    active = active_warehouse_codes()
    low = settings.STOCKROOM_LOW_STOCK_UNITS
    result: dict[str, SkuAvailability | None] = {sku: None for sku in skus}
    held: dict[str, tuple] = {}
    for sku in result:
        memo = _DERIVED.get(sku)
        if memo is not None and memo[2] == low and (memo[1] is active or memo[1] == active):
            held[sku] = memo
    # One round trip; "unchanged" (content None) for the SKUs whose held token
    # is still current.
    read = availability_cache.Read(list(result), {sku: memo[0] for sku, memo in held.items()})
    rest = read.skus
    if read.contents is not None:
        rest = []
        for sku, content in zip(read.skus, read.contents, strict=True):
            if content is None:
                result[sku] = held[sku][3]
            else:
                rest.append(sku)
    for sku, snap in read.snapshots(rest).items():
        found = _derive_from_snapshot(snap, active)
        token = read.token(sku, snap) if snap.content is not None else None
        if token is not None:
            if len(_DERIVED) >= _DERIVED_MAX and sku not in _DERIVED:
                _DERIVED.clear()
            _DERIVED[sku] = (token, active, low, found)
        result[sku] = found
    return result


# Per SKU, the answer last derived on the cached path: (the token of the string
# it was derived from — its entries' stamps, READ_SCRIPT, `Read.token`; a
# bundle's string includes its components' entries —, the active warehouses,
# the low-stock setting, the answer). Only strings whose answer is a pure function of them
# are memoised (`StockSnapshot.content`: no expiring holds in any entry of the
# string, every component entry readable). The next read sends the token, and
# the read script answers "unchanged" only if every entry of the string still
# has the stamp it had (a stamp names one content of one entry and is never
# handed out twice: a write, an invalidation or an expiry and refill gives a
# new one), so a memoised answer is used only when this request's atomic read
# saw exactly the entries it was derived from (issue #16, item 5). A changed
# entry, component, active set or setting is derived afresh. Bounded (cleared
# at `_DERIVED_MAX` SKUs).
_DERIVED: dict[str, tuple] = {}
_DERIVED_MAX = 50_000


def _derive_from_snapshot(snap, active: frozenset[str]) -> SkuAvailability:
    if snap.components is not None:
        return bundle_availability(
            sku=snap.sku,
            product_id=uuid.UUID(snap.product_id),
            components=[
                _component_from_snapshot(snap.parts.get(component), component, quantity, active)
                for component, quantity in snap.components
            ],
            active_codes=active,
        )
    codes = sorted(code for code in snap.warehouses if code in active)
    return sku_availability(
        sku=snap.sku,
        product_id=uuid.UUID(snap.product_id),
        stock_policy=snap.stock_policy,
        allowance=snap.allowance,
        free={code: snap.warehouses[code] for code in codes},
        thresholds=[snap.thresholds.get(code, 0) for code in codes],
        active_warehouses=len(active),
        ships_in_days=snap.ships_in_days,
    )


def _component_from_snapshot(part, sku: str, quantity: int, active) -> ComponentStock:
    if part is None:  # not readable (cannot happen after get_many): no stock
        return ComponentStock(sku, quantity, StockPolicy.NORMAL, 0, {}, {})
    return ComponentStock(
        sku=sku,
        quantity=quantity,
        stock_policy=part.stock_policy,
        allowance=part.allowance,
        free={code: units for code, units in part.warehouses.items() if code in active},
        thresholds=part.thresholds,
        ships_in_days=part.ships_in_days,
    )


_active_sites: tuple[float, tuple] = (0.0, ())


def active_warehouse_sites() -> tuple[WarehouseSite, ...]:
    """Active warehouses with their coordinates, cached in-process for
    ACTIVE_WAREHOUSES_SECONDS (a handful of rows; activating or closing a site
    shows within that time)."""
    global _active_sites
    now = time.monotonic()
    expires, sites = _active_sites
    if now >= expires:
        sites = tuple(
            WarehouseSite(
                code,
                float(lat) if lat is not None else None,
                float(lon) if lon is not None else None,
            )
            for code, lat, lon in Warehouse.objects.filter(is_active=True)
            .order_by("code")
            .values_list("code", "latitude", "longitude")
        )
        _active_sites = (now + ACTIVE_WAREHOUSES_SECONDS, sites)
    return sites


_active_codes: tuple[tuple, frozenset[str]] = ((), frozenset())


def active_warehouse_codes() -> frozenset[str]:
    """The active warehouses' codes: the same object while the sites are (a memo
    key part compared on every cached availability read)."""
    global _active_codes
    sites = active_warehouse_sites()
    if _active_codes[0] is not sites:
        _active_codes = (sites, frozenset(site.code for site in sites))
    return _active_codes[1]


def forget_active_warehouses() -> None:
    global _active_sites
    _active_sites = (0.0, ())


ACTIVE_WAREHOUSES_SECONDS = 5.0


def availability_from_database(
    skus: Collection[str], *, now: datetime | None = None
) -> dict[str, SkuAvailability | None]:
    """Availability of each SKU (None for an unknown SKU), in one query, uncached.

    `available` counts stock on hand not held by live reservations, in active
    warehouses; holds past their `expires_at` (by `inventory.clock`) do not
    count, here as on the cached path, whether or not the sweeper has run.
    """
    compositions = _compositions(skus)
    parts = {c for composition in compositions.values() for c, _ in composition}
    by_sku = _stock_rows({*skus, *parts}, now or clock.now())
    result: dict[str, SkuAvailability | None] = {sku: None for sku in skus}
    for sku, rows in by_sku.items():
        if sku in result and sku not in compositions:
            result[sku] = _availability(rows)
    if compositions:
        _bundles_from_rows(result, compositions, by_sku)
    depleted = {
        a.product_id: a
        for a in result.values()
        if a is not None
        and a.status not in (AvailabilityStatus.IN_STOCK,)
        and a.sku not in compositions
    }
    if depleted:
        ships = ships_in_days_for_products(list(depleted))
        for product_id, window in ships.items():
            a = depleted.get(product_id)
            if a is not None:
                result[a.sku] = SkuAvailability(**{**a.__dict__, "ships_in_days": window})
    return result


def _compositions(skus: Collection[str]) -> dict[str, list[tuple[str, int]]]:
    """{bundle sku: [(component sku, quantity)]} for the bundles among `skus`."""
    out: dict[str, list[tuple[str, int]]] = {}
    rows = (
        Product.objects.filter(sku__in=list(skus), is_bundle=True)
        .values_list("sku", "components__component__sku", "components__quantity")
        .order_by("sku", "components__component__sku")
    )
    for sku, component, quantity in rows:
        composition = out.setdefault(sku, [])
        if component is not None:
            composition.append((component, int(quantity)))
    return out


def _bundles_from_rows(
    result: dict[str, SkuAvailability | None],
    compositions: Mapping[str, list[tuple[str, int]]],
    by_sku: Mapping[str, list[_Row]],
) -> None:
    """The database path's bundles: the same rule on the components' rows."""
    components = {}
    for composition in compositions.values():
        for component, _ in composition:
            rows = by_sku.get(component)
            if rows and component not in components:
                components[component] = _availability(rows), rows
    short = [
        a.product_id for a, _ in components.values() if a.status != AvailabilityStatus.IN_STOCK
    ]
    ships = ships_in_days_for_products(short) if short else {}
    active = active_warehouse_codes()
    for sku, composition in compositions.items():
        parts = []
        for component, quantity in composition:
            found = components.get(component)
            if found is None:
                parts.append(ComponentStock(component, quantity, StockPolicy.NORMAL, 0, {}, {}))
                continue
            a, rows = found
            live = [r for r in rows if r.code is not None and r.is_active]
            parts.append(
                ComponentStock(
                    sku=component,
                    quantity=quantity,
                    stock_policy=rows[0].stock_policy,
                    allowance=rows[0].allowance,
                    free={r.code: r.free for r in live},
                    thresholds={r.code: r.reorder_threshold for r in live},
                    ships_in_days=ships.get(a.product_id),
                )
            )
        result[sku] = bundle_availability(
            sku=sku,
            product_id=by_sku[sku][0].product_id,
            components=parts,
            active_codes=active,
        )


def ships_in_days_for_products(product_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, dict]:
    """{product_id: {"min": days, "max": days}}: when depleted products can ship
    again, from open purchase orders or supplier lead times (purchasing.selectors),
    or from a transfer in transit with an expected date (any destination), if
    that is sooner."""
    from purchasing.selectors import ships_in_days_for_products as from_purchasing

    result = from_purchasing(product_ids)
    today = timezone.localdate()
    for (product_id, _warehouse), (_units, expected) in in_transit_for_products(
        product_ids
    ).items():
        if expected is None:
            continue
        days = max((expected - today).days, 0)
        best = result.get(product_id)
        if best is None or (days, days) < (best["min"], best["max"]):
            result[product_id] = {"min": days, "max": days}
    return result


def in_transit_for_products(
    product_ids: Iterable[uuid.UUID | str],
) -> dict[tuple[uuid.UUID, uuid.UUID], tuple[int, Any]]:
    """Units in transit (two-step transfers shipped, not yet received), per
    (product, destination warehouse): the units and the earliest expected date
    among them (None when none has a date). One query."""
    from .models import TransferLine, TransferStatus

    ids = {uuid.UUID(str(pid)) for pid in product_ids}
    if not ids:
        return {}
    rows = (
        TransferLine.objects.filter(product_id__in=ids, transfer__status=TransferStatus.SHIPPED)
        .values("product_id", "transfer__destination_id")
        .annotate(units=Sum("quantity_shipped"), earliest=Min("transfer__expected_date"))
    )
    return {
        (r["product_id"], r["transfer__destination_id"]): (int(r["units"] or 0), r["earliest"])
        for r in rows
    }


def transfer_with_ledger(transfer_id: str):
    """A two-step transfer, its lines (by SKU) and its ledger rows (oldest first):
    (Transfer, [TransferLine], [InventoryTransaction]). NotFound if unknown."""
    from .models import InventoryTransaction, ReferenceType, Transfer

    record = (
        Transfer.objects.select_related("source", "destination")
        .filter(transfer_id=transfer_id)
        .first()
    )
    if record is None:
        raise errors.NotFound(f"No transfer {transfer_id}.", details={"transfer_id": transfer_id})
    lines = list(record.lines.select_related("product").order_by("product__sku"))
    transactions = list(
        InventoryTransaction.objects.filter(
            reference_type=ReferenceType.TRANSFER, reference_id=transfer_id
        )
        .select_related("product", "warehouse")
        .order_by("created_at", "id")
    )
    return record, lines, transactions


def incoming_for_products(
    product_ids: Collection[uuid.UUID | str],
) -> dict[tuple[uuid.UUID, uuid.UUID], tuple[int, Any]]:
    """Stock on its way per (product, warehouse): units outstanding on open
    purchase-order lines plus units in transit on two-step transfers, and the
    earliest expected date among them (None when none has a date)."""
    from purchasing.selectors import incoming_for_products as from_purchasing

    result = dict(from_purchasing(product_ids))
    for key, (units, expected) in in_transit_for_products(product_ids).items():
        have, earliest = result.get(key, (0, None))
        dates = [d for d in (earliest, expected) if d is not None]
        result[key] = (have + units, min(dates) if dates else None)
    return result


@dataclass(frozen=True)
class WarehouseStockStates:
    """One stock row's states (issue #15) as operations and read clients see
    them: `available` is sellable (never below 0), the rest are the row's
    balances; `incoming`: units on open purchase-order lines still to arrive and
    units in transit on two-step transfers to this warehouse,
    `incoming_expected`: the earliest expected arrival among them."""

    code: str
    on_hand: int
    reserved: int
    safety_stock: int
    damaged: int
    quality_control: int
    available: int
    incoming: int
    incoming_expected: Any  # datetime.date | None


def stock_states_for_skus(skus: Collection[str]) -> dict[str, list[WarehouseStockStates]]:
    """Per SKU, each active warehouse's stock row with its states and incoming
    stock, from the database (two queries). Availability's breakdown for
    operations and read clients; storefronts get the cached sellable figure only.
    Incoming counts open purchase orders and transfers in transit."""
    rows = list(
        Inventory.objects.filter(product__sku__in=set(skus), warehouse__is_active=True)
        .order_by("product__sku", "warehouse__code")
        .values_list(
            "product_id",
            "warehouse_id",
            "product__sku",
            "warehouse__code",
            "on_hand",
            "reserved",
            "safety_stock",
            "damaged",
            "quality_control",
            "available",
        )
    )
    incoming = incoming_for_products({r[0] for r in rows})
    result: dict[str, list[WarehouseStockStates]] = {}
    for pid, wid, sku, code, on_hand, reserved, safety, damaged, qc, available in rows:
        units, expected = incoming.get((pid, wid), (0, None))
        result.setdefault(sku, []).append(
            WarehouseStockStates(
                code, on_hand, reserved, safety, damaged, qc, max(available, 0), units, expected
            )
        )
    return result


# --- Routing snapshot -----------------------------------------------------


@dataclass(frozen=True)
class WarehouseSite:
    code: str
    latitude: float | None
    longitude: float | None


@dataclass(frozen=True)
class SupplySnapshot:
    """What each active warehouse could reserve of each SKU right now (allowance included)."""

    warehouses: tuple[WarehouseSite, ...]
    reservable: Mapping[tuple[str, str], int]  # (sku, code) -> units
    known_skus: frozenset[str]

    def can_supply(self, sku: str, code: str) -> int:
        return self.reservable.get((sku, code), 0)


def supply_for_skus(skus: Collection[str], *, now: datetime | None = None) -> SupplySnapshot:
    """A point-in-time read of stock for routing (one query; no locks)."""
    sites = active_warehouse_sites()
    by_sku = _stock_rows(skus, now or clock.now())
    reservable: dict[tuple[str, str], int] = {}
    for sku, rows in by_sku.items():
        allowance = rows[0].allowance
        # A warehouse without a row can take a backorder/pre-order SKU up to its allowance.
        for site in sites:
            if allowance:
                reservable[(sku, site.code)] = allowance
        for row in rows:
            if row.code is not None and row.is_active:
                reservable[(sku, row.code)] = max(row.free + allowance, 0)
    return SupplySnapshot(sites, reservable, frozenset(by_sku))


def supply_from_read_model(skus: Collection[str]) -> SupplySnapshot:
    """The routing snapshot from the availability read model (no database work on
    cache hits). Routing plans from it first; if the plan meets a shortage the
    database snapshot (`supply_for_skus`) is used for the second attempt."""
    from . import availability_cache

    sites = active_warehouse_sites()
    snapshots = availability_cache.get_many(list(skus))
    reservable: dict[tuple[str, str], int] = {}
    for sku, snap in snapshots.items():
        for site in sites:
            available = snap.warehouses.get(site.code)
            if available is None:
                if snap.allowance:
                    reservable[(sku, site.code)] = snap.allowance
            else:
                reservable[(sku, site.code)] = max(available + snap.allowance, 0)
    return SupplySnapshot(sites, reservable, frozenset(snapshots))


# --- Lists ----------------------------------------------------------------


class _StrictFilterSet(django_filters.FilterSet):
    """A FilterSet whose invalid values raise InvalidInput (400) instead of being ignored."""

    def filtered(self) -> QuerySet:
        if not self.is_valid():
            raise errors.InvalidInput(
                "Invalid filter.", details={k: list(v) for k, v in self.errors.items()}
            )
        return self.qs


def _strict_boolean_filter(**kwargs) -> django_filters.TypedChoiceFilter:
    """Only `true` or `false` (BooleanFilter silently ignores anything else)."""
    return django_filters.TypedChoiceFilter(
        choices=[("true", "true"), ("false", "false")], coerce=lambda v: v == "true", **kwargs
    )


class ProductFilter(_StrictFilterSet):
    category = django_filters.CharFilter()
    stock_policy = django_filters.ChoiceFilter(choices=StockPolicy.choices)

    class Meta:
        model = Product
        fields = ["category", "stock_policy"]


class WarehouseFilter(_StrictFilterSet):
    # `active`, the name the API's warehouse body uses; `is_active` (the model
    # field's name) is the deprecated alias, accepted for one release (docs/API.md).
    active = _strict_boolean_filter(field_name="is_active")
    is_active = _strict_boolean_filter(field_name="is_active")

    class Meta:
        model = Warehouse
        fields = ["active", "is_active"]


class InventoryFilter(_StrictFilterSet):
    sku = django_filters.CharFilter(field_name="product__sku")
    warehouse = django_filters.CharFilter(field_name="warehouse__code")
    below_threshold = _strict_boolean_filter(method="filter_below_threshold")

    class Meta:
        model = Inventory
        fields = ["sku", "warehouse", "below_threshold"]

    def filter_below_threshold(self, queryset, name, value):
        below = {"reorder_threshold__gt": 0, "available__lte": F("reorder_threshold")}
        return queryset.filter(**below) if value else queryset.exclude(**below)


class TransactionFilter(_StrictFilterSet):
    sku = django_filters.CharFilter(field_name="product__sku")
    warehouse = django_filters.CharFilter(field_name="warehouse__code")
    type = django_filters.ChoiceFilter(choices=TransactionType.choices)
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    reference = django_filters.CharFilter(field_name="reference_id")
    reference_type = django_filters.ChoiceFilter(choices=ReferenceType.choices)

    class Meta:
        model = InventoryTransaction
        fields = ["sku", "warehouse", "type", "since", "reference", "reference_type"]


def _with_components(products: QuerySet[Product]) -> QuerySet[Product]:
    """Products with their bundle components (by component SKU) in one more query."""
    return products.prefetch_related(
        Prefetch(
            "components",
            queryset=BundleComponent.objects.select_related("component").order_by("component__sku"),
        )
    )


def product_list(*, filters: Mapping[str, Any] | None = None) -> QuerySet[Product]:
    return _with_components(ProductFilter(filters, Product.objects.all()).filtered())


def product_get(*, sku: str) -> Product:
    product = _with_components(Product.objects.filter(sku=sku)).first()
    if product is None:
        raise errors.NotFound(f"Unknown SKU {sku!r}.", details={"sku": sku})
    return product


def warehouse_list(*, filters: Mapping[str, Any] | None = None) -> QuerySet[Warehouse]:
    return WarehouseFilter(filters, Warehouse.objects.all()).filtered()


def warehouse_get(*, code: str) -> Warehouse:
    warehouse = Warehouse.objects.filter(code=code).first()
    if warehouse is None:
        raise errors.NotFound(f"Unknown warehouse {code!r}.", details={"warehouse": code})
    return warehouse


def inventory_list(*, filters: Mapping[str, Any] | None = None) -> QuerySet[Inventory]:
    queryset = Inventory.objects.select_related("product", "warehouse")
    return InventoryFilter(filters, queryset).filtered()


def inventory_get(*, sku: str, warehouse: str) -> Inventory:
    row = (
        Inventory.objects.select_related("product", "warehouse")
        .filter(product__sku=sku, warehouse__code=warehouse)
        .first()
    )
    if row is None:
        raise errors.NotFound(
            f"No stock row for {sku!r} in {warehouse!r}.",
            details={"sku": sku, "warehouse": warehouse},
        )
    return row


def transaction_list(*, filters: Mapping[str, Any] | None = None) -> QuerySet[InventoryTransaction]:
    queryset = InventoryTransaction.objects.select_related("product", "warehouse")
    return TransactionFilter(filters, queryset).filtered()


def reservation_get(*, order_id: str, placed_by: str | None = None):
    """One order's reservation with its lines; with `placed_by`, only if that actor
    placed it (ReservationNotFound otherwise, as for an unknown order)."""
    from .models import Reservation

    found = Reservation.objects.filter(order_id=order_id)
    if placed_by is not None:
        found = found.filter(created_by=placed_by)
    reservation = found.prefetch_related(
        "lines__product", "lines__warehouse", "lines__bundle"
    ).first()
    if reservation is None:
        raise errors.ReservationNotFound(details={"order_id": order_id})
    return reservation
