"""One index entry fewer per idempotency key (issue #18, goal 5: a million-row receipt).

Every keyed stock operation, and a bulk receipt once per row, inserts an
`AppliedOperation` row. Its key had two indexes: the primary key and Django's
`varchar_pattern_ops` twin (added to every indexed `CharField` on PostgreSQL,
for `LIKE 'prefix%'`). Keys are only looked up by equality (`idempotency.py`,
the bulk validation's join), which the primary key serves; the chaos checker's
`LIKE '%…'` cannot use either index. The twin is dropped.

(`inventory_warehouse_product` stays: the back office's inventory list is
ordered by (warehouse, product) and reads its first page from that index.)

docs/PERFORMANCE.md "Bulk receive per phase (goal 5)" has the figures. The drop
runs CONCURRENTLY on PostgreSQL (atomic = False). The `_like` index is not in
Django's model state (it has no name there), so only the database changes; an
`AlterField` of `AppliedOperation.key` would bring it back.
"""

from django.db import migrations

KEYS = "inventory_appliedoperation"


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


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("inventory", "0023_reserve_one_order_fast_path")]

    operations = [migrations.RunPython(drop_like, restore_like, elidable=False)]
