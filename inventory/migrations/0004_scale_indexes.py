"""Indexes for scale (issue 6), built without blocking writes on PostgreSQL.

* Drop the ledger's single-column product_id / warehouse_id indexes: ledger_product_time
  and ledger_warehouse_time start with the same columns and answer the same
  lookups (and the foreign-key checks); on the biggest table every index costs
  every insert.
* Add inventory_below_threshold, a partial index holding only rows whose on-hand
  stock is below their reorder threshold: the reorder scan reads that small set
  instead of every row. Its predicate uses on_hand, not available: reservations
  and releases (the hottest writes) change only `reserved`, which no index
  mentions, so they remain HOT updates (no index writes).

On PostgreSQL both run CONCURRENTLY (hence atomic = False), so migrating a live
database with millions of rows does not lock out orders. Other databases (the
embedded SQLite) get the plain statements.
"""

import django.db.models.deletion
from django.db import migrations, models

LEDGER = "inventory_inventorytransaction"
BELOW_THRESHOLD_SQL = (
    "CREATE INDEX {concurrently} IF NOT EXISTS inventory_below_threshold "
    'ON inventory_inventory ("warehouse_id", "product_id") '
    'WHERE "on_hand" < "reorder_threshold"'
)


def _single_column_indexes(schema_editor, table, column):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return [
        name
        for name, info in constraints.items()
        if info["index"]
        and not info["unique"]
        and not info["primary_key"]
        and info["columns"] == [column]
    ]


def forward(apps, schema_editor):
    pg = schema_editor.connection.vendor == "postgresql"
    concurrently = "CONCURRENTLY" if pg else ""
    for column in ("product_id", "warehouse_id"):
        for name in _single_column_indexes(schema_editor, LEDGER, column):
            schema_editor.execute(f'DROP INDEX {concurrently} IF EXISTS "{name}"')
    schema_editor.execute(BELOW_THRESHOLD_SQL.format(concurrently=concurrently))


def reverse(apps, schema_editor):
    pg = schema_editor.connection.vendor == "postgresql"
    concurrently = "CONCURRENTLY" if pg else ""
    schema_editor.execute(f"DROP INDEX {concurrently} IF EXISTS inventory_below_threshold")
    for column in ("product_id", "warehouse_id"):
        schema_editor.execute(
            f"CREATE INDEX {concurrently} IF NOT EXISTS {LEDGER}_{column}_single "
            f'ON {LEDGER} ("{column}")'
        )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("inventory", "0003_reserve_orders_function"),
        ("warehouses", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="inventorytransaction",
                    name="product",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="inventory.product",
                    ),
                ),
                migrations.AlterField(
                    model_name="inventorytransaction",
                    name="warehouse",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="warehouses.warehouse",
                    ),
                ),
                migrations.AddIndex(
                    model_name="inventory",
                    index=models.Index(
                        condition=models.Q(("on_hand__lt", models.F("reorder_threshold"))),
                        fields=["warehouse", "product"],
                        name="inventory_below_threshold",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(forward, reverse, elidable=False)],
        ),
    ]
