"""Bundles in reservations: an order line for a bundle SKU becomes lines of its components.

A bundle (`Product.is_bundle`, issue #16) has no stock rows; its components do. An
order line of n units of a bundle in warehouse W reserves n x quantity of each
component in W, on reservation lines that carry the bundle
(`ReservationLine.bundle`) and ledger rows whose reason names it
(`bundle_reason`). Both reservation engines expand an order here
(`expand_order`) before any lock. What is checked against stock is the order's
total per inventory row (`MergedOrder.merged` after expansion): a component
wanted by several lines of one order (bundles sharing it, the component sold
alone) is checked once, summed, so the oversell of medusa#16502 cannot happen.
`MergedOrder.parts` keep the split per bundle, for the lines and ledger rows.

Release and fulfilment by bundle SKU (`bundle_take`) take whole bundle units
from the component lines of that bundle (docs/API.md, "Reserving a bundle").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..models import BundleComponent
from .orders import MergedOrder
from .stock import check_quantity

# The prefix of a ledger row's reason on a component's line reserved for a bundle.
BUNDLE_REASON_PREFIX = "bundle:"


@dataclass(frozen=True)
class Bundle:
    """A bundle as reservations need it: its product id and, per bundle unit,
    (component SKU, quantity) in SKU order."""

    sku: str
    id: object
    components: tuple[tuple[str, int], ...]


def bundle_compositions(skus: Iterable[str]) -> dict[str, Bundle]:
    """The bundles among `skus`, with their components (one query). A SKU that
    is not a bundle (or a bundle with no components yet) is absent."""
    found: dict[str, tuple[object, list[tuple[str, int]]]] = {}
    rows = (
        BundleComponent.objects.filter(bundle__sku__in=set(skus), bundle__is_bundle=True)
        .order_by("bundle__sku", "component__sku")
        .values_list("bundle__sku", "bundle_id", "component__sku", "quantity")
    )
    for bundle_sku, bundle_id, component_sku, quantity in rows:
        found.setdefault(bundle_sku, (bundle_id, []))[1].append((component_sku, quantity))
    return {
        sku: Bundle(sku, bundle_id, tuple(components))
        for sku, (bundle_id, components) in found.items()
    }


def bundle_reason(bundle_sku: str | None, reason: str = "") -> str:
    """A ledger row's reason: `bundle:<SKU>` (then `: <reason>`) on a bundle's
    component line, the reason alone otherwise. The SQL functions write the same."""
    if not bundle_sku:
        return reason
    prefix = f"{BUNDLE_REASON_PREFIX}{bundle_sku}"
    return f"{prefix}: {reason}" if reason else prefix


def expand_order(request: MergedOrder, bundles: dict[str, Bundle]) -> MergedOrder:
    """The order with its bundle lines replaced by their components' lines:
    `merged` the total per (SKU, warehouse) row, `parts` the lines to write
    (component, warehouse, bundle SKU or None, quantity), sorted. An order with
    no bundle line is returned as it is (its parts are its merged lines)."""
    if not any(sku in bundles for sku, _ in request.merged):
        return request
    totals: dict[tuple[str, str], int] = {}
    parts: dict[tuple[str, str, str], int] = {}
    for (sku, code), qty in request.merged.items():
        bundle = bundles.get(sku)
        components = bundle.components if bundle is not None else ((sku, 1),)
        for component, per_unit in components:
            units = check_quantity(qty * per_unit, name=f"quantity of {component} in {sku}")
            totals[(component, code)] = totals.get((component, code), 0) + units
            key = (component, code, sku if bundle is not None else "")
            parts[key] = parts.get(key, 0) + units
    for (sku, _), qty in totals.items():
        check_quantity(qty, name=f"quantity of {sku}")
    return replace(
        request,
        merged=totals,
        parts=tuple((s, c, b or None, q) for (s, c, b), q in sorted(parts.items())),
        bundle_ids={sku: bundles[sku].id for sku, _ in request.merged if sku in bundles},
    )
