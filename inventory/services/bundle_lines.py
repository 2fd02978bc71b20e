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

Remembered compositions (issue #16, item 5): every answer of
`bundle_compositions` is kept in a bounded per-process map (bundle SKU ->
`Bundle`), so both engines expand an order naming a remembered bundle before
their first statement, without a composition query. The memory is only a
guess: the SQL function compares what the lines were expanded with to the
stored compositions under the bundles' FOR SHARE locks ('stale': nothing done,
re-read, called again), and the ORM engine locks the remembered bundles and
reads their compositions again before its first write (`bundles_locked`). A
SKU the memory does not know is treated as plain until the database says it is
a bundle (the SQL function's 'missing', the ORM engine's `SkuIsBundle`), so a
plain order never pays a composition query.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TypeVar

from .. import errors
from ..locks import lock_bundles
from ..models import BundleComponent
from .orders import MergedOrder
from .stock import check_quantity

# The prefix of a ledger row's reason on a component's line reserved for a bundle.
BUNDLE_REASON_PREFIX = "bundle:"

# How many bundles one process remembers (least recently used forgotten first):
# a few hundred bytes each, far more than a shop's hot bundles.
REMEMBERED_BUNDLES_MAX = 10_000

T = TypeVar("T")


@dataclass(frozen=True)
class Bundle:
    """A bundle as reservations need it: its product id and, per bundle unit,
    (component SKU, quantity) in SKU order."""

    sku: str
    id: object
    components: tuple[tuple[str, int], ...]


def bundle_compositions(skus: Iterable[str]) -> dict[str, Bundle]:
    """The bundles among `skus`, with their components (one query). A SKU that
    is not a bundle (or a bundle with no components yet) is absent. The answer is
    remembered (`remembered_bundles`), the absent SKUs forgotten."""
    skus = set(skus)
    found: dict[str, tuple[object, list[tuple[str, int]]]] = {}
    rows = (
        BundleComponent.objects.filter(bundle__sku__in=skus, bundle__is_bundle=True)
        .order_by("bundle__sku", "component__sku")
        .values_list("bundle__sku", "bundle_id", "component__sku", "quantity")
    )
    for bundle_sku, bundle_id, component_sku, quantity in rows:
        found.setdefault(bundle_sku, (bundle_id, []))[1].append((component_sku, quantity))
    bundles = {
        sku: Bundle(sku, bundle_id, tuple(components))
        for sku, (bundle_id, components) in found.items()
    }
    _memory.learn(skus, bundles)
    return bundles


class _RememberedBundles:
    """The per-process memory of compositions: bundle SKU -> `Bundle`, at most
    REMEMBERED_BUNDLES_MAX, least recently used forgotten first; shared by the
    process's threads (one lock around each step)."""

    def __init__(self) -> None:
        self._bundles: OrderedDict[str, Bundle] = OrderedDict()
        self._lock = threading.Lock()

    def among(self, skus: Iterable[str]) -> dict[str, Bundle]:
        with self._lock:
            found = {}
            for sku in skus:
                bundle = self._bundles.get(sku)
                if bundle is not None:
                    self._bundles.move_to_end(sku)
                    found[sku] = bundle
            return found

    def learn(self, asked: Iterable[str], found: dict[str, Bundle]) -> None:
        """What one composition query answered: the bundles found are
        remembered, the SKUs asked for and not found (not bundles, or bundles
        with no components) forgotten."""
        with self._lock:
            for sku in asked:
                if sku not in found:
                    self._bundles.pop(sku, None)
            for sku, bundle in found.items():
                self._bundles[sku] = bundle
                self._bundles.move_to_end(sku)
            while len(self._bundles) > REMEMBERED_BUNDLES_MAX:
                self._bundles.popitem(last=False)

    def forget(self) -> None:
        with self._lock:
            self._bundles.clear()


_memory = _RememberedBundles()


def remembered_bundles(skus: Iterable[str]) -> dict[str, Bundle]:
    """The remembered bundles among `skus` (no query): compositions some
    `bundle_compositions` answered in this process, possibly out of date since
    (each engine verifies them under the bundles' locks before using them)."""
    return _memory.among(skus)


def forget_bundles() -> None:
    """Forget every remembered composition (tests start each with none, as a new
    process does)."""
    _memory.forget()


def bundles_locked(bundles: dict[str, Bundle]) -> dict[str, Bundle]:
    """The ORM engine's check of `bundles` (remembered or just read): their
    product rows locked FOR SHARE (`lock_bundles`, step 1 of inventory/locks.py),
    then their compositions read again. A composition change that committed
    since is seen; one that has not waits for this transaction and then refuses
    (bundle_in_use); a SKU that is no longer a bundle is absent from the answer
    (its line is then a plain one). No bundles: no statement. Called first in
    the reserving transaction, before its Reservation row.

    A bundle's SKU names one product for good (products are never deleted, a
    SKU never changes), so the remembered ids are the ones read again; should
    one differ all the same, that product is locked too and read again."""
    if not bundles:
        return bundles
    locked: set = set()
    fresh = bundles
    for _attempt in range(3):
        ids = {bundle.id for bundle in fresh.values()} - locked
        if not ids:
            return fresh
        lock_bundles(ids)
        locked |= ids
        fresh = bundle_compositions(bundles)
    raise errors.StockBusy(  # pragma: no cover - a SKU moving between products twice
        "A bundle's product changed while reserving; nothing was applied.",
        reason="bundle_composition_changed",
    )


def with_bundles(skus: Iterable[str], attempt: Callable[[dict[str, Bundle]], T]) -> T:
    """The ORM engine's expansion: `attempt` (one reserving transaction) runs
    with the remembered bundles among `skus` (none read: a plain order pays no
    composition query). When it meets a bundle it was not given (`SkuIsBundle`
    from locking rows: a bundle has none; it rolled back), the compositions of
    `skus` are read (one query, remembered) and it runs once more with them; a
    bundle without components stays `SkuIsBundle`, as before."""
    skus = set(skus)
    bundles = remembered_bundles(skus)
    try:
        return attempt(bundles)
    except errors.SkuIsBundle as refused:
        fresh = bundle_compositions(skus)
        if not set(refused.details["skus"]) & fresh.keys():
            raise
    return attempt(fresh)


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
