"""The back office's big pages (issue 19): the inventory list at a large row count and a
2,000-line purchase order's receive page, timed in-process through Django's test client
(no network, no browser: server time only, what a page load waits for first).

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/stockroom_bench_h13 \\
    REDIS_URL=redis://127.0.0.1:6379/3 \\
    .venv/bin/python bench/backoffice_pages.py [--skus 250000] [--warehouses 4] [--runs 7]

Builds its own catalogue (`common.ensure_catalogue`, set-based SQL: SKUs x warehouses
inventory rows, one ledger row each) in the bench database, a 2,000-line purchase
order to BW01, and a warehouse-staff user working at BW01; then loads each page
`--runs` times after one warm-up and prints the median and the slowest, in ms, with
the rows each page shows. The default, 250,000 SKUs x 4 warehouses, is 1 M inventory
rows (10 M takes too long to build on a shared 2-core box; the queries are index
scans whose cost does not grow with the table, see docs/PERFORMANCE.md).
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
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stockroom_bench_h13"
)
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/3")

from common import BENCH_DB, create_database, ensure_catalogue, migrate, setup_django

PO_NUMBER = "PO-BENCH-2000"
PO_LINES = 2000


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
    parser.add_argument("--skus", type=int, default=250_000)
    parser.add_argument("--warehouses", type=int, default=4)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    create_database(BENCH_DB)
    setup_django(BENCH_DB)
    migrate()
    ensure_catalogue(args.skus, args.warehouses)
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
    receive = f"/admin/purchasing/purchaseorder/{po.pk}/receive/"
    pages = [
        ("inventory list, first page", manager, inventory),
        ("inventory list, exact SKU (lower case)", manager, f"{inventory}?q=bench-0123456"),
        ("inventory list, SKU prefix (10 SKUs)", manager, f"{inventory}?q=bench-012345"),
        ("inventory list, SKU prefix (100,000 SKUs)", manager, f"{inventory}?q=BENCH-01"),
        ("inventory list, part of the name", manager, f"{inventory}?q=product+12345"),
        (
            "inventory list, sorted by on hand (1 M rows: refused, hint)",
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
            "inventory CSV export, SKU prefix (4 x 10 rows)",
            manager,
            "/admin/inventory/inventory/export.csv?q=bench-012345",
        ),
        ("start page, warehouse staff", staff, "/admin/"),
        ("start page, superuser", manager, "/admin/"),
        (f"PO receive page, {PO_LINES} lines (page 1 of 20)", staff, receive),
        (f"PO receive page, {PO_LINES} lines, page 20", staff, f"{receive}?p=20"),
        (f"PO receive page, {PO_LINES} lines, filtered", staff, f"{receive}?q=bench-00019"),
        ("scan lookup (SKU in lower case)", staff, "/admin/backoffice/lookup/?code=bench-0001234"),
    ]
    print(
        f"# {rows:,} inventory rows ({args.skus:,} SKUs x {args.warehouses} warehouses); "
        f"{args.runs} runs per page after a warm-up; server time in-process"
    )
    print(f"{'page':58} {'median ms':>10} {'max ms':>8} {'bytes':>9}")
    for label, client, url in pages:
        median, slowest, size, _ = timed(client, url, args.runs)
        print(f"{label:58} {median:10.1f} {slowest:8.1f} {size:9,}", flush=True)


if __name__ == "__main__":
    main()
