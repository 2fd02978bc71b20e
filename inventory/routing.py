"""Order routing: which warehouse each order line without one is reserved in.

The rule (docs/API.md, "Routing"):

1. Lines that name a warehouse stay there.
2. The other lines go to active warehouses, choosing, in this order of preference:
   a. one warehouse for all of them, the closest to `ship_to`;
   b. otherwise the fewest warehouses;
   c. among equally few, the fewest lines split across warehouses, then the
      smallest total distance from `ship_to` to the warehouses used, then
      warehouse codes, alphabetically (deterministic).
   Each line goes to the closest warehouse of the chosen set that has all of it;
   a line no single one of them can supply is split, closest warehouse first.
3. Distance is the great-circle (haversine) distance. Without `ship_to` every
   distance counts as equal; a warehouse without coordinates is farthest.

Routing plans from a snapshot read (the read model, `selectors.supply_from_read_model`,
else `selectors.supply_for_skus`, no locks; in both, holds past their expiry
count nowhere), then reserves through `services.stock_reserve` with explicit
warehouses, which re-checks everything under row locks and itself releases the
lapsed holds a line needs, in its own transaction. If that reservation finds a
line short (another order took the stock between the read and the locks, or the
read model lagged), the order is routed from the database and reserved once
more. No separate expiry transaction runs for a request.

The order-line limit (STOCKROOM_MAX_ORDER_LINES) counts the lines the client
sent, not the routed lines: a line split across warehouses never turns a valid
request into a refused one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations

from django.conf import settings

from . import availability_cache, errors, services
from .models import Reservation
from .selectors import (
    SupplySnapshot,
    WarehouseSite,
    active_warehouse_codes,
    forget_active_warehouses,
    supply_for_skus,
    supply_from_read_model,
)
from .services.bundle_lines import Bundle, bundle_compositions

_NO_SUPPLY = SupplySnapshot((), {}, frozenset())

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


def _components(sku: str, bundles: Mapping[str, Bundle]) -> tuple[tuple[str, int], ...]:
    """What one unit of `sku` takes from stock: its components, or itself."""
    bundle = bundles.get(sku)
    return bundle.components if bundle is not None else ((sku, 1),)


def route_lines(
    lines: Sequence[RequestedLine],
    ship_to: Coordinates | None,
    snapshot: SupplySnapshot,
    bundles: Mapping[str, Bundle] | None = None,
) -> list[services.ReserveLine]:
    """Give every line a warehouse by the rule above; raise InsufficientStock if impossible.

    A bundle (in `bundles`) is routed in whole units: a warehouse can supply as
    many as every component's supply there allows, and a bundle line is split
    across warehouses only by whole units. Its lines keep the bundle SKU
    (`stock_reserve` expands them). A component wanted by several lines (bundles,
    the component sold alone) counts against its supply once, summed.
    Pure: reads only `snapshot`. Unknown SKUs are left to `stock_reserve` to report.
    """
    bundles = bundles or {}
    fixed: dict[tuple[str, str], int] = {}  # units of stock, per component row
    open_demand: dict[str, int] = {}
    routed = []
    for line in lines:
        if line.warehouse:
            routed.append(services.ReserveLine(line.sku, line.warehouse, line.quantity))
            for sku, per_unit in _components(line.sku, bundles):
                key = (sku, line.warehouse)
                fixed[key] = fixed.get(key, 0) + line.quantity * per_unit
        else:
            open_demand[line.sku] = open_demand.get(line.sku, 0) + line.quantity
    if not open_demand:
        return routed
    unknown = set(open_demand) - snapshot.known_skus - bundles.keys()
    if unknown:
        raise errors.UnknownSku(list(unknown))

    sites = sorted(snapshot.warehouses, key=lambda s: (_distance(s, ship_to), s.code))
    codes = [site.code for site in sites]  # closest first
    distance = {site.code: _distance(site, ship_to) for site in sites}
    # Units of stock each routed line needs, per component, summed over lines.
    stock_demand: dict[str, int] = {}
    for sku, qty in open_demand.items():
        for component, per_unit in _components(sku, bundles):
            stock_demand[component] = stock_demand.get(component, 0) + qty * per_unit
    # What each warehouse can still give the routed lines after this order's fixed lines.
    supply = {
        sku: {
            code: max(snapshot.can_supply(sku, code) - fixed.get((sku, code), 0), 0)
            for code in codes
        }
        for sku in stock_demand
    }
    short = sorted(sku for sku, qty in stock_demand.items() if sum(supply[sku].values()) < qty)
    if short:
        raise errors.InsufficientStock(
            [
                {
                    "sku": sku,
                    "warehouse": None,
                    "requested": stock_demand[sku],
                    "available": sum(supply[sku].values()),
                }
                for sku in short
            ],
            message="Not enough stock in the active warehouses.",
        )
    # A bundle is supplied, per warehouse, in the whole units its components allow.
    unit_supply = {sku: _unit_supply(sku, supply, codes, bundles) for sku in open_demand}
    chosen = _choose_warehouses(open_demand, unit_supply, codes, distance)
    # The chosen warehouses (closest first); if a component shared by lines left
    # a later line short in them, the others too.
    chosen_by_distance = [code for code in codes if code in chosen]
    everywhere = chosen_by_distance + [code for code in codes if code not in chosen]
    # Bundles first (they need whole units), then the plain lines; each takes
    # its units out of `supply` before the next line is assigned.
    for sku, qty in sorted(open_demand.items(), key=lambda item: (item[0] not in bundles, item[0])):
        units = _unit_supply(sku, supply, codes, bundles)
        parts = _assign(sku, qty, chosen_by_distance, units)
        if sum(part.quantity for part in parts) < qty:
            parts = _assign(sku, qty, everywhere, units)
        if sum(part.quantity for part in parts) < qty:
            raise errors.InsufficientStock(
                [{"sku": sku, "warehouse": None, "requested": qty, "available": 0}],
                message="Not enough stock in the active warehouses.",
            )
        for part in parts:
            for component, per_unit in _components(sku, bundles):
                supply[component][part.warehouse] -= part.quantity * per_unit
        routed.extend(parts)
    return routed


def _unit_supply(
    sku: str, supply: dict[str, dict[str, int]], codes: list[str], bundles: Mapping[str, Bundle]
) -> dict[str, int]:
    """Per warehouse, the whole units of `sku` (a bundle: of all its components) it can supply."""
    components = _components(sku, bundles)
    return {
        code: min(supply[component][code] // per_unit for component, per_unit in components)
        for code in codes
    }


def _assign(
    sku: str, quantity: int, chosen: list[str], supply: dict[str, int]
) -> list[services.ReserveLine]:
    """The closest chosen warehouse that has the whole line; else split it, closest first."""
    whole = next((code for code in chosen if supply[code] >= quantity), None)
    if whole is not None:
        return [services.ReserveLine(sku, whole, quantity)]
    parts, remaining = [], quantity
    for code in chosen:
        take = min(supply[code], remaining)
        if take > 0:
            parts.append(services.ReserveLine(sku, code, take))
            remaining -= take
    return parts


def _score(
    group: Sequence[str],
    demand: dict[str, int],
    supply: dict[str, dict[str, int]],
    distance: dict[str, float],
) -> tuple[int, float, tuple[str, ...]] | None:
    """(lines that must be split, total distance, codes) if `group` can supply every line."""
    splits = 0
    for sku, qty in demand.items():
        if any(supply[sku][code] >= qty for code in group):
            continue
        if sum(supply[sku][code] for code in group) < qty:
            return None
        splits += 1
    return splits, sum(distance[code] for code in group), tuple(sorted(group))


def _choose_warehouses(
    demand: dict[str, int],
    supply: dict[str, dict[str, int]],
    codes: list[str],
    distance: dict[str, float],
) -> set[str]:
    """The fewest warehouses that can supply every line; then the fewest split lines,
    the smallest total distance, and codes alphabetically."""
    candidates = [code for code in codes if any(supply[sku][code] for sku in demand)]
    examined = 0
    for size in range(1, len(candidates) + 1):
        best = None
        for group in combinations(candidates, size):
            examined += 1
            if examined > MAX_SETS_EXAMINED:
                return _greedy_cover(demand, supply, candidates, distance)
            score = _score(group, demand, supply, distance)
            if score is not None and (best is None or score < best):
                best = score
        if best is not None:
            return set(best[2])
    raise AssertionError("the total supply covers every line")  # pragma: no cover


def _greedy_cover(
    demand: dict[str, int],
    supply: dict[str, dict[str, int]],
    candidates: list[str],
    distance: dict[str, float],
) -> set[str]:
    """Add the warehouse that completes the most lines (then supplies the most units,
    then is closest) until every line can be supplied."""
    chosen: list[str] = []

    def progress(group: list[str]) -> tuple[int, int]:
        covered = [min(qty, sum(supply[sku][c] for c in group)) for sku, qty in demand.items()]
        complete = sum(units == qty for units, qty in zip(covered, demand.values(), strict=True))
        return complete, sum(covered)

    while _score(chosen, demand, supply, distance) is None:
        rest = [code for code in candidates if code not in chosen]
        chosen.append(max(rest, key=lambda c: (*progress([*chosen, c]), -candidates.index(c))))
    return set(chosen)


def _same_request(reservation: Reservation, lines: Sequence[RequestedLine]) -> bool:
    """Whether `lines` are what this order's reservation was made from.

    Per SKU the same total quantity, and every line that named a warehouse is held
    there. (Routed lines may have landed anywhere, so the warehouse chosen by
    routing does not make a retry different.) A bundle's line counts as its
    components' units held for that bundle.
    """
    held: dict[tuple[str, str], int] = {}  # (bundle SKU or "", SKU) -> units
    held_at: dict[tuple[tuple[str, str], str], int] = {}
    for line in reservation.lines.select_related("product", "warehouse", "bundle"):
        key = (line.bundle.sku if line.bundle_id else "", line.product.sku)
        held[key] = held.get(key, 0) + line.quantity
        held_at[(key, line.warehouse.code)] = (
            held_at.get((key, line.warehouse.code), 0) + line.quantity
        )
    held_bundles = {bundle for bundle, _ in held if bundle}
    bundles = bundle_compositions(held_bundles) if held_bundles else {}
    wanted: dict[tuple[str, str], int] = {}
    wanted_at: dict[tuple[tuple[str, str], str], int] = {}
    for line in lines:
        bundle = line.sku if line.sku in bundles else ""
        for sku, per_unit in _components(line.sku, bundles):
            key = (bundle, sku)
            wanted[key] = wanted.get(key, 0) + line.quantity * per_unit
            if line.warehouse:
                at = (key, line.warehouse)
                wanted_at[at] = wanted_at.get(at, 0) + line.quantity * per_unit
    return wanted == held and all(held_at.get(k, 0) >= q for k, q in wanted_at.items())


def _existing(
    order_id: str, lines: Sequence[RequestedLine], actor: str
) -> services.ReservationResult | None:
    """The order's reservation if this is a retry of it: the same lines from the same
    actor (another actor's order id is a conflict, never its reservation)."""
    reservation = Reservation.objects.filter(order_id=order_id).first()
    if reservation is None:
        return None
    if reservation.created_by != actor or not _same_request(reservation, lines):
        raise errors.OrderConflict(details={"order_id": order_id})
    return services.ReservationResult(reservation, created=False)


def _plan(
    lines: Sequence[RequestedLine],
    ship_to: Coordinates | None,
    skus: list[str],
    *,
    from_database: bool,
) -> list[services.ReserveLine]:
    """Route a routed order from the read model (else the database).

    A bundle is routed in whole units of its components, whose supply is read
    with the rest, so a component shared by lines counts once. Its composition
    is read (one indexed query) only for SKUs that may be bundles: from the read
    model, those it does not know or has no supply of (a bundle has no rows); on
    the second attempt, from the database, every SKU of the order (a read model
    that derives a bundle's own supply is routed as is at first)."""
    read = supply_for_skus if from_database else supply_from_read_model
    snapshot = read(skus)
    codes = [site.code for site in snapshot.warehouses]
    suspects = {
        sku
        for sku in skus
        if from_database
        or sku not in snapshot.known_skus
        or not any(snapshot.can_supply(sku, code) > 0 for code in codes)
    }
    bundles = bundle_compositions(suspects) if suspects else {}
    if bundles:
        skus = sorted(
            {sku for sku in skus if sku not in bundles}
            | {sku for bundle in bundles.values() for sku, _ in bundle.components}
        )
        snapshot = read(skus)
    return route_lines(lines, ship_to, snapshot, bundles)


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
    max_lines = settings.STOCKROOM_MAX_ORDER_LINES
    if len(lines) > max_lines:
        raise errors.InvalidInput(
            f"At most {max_lines} lines per order.", details={"max_lines": max_lines}
        )
    skus = sorted({line.sku for line in lines})
    routed_order = any(not line.warehouse for line in lines)
    if routed_order:
        # The sold-out gate, before planning: refused at cache speed only when
        # every line is sold out everywhere it may come from (committed state).
        # Orders naming their warehouses meet the same gate in `stock_reserve`.
        sold_out = availability_cache.sold_out_lines(
            [(line.sku, line.warehouse or None, line.quantity) for line in lines],
            order_id=order_id,
            active_codes=active_warehouse_codes(),
        )
        if sold_out and not services.reservation_exists(order_id):
            raise errors.SoldOut(sold_out)
        # A retry may route differently now; recognise it before planning.
        existing = _existing(order_id, lines, actor)
        if existing is not None:
            return existing
    for attempt in range(2):
        try:
            # A plan that comes up short is retried like a reservation that does:
            # the read model may still count lapsed holds, or lag a change.
            if not routed_order:
                routed = route_lines(lines, ship_to, _NO_SUPPLY)  # every line names its warehouse
            else:
                routed = _plan(lines, ship_to, skus, from_database=attempt == 1)
            return services.stock_reserve(
                order_id=order_id,
                lines=routed,
                actor=actor,
                expires_at=expires_at,
                requested_lines=len(lines),
            )
        except errors.OrderConflict:
            # A concurrent duplicate of this order won and routed differently.
            existing = _existing(order_id, lines, actor)
            if existing is not None:
                return existing
            raise
        except errors.SoldOut:
            raise  # the gate answered from the cache: no database work to retry with
        except errors.WarehouseInactive:
            # Routing chose a site closed within the last few seconds (the active
            # list is cached in-process): plan again from a fresh list. An order
            # that named the closed warehouse itself is refused.
            if not routed_order or attempt == 1:
                raise
            forget_active_warehouses()
        except errors.InsufficientStock:
            # The reservation already counted (and released) lapsed holds under
            # its row locks, so an order naming its warehouses is really short.
            # A routed plan may have come from a read model that lagged a
            # change: route once more from the database.
            if attempt == 1 or not routed_order:
                availability_cache.watch(skus)  # worth asking the sold-out gate next time
                raise
    raise AssertionError("unreachable")  # pragma: no cover
