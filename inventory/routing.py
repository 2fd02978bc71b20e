"""Order routing: which warehouse each order line without one is reserved in.

The rule (docs/API.md, "Routing"):

1. Lines that name a warehouse stay there.
2. The other lines go to active warehouses that can supply each line whole
   (a line is never split), choosing, in this order of preference:
   a. one warehouse for all of them, the closest to `ship_to`;
   b. otherwise the fewest warehouses;
   c. among equally few, the smallest total distance from `ship_to` to the
      warehouses used; then warehouse codes, alphabetically (deterministic).
   Each line goes to the closest warehouse of the chosen set that can supply it.
3. Distance is the great-circle (haversine) distance. Without `ship_to` every
   distance counts as equal; a warehouse without coordinates is farthest.

Routing plans from a snapshot read (`selectors.supply_for_skus`, no locks), then
reserves through `services.stock_reserve` with explicit warehouses, which
re-checks everything under row locks. If that reservation finds a line short
(another order took the stock between the read and the locks), lapsed holds on
the order's SKUs are expired and the order is routed and reserved once more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations

from . import errors, services
from .models import Reservation
from .selectors import SupplySnapshot, WarehouseSite, supply_for_skus

EARTH_RADIUS_KM = 6371.0088
# Exhaustive search over warehouse sets is bounded; beyond it a greedy cover is used.
MAX_SETS_EXAMINED = 20_000


@dataclass(frozen=True)
class Coordinates:
    latitude: float
    longitude: float


@dataclass(frozen=True)
class RequestedLine:
    sku: str
    quantity: int
    warehouse: str | None = None


def haversine_km(a: Coordinates, b: Coordinates) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (a.latitude, a.longitude, b.latitude, b.longitude))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _distance(site: WarehouseSite, ship_to: Coordinates | None) -> float:
    if ship_to is None:
        return 0.0
    if site.latitude is None or site.longitude is None:
        return math.inf
    return haversine_km(ship_to, Coordinates(site.latitude, site.longitude))


def route_lines(
    lines: Sequence[RequestedLine], ship_to: Coordinates | None, snapshot: SupplySnapshot
) -> list[services.ReserveLine]:
    """Give every line a warehouse by the rule above; raise InsufficientStock if impossible.

    Pure: reads only `snapshot`. Unknown SKUs are left to `stock_reserve` to report.
    """
    fixed: dict[tuple[str, str], int] = {}
    open_demand: dict[str, int] = {}
    for line in lines:
        if line.warehouse:
            key = (line.sku, line.warehouse)
            fixed[key] = fixed.get(key, 0) + line.quantity
        else:
            open_demand[line.sku] = open_demand.get(line.sku, 0) + line.quantity
    routed = [services.ReserveLine(sku, code, qty) for (sku, code), qty in fixed.items()]
    if not open_demand:
        return routed
    unknown = set(open_demand) - snapshot.known_skus
    if unknown:
        raise errors.UnknownSku(list(unknown))

    sites = sorted(snapshot.warehouses, key=lambda s: (_distance(s, ship_to), s.code))
    distance = {site.code: _distance(site, ship_to) for site in sites}

    def supply(sku: str, code: str) -> int:
        # What is left for routed lines after this order's own fixed lines.
        return snapshot.can_supply(sku, code) - fixed.get((sku, code), 0)

    suppliers = {
        sku: [s.code for s in sites if supply(sku, s.code) >= qty]
        for sku, qty in open_demand.items()
    }
    short = sorted(sku for sku, codes in suppliers.items() if not codes)
    if short:
        raise errors.InsufficientStock(
            [
                {
                    "sku": sku,
                    "warehouse": None,
                    "requested": open_demand[sku],
                    "available": max([max(supply(sku, s.code), 0) for s in sites] or [0]),
                }
                for sku in short
            ],
            message="No single warehouse can supply these lines.",
        )
    chosen = _choose_warehouses(suppliers, [s.code for s in sites], distance)
    for sku, qty in sorted(open_demand.items()):
        code = next(c for c in suppliers[sku] if c in chosen)  # suppliers are closest first
        routed.append(services.ReserveLine(sku, code, qty))
    return routed


def _choose_warehouses(
    suppliers: dict[str, list[str]], codes: list[str], distance: dict[str, float]
) -> set[str]:
    """The fewest warehouses covering every SKU, then the smallest total distance."""
    needed = set(suppliers)
    can_serve = {code: {sku for sku, sup in suppliers.items() if code in sup} for code in codes}
    candidates = [code for code in codes if can_serve[code]]  # already closest first

    def cost(group: tuple[str, ...]) -> tuple[float, tuple[str, ...]]:
        return (sum(distance[c] for c in group), tuple(sorted(group)))

    examined = 0
    for size in range(1, len(candidates) + 1):
        best = None
        for group in combinations(candidates, size):
            examined += 1
            if examined > MAX_SETS_EXAMINED:
                return _greedy_cover(needed, candidates, can_serve)
            if set().union(*(can_serve[c] for c in group)) >= needed and (
                best is None or cost(group) < cost(best)
            ):
                best = group
        if best is not None:
            return set(best)
    raise AssertionError("every SKU has a supplier, so some set covers them")  # pragma: no cover


def _greedy_cover(needed: set[str], candidates: list[str], can_serve: dict[str, set[str]]):
    chosen: set[str] = set()
    left = set(needed)
    while left:
        # Most lines covered; ties go to the closest (candidates are closest first).
        code = max(candidates, key=lambda c: (len(can_serve[c] & left), -candidates.index(c)))
        chosen.add(code)
        left -= can_serve[code]
    return chosen


def _same_request(reservation: Reservation, lines: Sequence[RequestedLine]) -> bool:
    """Whether `lines` are what this order's reservation was made from.

    Per SKU the same total quantity, and every line that named a warehouse is held
    there. (Routed lines may have landed anywhere, so the warehouse chosen by
    routing does not make a retry different.)
    """
    held: dict[str, int] = {}
    held_at: dict[tuple[str, str], int] = {}
    for line in reservation.lines.select_related("product", "warehouse"):
        held[line.product.sku] = held.get(line.product.sku, 0) + line.quantity
        key = (line.product.sku, line.warehouse.code)
        held_at[key] = held_at.get(key, 0) + line.quantity
    wanted: dict[str, int] = {}
    wanted_at: dict[tuple[str, str], int] = {}
    for line in lines:
        wanted[line.sku] = wanted.get(line.sku, 0) + line.quantity
        if line.warehouse:
            key = (line.sku, line.warehouse)
            wanted_at[key] = wanted_at.get(key, 0) + line.quantity
    return wanted == held and all(held_at.get(k, 0) >= q for k, q in wanted_at.items())


def _existing(order_id: str, lines: Sequence[RequestedLine]) -> services.ReservationResult | None:
    reservation = Reservation.objects.filter(order_id=order_id).first()
    if reservation is None:
        return None
    if not _same_request(reservation, lines):
        raise errors.OrderConflict(details={"order_id": order_id})
    return services.ReservationResult(reservation, created=False)


def reserve_order(
    *,
    order_id: str,
    lines: Sequence[RequestedLine],
    actor: str,
    ship_to: Coordinates | None = None,
    expires_at: datetime | None = None,
) -> services.ReservationResult:
    """Route the order's lines and reserve them, all or nothing (see the module doc).

    Idempotent by order id like `stock_reserve`: the same lines again return the
    existing reservation (created=False) whichever warehouses routing picked the
    first time; different lines raise OrderConflict.
    """
    if not lines:
        raise errors.InvalidInput("An order needs at least one line.")
    existing = _existing(order_id, lines)
    if existing is not None:
        return existing
    skus = sorted({line.sku for line in lines})
    for attempt in range(2):
        routed = route_lines(lines, ship_to, supply_for_skus(skus))
        try:
            return services.stock_reserve(
                order_id=order_id, lines=routed, actor=actor, expires_at=expires_at
            )
        except errors.OrderConflict:
            # A concurrent duplicate of this order won and routed differently.
            existing = _existing(order_id, lines)
            if existing is not None:
                return existing
            raise
        except errors.InsufficientStock:
            if attempt == 1:
                raise
            # Stock moved since the snapshot, or lapsed holds still reserve it:
            # release the lapsed holds on these SKUs, then route once more.
            services.reservations_expire(skus=skus)
    raise AssertionError("unreachable")  # pragma: no cover
