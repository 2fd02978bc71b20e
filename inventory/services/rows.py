"""Inventory rows: resolving (sku, warehouse) pairs, creating rows, locking them.

A module of its own, below the operations: the stock verbs (`stock`), both
reservation engines (`reservations`, `reserve_sql`), the catalogue and bulk work
all resolve, create or lock rows, and none of them should import another verb's
module to do so. `stock_rows_create` is the one way inventory rows are born;
`in_transaction` runs an operation in one transaction, creating the rows it
found missing first, holding no locks (the rule of `inventory.locks`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.db import connection, transaction

from warehouses.models import Warehouse

from .. import errors
from ..locks import lock_inventory_rows
from ..models import Inventory, Product


class RowsMissing(Exception):
    """Inventory rows must be created before locking; raised to roll back and retry."""

    def __init__(self, pairs: set[tuple[str, str]]) -> None:
        self.pairs = pairs


def lock_rows(
    pairs: Iterable[tuple[str, str]],
    *,
    create_missing: bool,
    require_active: Iterable[str] = (),
) -> dict[tuple[str, str], Inventory]:
    """Lock the rows for (sku, warehouse) pairs; unknown SKUs/warehouses raise.

    With `create_missing`, a known product and warehouse without a row yet raise
    `RowsMissing`: `in_transaction` rolls back (releasing every lock), creates
    the empty rows holding no locks, and runs the operation again. Creating rows
    while holding locks could deadlock two transactions that each create a row
    the other is about to lock. Without `create_missing`, missing rows are absent
    from the result.
    """
    pairs = set(pairs)
    rows = lock_inventory_rows(pairs)
    missing = pairs - rows.keys()
    if missing:
        check_known(missing)
        if create_missing:
            raise RowsMissing(missing)
    inactive = {code for (_, code), row in rows.items() if not row.warehouse.is_active}
    inactive &= set(require_active)
    if inactive:
        raise errors.WarehouseInactive(list(inactive))
    return rows


def lock_one_row(sku: str, warehouse: str) -> Inventory:
    """Lock one (active-warehouse) row, creating it empty if the product has none there."""
    return lock_rows([(sku, warehouse)], create_missing=True, require_active=[warehouse])[
        (sku, warehouse)
    ]


def check_known(
    pairs: set[tuple[str, str]],
) -> tuple[dict[str, Product], dict[str, Any]]:
    """The products and warehouses the pairs name; an unknown one raises
    UnknownSku / UnknownWarehouse."""
    skus = {sku for sku, _ in pairs}
    codes = {code for _, code in pairs}
    products = {p.sku: p for p in Product.objects.filter(sku__in=skus)}
    warehouses = {w.code: w for w in Warehouse.objects.filter(code__in=codes)}
    if skus - products.keys():
        raise errors.UnknownSku(list(skus - products.keys()))
    if codes - warehouses.keys():
        raise errors.UnknownWarehouse(list(codes - warehouses.keys()))
    return products, warehouses


def stock_rows_create(pairs: Iterable[tuple[str, str]]) -> None:
    """The one way inventory rows are born: empty (on hand 0) rows for (sku,
    warehouse code) pairs that have none; existing rows are left alone. Every
    caller that needs a row that may not exist yet comes here (receive, adjust,
    transfer, reserve, reorder settings, bulk receive, purchase-order receipts,
    cycle counts, reconcile --fix).

    Locks (the order of `inventory.locks`): the products, FOR SHARE in primary-key
    order, then the new rows are inserted in (product, warehouse) order. A
    stock-policy change holds its product row for update until it commits, so
    it conflicts: a change in flight commits first and the allowance the row is
    born with is the new one; a change that starts later waits for this
    transaction and then updates the new row too. On PostgreSQL the allowance is
    set by the database itself (trigger `inventory_allowance_from_product`,
    migration 0010), whatever the INSERT says, so a raw SQL insert is born right
    too. Call it before locking any inventory row in the transaction.
    Unknown SKUs or warehouses raise UnknownSku / UnknownWarehouse.
    """
    pairs = set(pairs)
    if not pairs:
        return
    products, warehouses = check_known(pairs)
    ids = sorted({(products[sku].pk, warehouses[code].pk) for sku, code in pairs})
    if connection.vendor == "postgresql":
        create_rows_sql(
            "SELECT * FROM unnest(%s::uuid[], %s::uuid[]) AS w(product_id, warehouse_id)",
            [[p for p, _ in ids], [w for _, w in ids]],
        )
        return
    # SQLite (embedded, one writer at a time): the same rows through the ORM.
    with transaction.atomic():
        by_pk = {p.pk: p for p in Product.objects.filter(pk__in={p for p, _ in ids})}
        Inventory.objects.bulk_create(
            [
                Inventory(
                    product_id=p,
                    warehouse_id=w,
                    backorder_allowance=by_pk[p].allowance,
                )
                for p, w in ids
            ],
            ignore_conflicts=True,
        )


def create_rows_sql(source_sql: str, params: Any) -> int:
    """PostgreSQL: create the missing inventory rows for the (product_id,
    warehouse_id) pairs that `source_sql` selects; how many were created.

    The set-based core of `stock_rows_create`, which bulk receive calls with its
    staging table as the source. Products are locked FOR SHARE in pk order first
    (a policy change in flight commits before; one that starts waits for us).
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT count(*) FROM (
                SELECT p.id FROM inventory_product p
                WHERE p.id IN (SELECT w.product_id FROM ({source_sql}) w)
                ORDER BY p.id FOR SHARE OF p
            ) locked
            """,
            params,
        )
        # backorder_allowance: the trigger sets it from the (locked) product row.
        cursor.execute(
            f"""
            INSERT INTO inventory_inventory (id, product_id, warehouse_id, on_hand, reserved,
                backorder_allowance, reorder_threshold, reorder_quantity, version, updated_at)
            SELECT gen_random_uuid(), w.product_id, w.warehouse_id, 0, 0, 0, 0, 0, 0, now()
            FROM (SELECT DISTINCT product_id, warehouse_id FROM ({source_sql}) s) w
            WHERE NOT EXISTS (
                SELECT 1 FROM inventory_inventory i
                WHERE i.product_id = w.product_id AND i.warehouse_id = w.warehouse_id)
            ORDER BY w.product_id, w.warehouse_id
            ON CONFLICT (product_id, warehouse_id) DO NOTHING
            """,
            params,
        )
        return cursor.rowcount


def in_transaction(body: Callable[[], Any]) -> Any:
    """Run `body` in one transaction, creating missing inventory rows first if it asks."""
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return body()
        except RowsMissing as missing:
            stock_rows_create(missing.pairs)
    raise RuntimeError("inventory rows could not be created")  # pragma: no cover
