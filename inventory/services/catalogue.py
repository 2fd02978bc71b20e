"""Catalogue writes: products, warehouses and inventory reorder settings.

None of these change stock quantities (the stock and reservation verbs do). A product's stock
policy changes through `product_set_stock_policy`, which copies the allowance to
every inventory row. Each function validates with the models' own validators and
raises `InvalidInput` (400) or `AlreadyExists` (409), changing nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F

from warehouses.models import Warehouse

from .. import availability_cache, errors
from ..models import (
    BundleComponent,
    Inventory,
    Product,
    ReservationLine,
    ReservationStatus,
    StockPolicy,
)
from .rows import stock_rows_create
from .stock import check_quantity

PRODUCT_FIELDS = ("name", "category", "weight_g", "length_mm", "width_mm", "height_mm")
WAREHOUSE_FIELDS = ("name", "address", "latitude", "longitude", "capacity", "is_active")


def _validate(instance, *, exclude: Sequence[str] = ()) -> None:
    try:
        # Unique and CHECK constraints are left to the database (validating them here
        # costs a query per object); field validators (SKU pattern, ranges) run.
        instance.full_clean(
            exclude=list(exclude), validate_unique=False, validate_constraints=False
        )
    except ValidationError as exc:
        raise errors.InvalidInput(
            "The data is not valid; see details.", details=exc.message_dict
        ) from exc


def _check_policy(stock_policy: str, backorder_limit: int) -> int:
    if stock_policy not in StockPolicy.values:
        raise errors.InvalidInput(
            f"Unknown stock policy {stock_policy!r}.",
            details={"stock_policy": [f"One of {', '.join(StockPolicy.values)}."]},
        )
    if stock_policy == StockPolicy.NORMAL and backorder_limit:
        raise errors.InvalidInput(
            "A normal SKU cannot have a backorder limit.",
            details={"backorder_limit": ["Must be 0 for the normal stock policy."]},
        )
    return backorder_limit


def product_create(
    *,
    sku: str,
    name: str,
    stock_policy: str = StockPolicy.NORMAL,
    backorder_limit: int = 0,
    components: Sequence[Mapping[str, Any]] | None = None,
    **fields: Any,
) -> Product:
    """Create a product; with non-empty `components` ([{"sku", "quantity"}]) a bundle."""
    _check_policy(stock_policy, backorder_limit)
    if components:
        _check_bundle_policy(stock_policy)
    product = Product(
        sku=sku,
        name=name,
        stock_policy=stock_policy,
        backorder_limit=backorder_limit,
        **{k: v for k, v in fields.items() if k in PRODUCT_FIELDS},
    )
    _validate(product)
    try:
        with transaction.atomic():
            product.save(force_insert=True)
            if components:
                bundle_set_components(product=product, components=components)
    except IntegrityError as exc:
        raise errors.AlreadyExists(f"SKU {sku!r} already exists.", details={"sku": sku}) from exc
    return product


def product_update(*, product: Product, data: Mapping[str, Any]) -> Product:
    """Change the given fields; a policy change goes through product_set_stock_policy."""
    stock_policy = data.get("stock_policy", product.stock_policy)
    backorder_limit = data.get(
        "backorder_limit", 0 if stock_policy == StockPolicy.NORMAL else product.backorder_limit
    )
    _check_policy(stock_policy, backorder_limit)
    components = data.get("components")
    if components or (components is None and product.is_bundle):
        _check_bundle_policy(stock_policy)
    changed = [k for k in PRODUCT_FIELDS if k in data and getattr(product, k) != data[k]]
    with transaction.atomic():
        if components is not None:
            bundle_set_components(product=product, components=components)
        if changed:
            for k in changed:
                setattr(product, k, data[k])
            _validate(product)
            product.save(update_fields=[*changed, "updated_at"])
        if (stock_policy, backorder_limit) != (product.stock_policy, product.backorder_limit):
            product_set_stock_policy(
                product=product, stock_policy=stock_policy, backorder_limit=backorder_limit
            )
    return product


def products_upsert(*, items: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """Create or update up to STOCKROOM_MAX_BULK_PRODUCTS products, all or none.

    Returns (created, updated). Every item is validated before anything is written.
    """
    if not items:
        raise errors.InvalidInput("Send at least one product.")
    if len(items) > settings.STOCKROOM_MAX_BULK_PRODUCTS:
        raise errors.InvalidInput(
            f"At most {settings.STOCKROOM_MAX_BULK_PRODUCTS} products per call.",
            details={"max_items": settings.STOCKROOM_MAX_BULK_PRODUCTS},
        )
    skus = [item["sku"] for item in items]
    seen: set[str] = set()
    duplicates = sorted({s for s in skus if s in seen or seen.add(s)})
    if duplicates:
        raise errors.InvalidInput(
            "Each SKU may appear once per call.", details={"duplicate_skus": duplicates}
        )
    existing = {p.sku: p for p in Product.objects.filter(sku__in=skus)}
    problems: dict[str, Any] = {}
    new: list[Product] = []
    changed: list[Product] = []
    policy_changes: list[tuple[Product, str, int]] = []
    for item in items:
        sku = item["sku"]
        policy = item.get("stock_policy", StockPolicy.NORMAL)
        limit = item.get("backorder_limit", 0)
        try:
            _check_policy(policy, limit)
            product = existing.get(sku)
            is_new = product is None
            if is_new:
                product = Product(sku=sku, stock_policy=policy, backorder_limit=limit)
            elif (policy, limit) != (product.stock_policy, product.backorder_limit):
                policy_changes.append((product, policy, limit))
            for k in PRODUCT_FIELDS:
                if k in item:
                    setattr(product, k, item[k])
            if is_new or any(k in item for k in PRODUCT_FIELDS):
                # The serializer already checked types and ranges; the model checks
                # the rest (SKU pattern, lengths). Unique is checked by the database.
                _validate(product, exclude=["id"])
            (new if is_new else changed).append(product)
        except errors.InvalidInput as exc:
            problems[sku] = exc.details
    if problems:
        raise errors.InvalidInput(
            "Some products are not valid; nothing was saved.", details=problems
        )
    try:
        with transaction.atomic():
            Product.objects.bulk_create(new, batch_size=500)
            if changed:
                Product.objects.bulk_update(changed, [*PRODUCT_FIELDS], batch_size=500)
            for product, policy, limit in policy_changes:
                product_set_stock_policy(
                    product=product, stock_policy=policy, backorder_limit=limit
                )
    except IntegrityError as exc:
        # A concurrent call created one of these SKUs first.
        raise errors.AlreadyExists("A SKU was created concurrently; retry the call.") from exc
    return len(new), len(changed)


def _check_bundle_policy(stock_policy: str) -> None:
    if stock_policy != StockPolicy.NORMAL:
        raise errors.InvalidInput(
            "A bundle has the normal stock policy: backorders and pre-orders follow its "
            "components' policies.",
            details={"stock_policy": ["Must be normal for a bundle."]},
        )


def _parse_components(
    product: Product, components: Sequence[Mapping[str, Any]]
) -> dict[str, tuple[Product, int]]:
    """{sku: (component, quantity)}; raises InvalidBundleComponent / UnknownSku."""
    wanted: dict[str, int] = {}
    problems: dict[str, list[str]] = {}
    for index, item in enumerate(components):
        sku, quantity = item.get("sku"), item.get("quantity")
        if not isinstance(sku, str):
            problems.setdefault(str(index), []).append("Each component needs a sku.")
            continue
        if sku in wanted:
            problems.setdefault(sku, []).append("Listed more than once.")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            problems.setdefault(sku, []).append("The quantity per bundle is a whole number >= 1.")
        if sku == product.sku:
            problems.setdefault(sku, []).append("A bundle cannot contain itself.")
        wanted[sku] = quantity
    if problems:
        raise errors.InvalidBundleComponent(details={"components": problems})
    found = {p.sku: p for p in Product.objects.filter(sku__in=wanted)}
    if wanted.keys() - found.keys():
        raise errors.UnknownSku(list(wanted.keys() - found.keys()))
    nested = sorted(sku for sku, p in found.items() if p.is_bundle)
    if nested:
        raise errors.InvalidBundleComponent(
            "A component cannot be a bundle itself.",
            details={"components": {sku: ["Is a bundle (no nesting)."] for sku in nested}},
        )
    return {sku: (found[sku], q) for sku, q in wanted.items()}


def bundle_check_components(*, product: Product, components: Sequence[Mapping[str, Any]]) -> None:
    """The checks of `bundle_set_components`, writing nothing (the admin's form
    shows them before saving; `bundle_set_components` runs them again under the
    product's lock). `product` may be unsaved (a new product)."""
    if components:
        _check_bundle_policy(product.stock_policy)
    if product._state.adding:
        _parse_components(product, components)
    else:
        _check_composition(product, components)


def _check_composition(
    product: Product, components: Sequence[Mapping[str, Any]]
) -> dict[str, tuple[Product, int]] | None:
    """The wanted composition, or None if it is the current one; raises if refused."""
    wanted = _parse_components(product, components)
    current = dict(
        BundleComponent.objects.filter(bundle=product).values_list("component__sku", "quantity")
    )
    if product.is_bundle == bool(wanted) and current == {sku: q for sku, (_, q) in wanted.items()}:
        return None
    if (
        product.is_bundle
        and ReservationLine.objects.filter(bundle=product, status=ReservationStatus.ACTIVE).exists()
    ):
        raise errors.BundleInUse(details={"sku": product.sku})
    if wanted and not product.is_bundle:
        if Inventory.objects.filter(product=product).exists():
            raise errors.BundleConflict(
                "A product with stock rows cannot become a bundle.", details={"sku": product.sku}
            )
        if BundleComponent.objects.filter(component=product).exists():
            raise errors.BundleConflict(
                "A component of a bundle cannot become a bundle.", details={"sku": product.sku}
            )
    return wanted


def bundle_set_components(*, product: Product, components: Sequence[Mapping[str, Any]]) -> Product:
    """Set a product's composition: `components` ([{"sku", "quantity"}], quantity >= 1)
    makes it a bundle with exactly those components; [] makes it a plain product.

    Refused, changing nothing: a component that is a bundle (no nesting), unknown
    or listed twice (InvalidBundleComponent / UnknownSku, 400); a product with
    stock rows or that is a component becoming a bundle (BundleConflict, 409);
    any change while active reservation lines hold the bundle (BundleInUse, 409:
    a composition is not versioned, so the lines reserved for the old one must
    close first). The bundle's product row is locked FOR UPDATE first, so two
    changes of one bundle run one after the other; the database triggers of
    inventory/sql/bundle_guards.sql refuse the same things for raw SQL. The
    cached availability entry is invalidated after commit (it carries the
    composition).
    """
    with transaction.atomic():
        locked = Product.objects.select_for_update().get(pk=product.pk)
        wanted = _check_composition(locked, components)
        if wanted is None:
            product.is_bundle = locked.is_bundle
            return product  # unchanged: a retry of the same sync is a no-op
        BundleComponent.objects.filter(bundle=locked).delete()
        if locked.is_bundle != bool(wanted):
            locked.is_bundle = bool(wanted)
            locked.save(update_fields=["is_bundle", "updated_at"])
        BundleComponent.objects.bulk_create(
            [
                BundleComponent(bundle=locked, component=component, quantity=quantity)
                for _, (component, quantity) in sorted(wanted.items())
            ]
        )
        transaction.on_commit(partial(availability_cache.invalidate, [locked.sku]))
    product.is_bundle = locked.is_bundle
    if hasattr(product, "_prefetched_objects_cache"):
        product._prefetched_objects_cache.pop("components", None)
    return product


def warehouse_create(*, code: str, name: str, **fields: Any) -> Warehouse:
    warehouse = Warehouse(
        code=code, name=name, **{k: v for k, v in fields.items() if k in WAREHOUSE_FIELDS}
    )
    _validate(warehouse)
    try:
        with transaction.atomic():
            warehouse.save(force_insert=True)
    except IntegrityError as exc:
        raise errors.AlreadyExists(
            f"Warehouse {code!r} already exists.", details={"warehouse": code}
        ) from exc
    return warehouse


def warehouse_update(*, warehouse: Warehouse, data: Mapping[str, Any]) -> Warehouse:
    changed = [k for k in WAREHOUSE_FIELDS if k in data and getattr(warehouse, k) != data[k]]
    if changed:
        for k in changed:
            setattr(warehouse, k, data[k])
        _validate(warehouse)
        warehouse.save(update_fields=[*changed, "updated_at"])
    return warehouse


def inventory_set_reorder(
    *,
    sku: str,
    warehouse: str,
    reorder_threshold: int | None = None,
    reorder_quantity: int | None = None,
    safety_stock: int | None = None,
) -> Inventory:
    """Set a row's reorder threshold, reorder quantity and/or safety stock
    (creating the empty row if needed, through `stock_rows_create`).

    Written with UPDATE ... SET of those columns only, so it never races with
    the stock columns that the stock operations change under row locks.
    Safety stock (units kept back from sale, issue #15) is a setting, not a
    ledger quantity: it may exceed what is on hand (sellable then reads 0).
    Changing it moves the sellable figure, so the row's version is bumped (the
    UPDATE waits for the row lock of any reservation in flight, and the reserve
    paths read it under that lock) and the cached entry is invalidated.
    """
    if safety_stock is not None:
        check_quantity(safety_stock, name="safety_stock", allow_zero=True)
    product = Product.objects.filter(sku=sku).first()
    site = Warehouse.objects.filter(code=warehouse).first()
    if product is None:
        raise errors.UnknownSku([sku])
    if site is None:
        raise errors.UnknownWarehouse([warehouse])
    values = {
        k: v
        for k, v in (
            ("reorder_threshold", reorder_threshold),
            ("reorder_quantity", reorder_quantity),
            ("safety_stock", safety_stock),
        )
        if v is not None
    }
    if safety_stock is not None:
        values["version"] = F("version") + 1
    # Born like every stock row (the allowance from the product, under its lock).
    stock_rows_create([(sku, warehouse)])
    if values:
        Inventory.objects.filter(product=product, warehouse=site).update(**values)
        # The cached availability entry carries thresholds (for low_stock).
        transaction.on_commit(partial(availability_cache.invalidate, [product.sku]))
    return Inventory.objects.select_related("product", "warehouse").get(
        product=product, warehouse=site
    )


def product_set_stock_policy(
    *, product: Product, stock_policy: str, backorder_limit: int
) -> Product:
    """Change a product's stock policy and copy its allowance to every inventory row.

    Lowering the limit below what a warehouse is already backordered is refused
    (AllowanceBelowBackorders) and changes nothing.
    """
    if stock_policy not in StockPolicy.values:
        raise errors.InvalidInput(f"Unknown stock policy {stock_policy!r}.")
    check_quantity(backorder_limit, name="backorder_limit", allow_zero=True)
    if product.is_bundle:
        _check_bundle_policy(stock_policy)
    if stock_policy == StockPolicy.NORMAL:
        backorder_limit = 0
    try:
        with transaction.atomic():
            product.stock_policy = stock_policy
            product.backorder_limit = backorder_limit
            product.save(update_fields=["stock_policy", "backorder_limit", "updated_at"])
            # The rows are locked in primary-key order first (the rule of
            # inventory.locks): a bare UPDATE would lock them in index order and
            # could deadlock with a reservation holding one of them.
            rows = Inventory.objects.select_for_update(no_key=True).filter(product=product)
            list(rows.order_by("pk").values_list("pk", flat=True))
            rows.update(backorder_allowance=product.allowance)
            # The cached entry carries the policy: drop it once this commits.
            transaction.on_commit(partial(availability_cache.invalidate, [product.sku]))
    except IntegrityError as exc:
        product.refresh_from_db()
        raise errors.AllowanceBelowBackorders(details={"sku": product.sku}) from exc
    return product
