"""Benchmark: the daily reorder batch over many inventory rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/stockroom_purchasing \\
        .venv/bin/python bench/reorder_batch.py --products 25000 --warehouses 4

Creates its data set-based in SQL (products, warehouses, one inventory row per
product and warehouse, suppliers, one preferred supplier per product with mixed
pack sizes), with about `--below` of the rows under their reorder threshold.
Then it runs `purchasing.services.reorder_batch()` twice — the first pass orders
every row below threshold, the second finds nothing new (idempotency) — and
times a few per-row checks for comparison. Prints time and rows per second.

Only rows whose SKU, warehouse code or supplier name start with BENCH are created,
and they are removed before the run and (unless --keep) after it. The inventory
rows are inserted directly, without ledger rows: use a scratch database.
Needs PostgreSQL; the database is migrated first.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventory_site.settings.base")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from purchasing import services  # noqa: E402

CLEANUP = [
    """DELETE FROM purchasing_purchaseorderline WHERE warehouse_id IN
       (SELECT id FROM warehouses_warehouse WHERE code LIKE 'BENCH-%')""",
    """DELETE FROM purchasing_purchaseorder WHERE warehouse_id IN
       (SELECT id FROM warehouses_warehouse WHERE code LIKE 'BENCH-%')""",
    """DELETE FROM purchasing_productsupplier WHERE supplier_id IN
       (SELECT id FROM purchasing_supplier WHERE name LIKE 'BENCH %')""",
    "DELETE FROM purchasing_supplier WHERE name LIKE 'BENCH %'",
    """DELETE FROM inventory_inventory WHERE warehouse_id IN
       (SELECT id FROM warehouses_warehouse WHERE code LIKE 'BENCH-%')""",
    "DELETE FROM inventory_product WHERE sku LIKE 'BENCH-%'",
    "DELETE FROM warehouses_warehouse WHERE code LIKE 'BENCH-%'",
]


def create_data(cursor, products: int, warehouses: int, suppliers: int, below: float) -> None:
    # Creating a million rows takes longer than the app's 30 s statement_timeout;
    # the batch itself runs under the normal timeout again (RESET below).
    cursor.execute("SET statement_timeout = 0")
    cursor.execute(
        """
        INSERT INTO warehouses_warehouse
            (id, code, name, address, latitude, longitude, capacity, is_active,
             created_at, updated_at)
        SELECT gen_random_uuid(), 'BENCH-' || g, 'Bench warehouse ' || g, '', NULL, NULL,
               NULL, TRUE, now(), now()
        FROM generate_series(1, %s) g
        """,
        [warehouses],
    )
    cursor.execute(
        """
        INSERT INTO inventory_product
            (id, sku, name, category, weight_g, length_mm, width_mm, height_mm,
             stock_policy, backorder_limit, created_at, updated_at)
        SELECT gen_random_uuid(), 'BENCH-' || lpad(g::text, 8, '0'), 'Bench product ' || g,
               'bench', 500, NULL, NULL, NULL, 'normal', 0, now(), now()
        FROM generate_series(1, %s) g
        """,
        [products],
    )
    cursor.execute(
        """
        INSERT INTO purchasing_supplier
            (name, contact_name, email, phone, lead_time_min_days, lead_time_max_days,
             is_active, notes, created_at, updated_at)
        SELECT 'BENCH supplier ' || g, '', '', '', 2 + g %% 3, 5 + g %% 3, TRUE, '', now(), now()
        FROM generate_series(1, %s) g
        """,
        [suppliers],
    )
    cursor.execute(
        """
        WITH s AS (
            SELECT id, row_number() OVER (ORDER BY id) - 1 AS n, count(*) OVER () AS total
            FROM purchasing_supplier WHERE name LIKE 'BENCH %%'
        ), p AS (
            SELECT id, row_number() OVER (ORDER BY sku) AS n
            FROM inventory_product WHERE sku LIKE 'BENCH-%%'
        )
        INSERT INTO purchasing_productsupplier
            (product_id, supplier_id, supplier_sku, pack_size, is_preferred,
             created_at, updated_at)
        SELECT p.id, s.id, 'S-' || p.n, (ARRAY[1, 6, 12, 24])[1 + p.n %% 4], TRUE, now(), now()
        FROM p JOIN s ON s.n = p.n %% s.total
        """,
        [],
    )
    cursor.execute(
        """
        INSERT INTO inventory_inventory
            (id, product_id, warehouse_id, on_hand, reserved, backorder_allowance,
             reorder_threshold, reorder_quantity, version, updated_at)
        SELECT gen_random_uuid(), p.id, w.id,
               CASE WHEN random() < %s THEN floor(random() * 10)::int
                    ELSE 10 + floor(random() * 100)::int END,
               0, 0, 10, 50, 0, now()
        FROM inventory_product p CROSS JOIN warehouses_warehouse w
        WHERE p.sku LIKE 'BENCH-%%' AND w.code LIKE 'BENCH-%%'
        """,
        [below],
    )
    cursor.execute(
        "ANALYZE inventory_inventory; ANALYZE inventory_product; "
        "ANALYZE purchasing_productsupplier; ANALYZE purchasing_purchaseorderline"
    )
    cursor.execute("RESET statement_timeout")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=25_000)
    parser.add_argument("--warehouses", type=int, default=4)
    parser.add_argument("--suppliers", type=int, default=200)
    parser.add_argument("--below", type=float, default=0.2, help="share of rows below threshold")
    parser.add_argument("--chunk-size", type=int, default=50_000)
    parser.add_argument("--keep", action="store_true", help="leave the data in the database")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Set DATABASE_URL to a PostgreSQL database.")

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 0")
        for sql in CLEANUP:
            cursor.execute(sql)
        started = time.monotonic()
        create_data(cursor, args.products, args.warehouses, args.suppliers, args.below)
        setup = time.monotonic() - started
        cursor.execute("SELECT count(*) FROM inventory_inventory")
        (rows,) = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM inventory_inventory WHERE on_hand < reorder_threshold")
        (below,) = cursor.fetchone()
    print(f"data: {rows:,} inventory rows ({below:,} below threshold), created in {setup:.1f}s")

    first = services.reorder_batch(chunk_size=args.chunk_size)
    print(
        f"batch, first run:  {first.seconds:7.2f}s  {rows / first.seconds:12,.0f} rows/s  "
        f"{first.chunks} chunks, {first.candidates:,} candidates, "
        f"{first.orders_created:,} POs, {first.lines_created:,} lines"
    )
    second = services.reorder_batch(chunk_size=args.chunk_size)
    print(
        f"batch, second run: {second.seconds:7.2f}s  {rows / second.seconds:12,.0f} rows/s  "
        f"{second.orders_created:,} POs, {second.lines_created:,} lines (nothing new expected)"
    )

    # The per-row check on rows that are now covered, for comparison.
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT i.id FROM inventory_inventory i
               JOIN warehouses_warehouse w ON w.id = i.warehouse_id
               WHERE w.code LIKE 'BENCH-%%' AND i.on_hand < i.reorder_threshold LIMIT 200""",
            [],
        )
        sample = [pk for (pk,) in cursor.fetchall()]
    started = time.monotonic()
    for pk in sample:
        services.reorder_check(inventory_id=pk)
    per_check = (time.monotonic() - started) / max(len(sample), 1)
    print(
        f"per-row check:     {per_check * 1000:7.2f}ms each (a covered row), "
        f"i.e. {below * per_check:,.0f}s if the batch looped over every row below threshold"
    )

    if not args.keep:
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 0")
            for sql in CLEANUP:
                cursor.execute(sql)


if __name__ == "__main__":
    main()
