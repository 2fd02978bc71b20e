"""The warehouse floor (issue 19): barcodes, case-insensitive SKU search, counts due.

* `Product.barcode`: nullable and unique (a unique index, so a scan finds the
  product in one probe; NULLs do not collide).
* `product_sku_upper_prefix`: upper(sku) with text_pattern_ops, so a
  case-insensitive SKU *prefix* (`upper(sku) LIKE 'ABC%'`) and a
  case-insensitive exact SKU (`upper(sku) = 'ABC-1'`) are index scans, however
  many products there are (the back office's scan inputs and inventory list).
* `product_name_trgm`: a trigram GIN index on upper(name) (extension pg_trgm,
  trusted since PostgreSQL 13), so "part of the name" (`name__icontains`,
  Django's `UPPER(name::text) LIKE UPPER('%…%')`) does not read every product.
* `Inventory.last_counted_at` (set by the back office's cycle count) and the
  index `inventory_count_due` (warehouse, last_counted_at NULLS FIRST, product):
  the start page's "counts due, oldest first" per warehouse, read in index order
  and stopped after a page. Only counts write the column, so reservations stay
  HOT updates (no index names `reserved`).

The two functional indexes and `inventory_count_due` are PostgreSQL only (the
embedded SQLite default skips them: SQLite has no NULLS FIRST in an index) and
are not in the model state.
"""

from django.db import migrations, models

CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS product_sku_upper_prefix "
    "ON inventory_product (upper(sku::text) text_pattern_ops)",
    "CREATE INDEX IF NOT EXISTS product_name_trgm "
    "ON inventory_product USING gin (upper(name::text) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS inventory_count_due "
    "ON inventory_inventory (warehouse_id, last_counted_at NULLS FIRST, product_id)",
]
DROP = [
    "DROP INDEX IF EXISTS inventory_count_due",
    "DROP INDEX IF EXISTS product_name_trgm",
    "DROP INDEX IF EXISTS product_sku_upper_prefix",
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in CREATE:
            schema_editor.execute(statement)


def reverse(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0013_sql_functions_from_files"),
    ]

    operations = [
        migrations.AddField(
            model_name="inventory",
            name="last_counted_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="product",
            name="barcode",
            field=models.CharField(
                blank=True,
                help_text="Barcode printed on the product (EAN, UPC, …); scans find the product "
                "by it.",
                max_length=64,
                null=True,
                unique=True,
            ),
        ),
        migrations.RunPython(forward, reverse, elidable=False),
    ]
