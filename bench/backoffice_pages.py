"""The back office's big pages (issue 19): the inventory list at a large row count and a
2,000-line purchase order's receive page, timed in-process through Django's test client
(no network, no browser: server time only, what a page load waits for first).

    BENCH_REDIS_URL=redis://127.0.0.1:6379/3 \\
    .venv/bin/python bench/backoffice_pages.py --rows 10000000 [--warehouses 4] [--runs 7] \\
        [--drop-after]

Builds its own catalogue in its own database (BENCH_DATABASE_URL, default
`stockroom_bench_pages`): `--rows` inventory rows (SKUs x warehouses; or `--skus`),
one ledger row each, a 2,000-line purchase order to BW01, and a warehouse-staff user
working at BW01; then loads each page `--runs` times after one warm-up and prints the
median and the slowest, in ms, with the bytes each page sends.

The build (`seed_fast`) is set-based: every table filled by one INSERT … SELECT over
generate_series inside the server (what COPY would load, without shipping the rows
through the socket), with the plain secondary indexes dropped during the load and
built once afterwards, triggers and foreign-key checks off for the loading session
only (`session_replication_role = replica`; the keys are checked again in one pass
when the load is done), and stock rows inserted in (product, warehouse) order so the
unique index grows at its right edge. Ids are what the models make: random UUIDs for
products and stock rows (so a SKU range is spread over the stock index, as in
production; time-ordered product ids made a SKU prefix a contiguous run of it and
the prefix search 25 times slower), time-ordered ones for the ledger. The setup ledger
rows are dated 200 days back, so the start page's "today" panels see a normal day, not
ten million setup rows. Every 2,500th SKU holds 5 units in quality control (with their
ledger deltas), so the start page's "quality control waiting" panel has rows to find.
`--drop-after` drops the database when the figures are printed (several GB at 10 M
rows).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stockroom_bench_pages"
)
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/3")

import subprocess

from common import BENCH_DB, create_database, migrate, setup_django

PO_NUMBER = "PO-BENCH-2000"
PO_LINES = 2000


LOADED_TABLES = ("inventory_product", "inventory_inventory", "inventory_inventorytransaction")
QC_EVERY = 2500  # every 2,500th SKU holds QC_UNITS units in quality control
QC_UNITS = 5


def _plain_indexes(cursor) -> list[tuple[str, str]]:
    """(name, definition) of the loaded tables' indexes that back no constraint."""
    cursor.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = ANY(%s::regclass[])
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        """,
        [list(LOADED_TABLES)],
    )
    return cursor.fetchall()


def seed_fast(skus: int, warehouses: int, on_hand: int = 1_000_000) -> None:
    """SKUs x warehouses inventory rows, set-based (see the module docstring).
    Idempotent: nothing to do when the catalogue has that size already."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM inventory_product WHERE sku LIKE 'BENCH-%%'")
        have = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM warehouses_warehouse WHERE code LIKE 'BW%%'")
        have_wh = cursor.fetchone()[0]
    if (have, have_wh) == (skus, warehouses):
        return
    if have or have_wh:
        raise SystemExit(
            f"the bench database holds {have} SKUs x {have_wh} warehouses; drop it "
            f"(dropdb stockroom_bench_pages) to build {skus} x {warehouses}"
        )
    started = time.perf_counter()

    def step(label: str, sql: str, params=None) -> None:
        began = time.perf_counter()
        cursor.execute(sql, params)
        print(f"#   {label}: {time.perf_counter() - began:.1f}s", flush=True)

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cursor.execute("SET LOCAL synchronous_commit = off")
        indexes = _plain_indexes(cursor)
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {name}")
        step(
            "warehouses",
            """
            INSERT INTO warehouses_warehouse
                (id, code, name, address, latitude, longitude, capacity, is_active,
                 count_every_days, created_at, updated_at)
            SELECT gen_random_uuid(), 'BW' || lpad(g::text, 2, '0'), 'Bench ' || g, '',
                   47 + g * 0.7, 6 + g * 0.9, 2000000000, true, 30, now(), now()
            FROM generate_series(1, %s) g
            """,
            [warehouses],
        )
        step(
            f"{skus:,} products",
            """
            INSERT INTO inventory_product
                (id, sku, name, category, stock_policy, backorder_limit, is_bundle,
                 created_at, updated_at)
            SELECT gen_random_uuid(), 'BENCH-' || lpad(g::text, 7, '0'),
                   'Bench product ' || g, 'bench', 'normal', 0, false, now(), now()
            FROM generate_series(0, %s - 1) g
            """,
            [skus],
        )
        step(
            f"{skus * warehouses:,} inventory rows",
            """
            INSERT INTO inventory_inventory
                (id, product_id, warehouse_id, on_hand, reserved, damaged, quality_control,
                 safety_stock, backorder_allowance, reorder_threshold, reorder_quantity,
                 version, updated_at)
            SELECT gen_random_uuid(), p.id, w.id, %s, 0, 0,
                   CASE WHEN substr(p.sku, 7)::int %% %s = 0 THEN %s ELSE 0 END,
                   0, 0, 0, 0, 1, now()
            FROM inventory_product p CROSS JOIN warehouses_warehouse w
            WHERE p.sku LIKE 'BENCH-%%' AND w.code LIKE 'BW%%'
            ORDER BY p.id, w.id
            """,
            [on_hand, QC_EVERY, QC_UNITS],
        )
        step(
            f"{skus * warehouses:,} ledger rows (dated 200 days back)",
            """
            INSERT INTO inventory_inventorytransaction
                (id, product_id, warehouse_id, type, on_hand_delta, reserved_delta,
                 damaged_delta, quality_control_delta, on_hand_after, reserved_after,
                 reference_type, reference_id, reason, created_at, created_by, request_id)
            SELECT stockroom_uuid7(), i.product_id, i.warehouse_id, 'RECEIVE', i.on_hand, 0,
                   0, i.quality_control, i.on_hand, 0, 'import', 'bench-setup',
                   'benchmark data', now() - interval '200 days', 'system:bench', ''
            FROM inventory_inventory i
            """,
        )
        for name, definition in indexes:
            step(f"index {name}", definition)
        # The foreign keys were not checked while loading: check them now, one join each.
        step(
            "foreign keys checked",
            """
            SELECT count(*) FROM inventory_inventory i
            LEFT JOIN inventory_product p ON p.id = i.product_id
            LEFT JOIN warehouses_warehouse w ON w.id = i.warehouse_id
            WHERE p.id IS NULL OR w.id IS NULL
            """,
        )
        assert cursor.fetchone()[0] == 0
    with connection.cursor() as cursor:
        step("VACUUM ANALYZE", "VACUUM ANALYZE")
    print(
        f"# built {skus:,} SKUs x {warehouses} warehouses in {time.perf_counter() - started:.1f}s",
        flush=True,
    )


def build_purchase_order():
    from inventory.models import Product
    from purchasing.models import PurchaseOrder, PurchaseOrderLine, Supplier
    from warehouses.models import Warehouse

    po = PurchaseOrder.objects.filter(number=PO_NUMBER).first()
    if po is not None:
        return po
    supplier, _ = Supplier.objects.get_or_create(name="Bench supplier")
    site = Warehouse.objects.get(code="BW01")
    po = PurchaseOrder.objects.create(
        number=PO_NUMBER,
        supplier=supplier,
        warehouse=site,
        status="ordered",
        created_by="system:bench",
    )
    products = Product.objects.filter(sku__startswith="BENCH-").order_by("sku")[:PO_LINES]
    PurchaseOrderLine.objects.bulk_create(
        PurchaseOrderLine(purchase_order=po, product=p, warehouse=site, quantity_ordered=10 + n % 7)
        for n, p in enumerate(products)
    )
    return po


def users():
    from django.contrib.auth.models import User

    from backoffice.models import StaffWarehouse
    from backoffice.roles import WAREHOUSE_STAFF, roles_setup
    from warehouses.models import Warehouse

    roles_setup()
    root, _ = User.objects.get_or_create(
        username="bench-root", defaults={"is_staff": True, "is_superuser": True}
    )
    clerk, created = User.objects.get_or_create(username="bench-clerk", defaults={"is_staff": True})
    if created:
        from django.contrib.auth.models import Group

        clerk.groups.add(Group.objects.get(name=WAREHOUSE_STAFF))
        StaffWarehouse.objects.create(user=clerk, warehouse=Warehouse.objects.get(code="BW01"))
    return root, clerk


def timed(client, url, runs: int) -> tuple[float, float, int, int]:
    response = client.get(url)  # warm-up (and a check)
    assert response.status_code == 200, (url, response.status_code)
    samples = []
    size = 0
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)
        if response.streaming:
            size = sum(len(chunk) for chunk in response.streaming_content)
        else:
            size = len(response.content)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(samples), max(samples), size, response.status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, help="inventory rows (SKUs = rows / warehouses)")
    parser.add_argument("--skus", type=int, default=250_000)
    parser.add_argument("--warehouses", type=int, default=4)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--drop-after", action="store_true", help="drop the bench database")
    args = parser.parse_args()
    if args.rows:
        args.skus = args.rows // args.warehouses

    create_database(BENCH_DB)
    setup_django(BENCH_DB)
    migrate()
    seed_fast(args.skus, args.warehouses)
    po = build_purchase_order()
    root, clerk = users()

    from django.db import connection
    from django.test import Client

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE inventory_product; ANALYZE purchasing_purchaseorderline")
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE relname = 'inventory_inventory'"
        )
        rows = cursor.fetchone()[0]

    manager, staff = Client(), Client()
    manager.force_login(root)
    staff.force_login(clerk)
    inventory = "/admin/inventory/inventory/"
    returns = "/admin/backoffice/returns/"
    from inventory.models import Inventory

    qc_row = (
        Inventory.objects.filter(quality_control__gt=0, warehouse__code="BW01")
        .values_list("pk", flat=True)
        .first()
    )
    receive = f"/admin/purchasing/purchaseorder/{po.pk}/receive/"
    pages = [
        ("inventory list, first page", manager, inventory),
        ("inventory list, exact SKU (lower case)", manager, f"{inventory}?q=bench-0123456"),
        ("inventory list, SKU prefix (10 SKUs)", manager, f"{inventory}?q=bench-012345"),
        ("inventory list, SKU prefix (100,000 SKUs)", manager, f"{inventory}?q=BENCH-01"),
        ("inventory list, part of the name", manager, f"{inventory}?q=product+12345"),
        (
            "inventory list, sorted by on hand (whole table: refused, hint)",
            manager,
            f"{inventory}?o=-3",
        ),
        (
            "inventory list, SKU prefix (40,000 rows) sorted by on hand",
            manager,
            f"{inventory}?q=bench-012&o=-3",
        ),
        ("inventory list, staff default (my warehouses)", staff, inventory),
        (
            "inventory list, staff default, SKU prefix (any case)",
            staff,
            f"{inventory}?q=bench-01234",
        ),
        (
            "inventory CSV export, SKU prefix (4 x 10 rows)",
            manager,
            "/admin/inventory/inventory/export.csv?q=bench-012345",
        ),
        ("start page, warehouse staff", staff, "/admin/"),
        ("start page, superuser", manager, "/admin/"),
        (f"PO receive page, {PO_LINES} lines (page 1 of 20)", staff, receive),
        (f"PO receive page, {PO_LINES} lines, page 20", staff, f"{receive}?p=20"),
        (f"PO receive page, {PO_LINES} lines, filtered", staff, f"{receive}?q=bench-00019"),
        (
            f"PO close-short page, {PO_LINES} lines (page 1 of 20)",
            staff,
            f"/admin/purchasing/purchaseorder/{po.pk}/close-short/",
        ),
        ("returns dock, an order id with nothing shipped", staff, returns + "?order=SO-404"),
        ("state move page, one row", staff, f"/admin/backoffice/states/?row={qc_row}"),
        ("scan lookup (SKU in lower case)", staff, "/admin/backoffice/lookup/?code=bench-0001234"),
    ]
    print(
        f"# {rows:,} inventory rows ({args.skus:,} SKUs x {args.warehouses} warehouses); "
        f"{args.runs} runs per page after a warm-up; server time in-process"
    )
    print(f"{'page':62} {'median ms':>10} {'max ms':>8} {'bytes':>9}")
    for label, client, url in pages:
        median, slowest, size, _ = timed(client, url, args.runs)
        print(f"{label:62} {median:10.1f} {slowest:8.1f} {size:9,}", flush=True)

    if args.drop_after:
        connection.close()
        name = BENCH_DB.rsplit("/", 1)[1]
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", name], check=True)
        print(f"# dropped {name}")


if __name__ == "__main__":
    main()
