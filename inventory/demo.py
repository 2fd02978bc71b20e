"""Demo data: a realistic catalogue and its opening stock, from 50 SKUs to millions.

On PostgreSQL everything is generated set-based in SQL, in chunks of
`SEED_CHUNK` products (one transaction each, so an interrupted run resumes):
products, one inventory row per product and warehouse, and a RECEIVE ledger row
for every row that starts with stock, so `reconcile` is clean from the start.
Values are derived from a hash of the SKU number and the seed: the same
arguments always give the same catalogue.

Idempotent: existing products and inventory rows are left alone; only missing
ones are created (with their opening stock). On SQLite (the embedded `make run`
default) a small catalogue is created through `stock_receive` instead.

Names fit their category ("Eco Watering can 10" is garden). The first
`len(SHOWCASE)` SKUs (DEMO-000000 ... DEMO-000005) are not generated: they are
the documented demo SKUs that README.md and docs/API.md's examples use, with the
same names, policies and opening stock in BER, HAM and MUC on every engine
(tests/docs/test_docs_run.py runs the docs' examples against them).
"""

from __future__ import annotations

import random
from contextlib import nullcontext
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from warehouses.models import Warehouse

from . import errors, services
from .models import Inventory, Product, ReferenceType, StockPolicy, TransactionType
from .services.bulk import UUID7_SQL, NullProgress, Progress

CITIES = [
    ("BER", "Berlin", 52.520008, 13.404954),
    ("HAM", "Hamburg", 53.551086, 9.993682),
    ("MUC", "Munich", 48.135124, 11.581981),
    ("CGN", "Cologne", 50.937531, 6.960279),
    ("FRA", "Frankfurt", 50.110924, 8.682127),
    ("LEJ", "Leipzig", 51.339695, 12.373075),
    ("STR", "Stuttgart", 48.775845, 9.182932),
    ("DUS", "Düsseldorf", 51.227741, 6.773456),
    ("DRS", "Dresden", 51.050409, 13.737262),
    ("NUE", "Nuremberg", 49.452102, 11.076665),
]
# Beyond the ten cities, sites are spread over the same region (Germany's bounding box).
REGION = {"lat": (47.3, 55.0), "lon": (5.9, 15.0)}
CATEGORIES = ["apparel", "footwear", "kitchen", "garden", "toys", "electronics", "books"]
# What each category sells: a product's noun always comes from its own category.
NOUNS_BY_CATEGORY = {
    "apparel": ["T-shirt", "Hoodie", "Rain jacket", "Wool socks"],
    "footwear": ["Sneaker", "Trail running shoe", "Sandal", "Hiking boot"],
    "kitchen": ["Mug", "Chef's knife", "Cast-iron pan", "Teapot"],
    "garden": ["Trowel", "Watering can", "Pruning shears", "Seed tray"],
    "toys": ["Wooden puzzle", "Building blocks", "Kite", "Plush bear"],
    "electronics": ["Headphones", "Desk lamp", "Power bank", "Bluetooth speaker"],
    "books": ["Notebook", "Cookbook", "Field guide", "Sketchbook"],
}
NOUNS_PER_CATEGORY = 4
# Flattened for SQL: category i's nouns are NOUNS[i * 4 : i * 4 + 4].
NOUNS = [noun for category in CATEGORIES for noun in NOUNS_BY_CATEGORY[category]]
ADJECTIVES = ["Classic", "Eco", "Pro", "Mini", "Deluxe", "Urban", "Retro", "Smart"]


@dataclass(frozen=True)
class ShowcaseProduct:
    """A documented demo SKU: fixed name, policy and opening stock per warehouse code."""

    name: str
    stock_policy: str
    stock: dict[str, int]
    # (warehouse code -> (reorder threshold, reorder quantity)); other rows have none.
    reorder: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def backorder_limit(self) -> int:
        return 0 if self.stock_policy == StockPolicy.NORMAL else 20


# DEMO-000000 ... DEMO-000005, in the categories their numbers give (n % 7).
# README.md ("Demo data") and docs/API.md describe them; keep the three in step.
SHOWCASE = [
    ShowcaseProduct("Classic T-shirt, size M", StockPolicy.NORMAL, {"BER": 10, "HAM": 4}),
    ShowcaseProduct("Trail running shoe", StockPolicy.BACKORDER, {}),
    ShowcaseProduct("Stoneware mug", StockPolicy.NORMAL, {"BER": 40, "HAM": 7, "MUC": 15}),
    ShowcaseProduct("Garden trowel", StockPolicy.NORMAL, {"BER": 3}, reorder={"BER": (10, 40)}),
    ShowcaseProduct("Wooden puzzle", StockPolicy.PREORDER, {}),
    ShowcaseProduct("Noise-cancelling headphones", StockPolicy.NORMAL, {}),
]
# About one row in five starts with nothing, and about one in five below its
# reorder threshold, so availability, backorders and reorders all have work.
OPENING_STOCK = [0, 3, 8, 15, 40, 40, 120, 120, 250]
THRESHOLDS = [0, 0, 5, 10, 20]
SEED_REFERENCE = "seed-demo"
SEED_ACTOR = "system:seed-demo"
SEED_CHUNK = 50_000
MAX_WAREHOUSES = 500


@dataclass
class DemoSeedResult:
    warehouses: int = 0
    new_warehouses: int = 0
    new_products: int = 0
    new_inventory_rows: int = 0
    ledger_rows: int = 0


def demo_sku(n: int) -> str:
    return f"DEMO-{n:06d}"


def _policy(n: int) -> str:
    if n % 17 == 5:
        return StockPolicy.BACKORDER
    if n % 29 == 7:
        return StockPolicy.PREORDER
    return StockPolicy.NORMAL


def demo_catalogue_seed(
    *, skus: int, warehouses: int, seed: int = 42, progress: Progress | None = None
) -> DemoSeedResult:
    """Create `warehouses` sites and `skus` products with opening stock in every site.

    Stock goes on the ledger (one RECEIVE per row with stock, reference
    import/seed-demo, actor system:seed-demo). Seeding does not publish to the
    after-commit listeners: it only creates rows nothing can have cached yet.
    """
    if not 1 <= warehouses <= MAX_WAREHOUSES:
        raise errors.InvalidInput(f"warehouses must be from 1 to {MAX_WAREHOUSES}.")
    if skus < 1:
        raise errors.InvalidInput("skus must be at least 1.")
    progress = progress or NullProgress()
    result = DemoSeedResult(warehouses=warehouses)
    sites = _ensure_warehouses(warehouses, seed, result)
    codes = [code for code, _ in sites]
    try:
        if connection.vendor == "postgresql":
            _seed_sql(skus, codes, seed, progress, result)
        else:
            _seed_orm(skus, codes, seed, result)
        # After the generated part, so that an empty database still gets its
        # set-based initial load.
        _seed_showcase(min(skus, len(SHOWCASE)), codes, result)
    finally:
        progress.close()
    return result


def _seed_showcase(count: int, codes: list[str], result: DemoSeedResult) -> None:
    """The documented SKUs, through the services: the same rows on every engine.

    A row is created (with its reorder settings and opening stock) only if it is
    missing, so a second run, or one after the docs' examples, changes nothing.
    """
    for n, item in enumerate(SHOWCASE[:count]):
        product, created = Product.objects.get_or_create(
            sku=demo_sku(n),
            defaults={
                "name": item.name,
                "category": CATEGORIES[n % len(CATEGORIES)],
                "weight_g": 200 + 100 * n,
                "length_mm": 300,
                "width_mm": 200,
                "height_mm": 100,
                "stock_policy": item.stock_policy,
                "backorder_limit": item.backorder_limit,
            },
        )
        result.new_products += created
        existing = set(
            Inventory.objects.filter(product=product).values_list("warehouse__code", flat=True)
        )
        for code in codes:
            if code in existing:
                continue
            threshold, reorder_quantity = item.reorder.get(code, (0, 0))
            services.inventory_set_reorder(
                sku=product.sku,
                warehouse=code,
                reorder_threshold=threshold,
                reorder_quantity=reorder_quantity,
            )
            result.new_inventory_rows += 1
            if item.stock.get(code):
                services.stock_receive(
                    sku=product.sku,
                    warehouse=code,
                    quantity=item.stock[code],
                    actor=SEED_ACTOR,
                    reference=services.Reference(ReferenceType.IMPORT, SEED_REFERENCE),
                    reason="demo data",
                )
                result.ledger_rows += 1


def _ensure_warehouses(count: int, seed: int, result: DemoSeedResult) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    sites = []
    for index in range(count):
        if index < len(CITIES):
            code, city, lat, lon = CITIES[index]
        else:
            code, city = f"WH{index + 1:03d}", f"Site {index + 1}"
            lat = round(rng.uniform(*REGION["lat"]), 6)
            lon = round(rng.uniform(*REGION["lon"]), 6)
        site, created = Warehouse.objects.get_or_create(
            code=code,
            defaults={
                "name": f"{city} fulfilment centre",
                "address": f"{city}, Germany",
                "latitude": lat,
                "longitude": lon,
                "capacity": 500_000 + 100_000 * (index % 5),
            },
        )
        result.new_warehouses += created
        sites.append((site.code, str(site.pk)))
    return sites


# -- PostgreSQL: set-based ---------------------------------------------------

_SKU_SQL = "'DEMO-' || CASE WHEN n < 1000000 THEN lpad(n::text, 6, '0') ELSE n::text END"


# One deterministic pseudo-random bigint per SKU number (and per SKU x warehouse),
# from which every generated attribute takes its own digits.
_H = "abs(hashtextextended(n::text, %(seed)s))"
_HW = "abs(hashtextextended(n::text || w.code, %(seed)s))"

_PRODUCTS_SQL = f"""
INSERT INTO inventory_product (id, sku, name, category, weight_g, length_mm, width_mm,
    height_mm, stock_policy, backorder_limit, created_at, updated_at)
SELECT {UUID7_SQL}, {_SKU_SQL},
       (%(adjectives)s::text[])[1 + h %% %(n_adjectives)s] || ' '
         || (%(nouns)s::text[])[1 + (n %% %(n_categories)s) * %(per_category)s
                                  + (h / 8) %% %(per_category)s] || ' ' || n,
       (%(categories)s::text[])[1 + n %% %(n_categories)s],
       50 + (h / 64) %% 4950, 50 + (h / 316800) %% 550, 50 + (h / 174240000) %% 350,
       10 + (h / 60984000000) %% 290,
       CASE WHEN n %% 17 = 5 THEN 'backorder' WHEN n %% 29 = 7 THEN 'preorder'
            ELSE 'normal' END,
       CASE WHEN n %% 17 = 5 OR n %% 29 = 7 THEN 20 ELSE 0 END,
       %(now)s, %(now)s
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS n,
     LATERAL (SELECT {_H} AS h) r
ON CONFLICT (sku) DO NOTHING
"""

# {only_missing} / {on_conflict}: filled in per run (an initial load needs neither).
# The sku range lets the planner read just the chunk's products by index
# (SKUs of six digits sort like their numbers).
_STOCK_SQL = f"""
WITH new_rows AS (
    INSERT INTO inventory_inventory (id, product_id, warehouse_id, on_hand, reserved,
        backorder_allowance, reorder_threshold, reorder_quantity, version, updated_at)
    SELECT {UUID7_SQL}, p.id, w.id, q.on_hand, 0, p.backorder_limit, q.threshold,
           q.threshold * 4, CASE WHEN q.on_hand > 0 THEN 1 ELSE 0 END, %(now)s
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS n
    JOIN inventory_product p ON p.sku = {_SKU_SQL}
      AND (%(hi)s >= 1000000 OR p.sku BETWEEN %(lo_sku)s AND %(hi_sku)s)
    CROSS JOIN (SELECT id, code FROM warehouses_warehouse WHERE code = ANY(%(codes)s)) w
    CROSS JOIN LATERAL (SELECT {_HW} AS h) r
    CROSS JOIN LATERAL (
        SELECT (%(stock)s::int[])[1 + r.h %% %(n_stock)s] AS on_hand,
               (%(thresholds)s::int[])[1 + (r.h / %(n_stock)s) %% %(n_thresholds)s] AS threshold
    ) q
    {{only_missing}}
    {{on_conflict}}
    RETURNING product_id, warehouse_id, on_hand
), ledger AS (
    INSERT INTO inventory_inventorytransaction (id, type, on_hand_delta, reserved_delta,
        on_hand_after, reserved_after, reference_type, reference_id, reason, created_at,
        created_by, request_id, warehouse_id, product_id)
    SELECT {UUID7_SQL}, %(receive)s, on_hand, 0, on_hand, 0, %(ref_type)s, %(ref_id)s,
           'demo data', %(now)s, %(actor)s, '', warehouse_id, product_id
    FROM new_rows WHERE on_hand > 0
    RETURNING 1
)
SELECT (SELECT count(*) FROM new_rows), (SELECT count(*) FROM ledger)
"""
_ONLY_MISSING = """
    WHERE NOT EXISTS (SELECT 1 FROM inventory_inventory i
                      WHERE i.product_id = p.id AND i.warehouse_id = w.id)
"""
_STOCK_TABLES = ("inventory_inventory", "inventory_inventorytransaction")


def _seed_sql(
    skus: int, codes: list[str], seed: int, progress: Progress, result: DemoSeedResult
) -> None:
    """Chunked inserts. On an empty stock database ("initial load") the whole seed
    is one transaction whose foreign keys are checked once, set-based, at the end."""
    params = {
        "seed": seed,
        "adjectives": ADJECTIVES, "n_adjectives": len(ADJECTIVES),
        "nouns": NOUNS, "per_category": NOUNS_PER_CATEGORY,
        "categories": CATEGORIES, "n_categories": len(CATEGORIES),
        "stock": OPENING_STOCK, "n_stock": len(OPENING_STOCK),
        "thresholds": THRESHOLDS, "n_thresholds": len(THRESHOLDS),
        "codes": codes, "receive": TransactionType.RECEIVE,
        "ref_type": ReferenceType.IMPORT, "ref_id": SEED_REFERENCE, "actor": SEED_ACTOR,
    }  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 0")
        cursor.execute("SET work_mem = '64MB'")
        cursor.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM inventory_inventory) "
            "AND NOT EXISTS (SELECT 1 FROM inventory_inventorytransaction)"
        )
        initial_load = cursor.fetchone()[0] and not connection.in_atomic_block
    stock_sql = _STOCK_SQL.replace("{only_missing}", "" if initial_load else _ONLY_MISSING).replace(
        "{on_conflict}", "" if initial_load else "ON CONFLICT (product_id, warehouse_id) DO NOTHING"
    )
    first = len(SHOWCASE)  # the showcase SKUs are created by _seed_showcase
    try:
        with transaction.atomic() if initial_load else nullcontext():
            dropped = drop_stock_foreign_keys() if initial_load else []
            progress.phase("products", total=max(skus - first, 0))
            for lo in range(first, skus, SEED_CHUNK):
                hi = min(lo + SEED_CHUNK, skus) - 1
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(_PRODUCTS_SQL, {**params, "lo": lo, "hi": hi,
                                                   "now": timezone.now()})  # fmt: skip
                    result.new_products += cursor.rowcount
                progress.advance(hi - lo + 1)
            progress.phase("stock rows", total=max(skus - first, 0) * len(codes))
            for lo in range(first, skus, SEED_CHUNK):
                hi = min(lo + SEED_CHUNK, skus) - 1
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(stock_sql, {**params, "lo": lo, "hi": hi,
                                               "lo_sku": demo_sku(lo), "hi_sku": demo_sku(hi),
                                               "now": timezone.now()})  # fmt: skip
                    rows, ledger = cursor.fetchone()
                    result.new_inventory_rows += rows
                    result.ledger_rows += ledger
                progress.advance((hi - lo + 1) * len(codes))
            if dropped:
                progress.phase("checking foreign keys")
                restore_stock_foreign_keys(dropped)
        progress.phase("analyze")
        with connection.cursor() as cursor:
            for table in ("inventory_product", *_STOCK_TABLES):
                cursor.execute(f"ANALYZE {table}")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")
            cursor.execute("RESET work_mem")


def drop_stock_foreign_keys() -> list[tuple[str, str, str]]:
    """Drop the stock tables' foreign keys for an initial load, returning how to restore them.

    Per-row foreign-key checks (deferred to commit) cost more than the inserts
    themselves at ten million rows; re-adding the constraint checks every row
    in one join. Call it only inside the transaction that loads (the initial
    demo seed, the bench catalogue build), so the constraints are never missing
    for anyone else: the tables are locked until commit, and a failure rolls
    the drop back. `restore_stock_foreign_keys` adds them again.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY(%s::regclass[])",
            [list(_STOCK_TABLES)],
        )
        constraints = cursor.fetchall()
        for table, name, _ in constraints:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    return constraints


def restore_stock_foreign_keys(constraints: list[tuple[str, str, str]]) -> None:
    with connection.cursor() as cursor:
        for table, name, definition in constraints:
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


# -- Anything else (SQLite): small, through the service layer ---------------


def _seed_orm(skus: int, codes: list[str], seed: int, result: DemoSeedResult) -> None:
    rng = random.Random(seed)
    rows_before = Inventory.objects.count()
    for n in range(len(SHOWCASE), skus):
        policy = _policy(n)
        category = CATEGORIES[n % len(CATEGORIES)]
        product, created = Product.objects.get_or_create(
            sku=demo_sku(n),
            defaults={
                "name": f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS_BY_CATEGORY[category])} {n}",
                "category": category,
                "weight_g": rng.randint(50, 5000),
                "length_mm": rng.randint(50, 600),
                "width_mm": rng.randint(50, 400),
                "height_mm": rng.randint(10, 300),
                "stock_policy": policy,
                "backorder_limit": 0 if policy == StockPolicy.NORMAL else 20,
            },
        )
        result.new_products += created
        for code in codes:
            quantity = rng.choice(OPENING_STOCK)
            if quantity:
                outcome = services.stock_receive(
                    sku=product.sku,
                    warehouse=code,
                    quantity=quantity,
                    actor=SEED_ACTOR,
                    reference=services.Reference(ReferenceType.IMPORT, SEED_REFERENCE),
                    reason="demo data",
                )
                result.ledger_rows += not outcome.replayed
    result.new_inventory_rows = Inventory.objects.count() - rows_before
    with transaction.atomic():
        Inventory.objects.filter(product__sku__startswith="DEMO-", reorder_threshold=0).exclude(
            product__sku__in=[demo_sku(n) for n in range(len(SHOWCASE))]
        ).update(reorder_threshold=10, reorder_quantity=40)
