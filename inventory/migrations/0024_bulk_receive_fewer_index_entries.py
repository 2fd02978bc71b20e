"""Fewer index entries per received row (issue #18, goal 5: a million-row receipt).

A bulk receipt writes, per row, an idempotency key, a new version of the stock
row (not a HOT update: `on_hand` is in `inventory_below_threshold`'s predicate)
and a ledger row. Two of the indexes those writes feed serve no query:

* `AppliedOperation.key`'s `varchar_pattern_ops` twin (Django adds one to every
  indexed `CharField` on PostgreSQL, for `LIKE 'prefix%'`). Keys are only looked
  up by equality (`idempotency.py`, the bulk validation's join), which the
  primary key serves; the chaos checker's `LIKE '%…'` cannot use either index.
* `inventory_warehouse_product` (warehouse, product): every query that filters
  stock rows by warehouse has `inventory_count_due` (warehouse, last_counted_at,
  product), which starts with the same column, and a (product, warehouse) pair is
  found by the unique constraint's index. It cost every non-HOT stock update
  (receipts, fulfilments, adjustments) one more index entry.

docs/PERFORMANCE.md "Bulk receive per phase (goal 5)" has the plans and the
figures. Index drops run CONCURRENTLY on PostgreSQL (atomic = False). The `_like`
index is not in Django's model state (it has no name there), so only the
database changes; an `AlterField` of `AppliedOperation.key` would bring it back.
"""

from django.db import migrations

KEYS = "inventory_appliedoperation"
WAREHOUSE_PRODUCT = "inventory_warehouse_product"


def _like_indexes(schema_editor) -> list[str]:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, KEYS)
    return [
        name
        for name, info in constraints.items()
        if info["index"]
        and not info["unique"]
        and not info["primary_key"]
        and info["columns"] == ["key"]
        and name.endswith("_like")
    ]


def drop_like(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in _like_indexes(schema_editor):
        schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')


def restore_like(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    if not _like_indexes(schema_editor):
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS inventory_appliedoperation_key_like "
            f"ON {KEYS} (key varchar_pattern_ops)"
        )


def drop_warehouse_product(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {WAREHOUSE_PRODUCT}")


def restore_warehouse_product(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(
        f"CREATE INDEX {concurrently}IF NOT EXISTS {WAREHOUSE_PRODUCT} "
        "ON inventory_inventory (warehouse_id, product_id)"
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("inventory", "0023_reserve_one_order_fast_path")]

    operations = [
        migrations.RunPython(drop_like, restore_like, elidable=False),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="inventory", name="inventory_warehouse_product"),
            ],
            database_operations=[
                migrations.RunPython(
                    drop_warehouse_product, restore_warehouse_product, elidable=False
                ),
            ],
        ),
    ]
