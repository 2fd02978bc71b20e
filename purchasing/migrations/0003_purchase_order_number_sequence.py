"""Sequential purchase-order numbers: PO-000001, PO-000002, …

A PostgreSQL sequence numbers them, in Python (`new_purchase_order_number`) and
in the daily batch's SQL alike. A number taken by a transaction that rolls back
is not reused (a gap, as with any sequence); numbers never repeat. Orders made
before this migration keep their random-suffixed numbers. SQLite (the embedded
default) has no sequences: there the next number follows the count of orders.
"""

from django.db import migrations

SEQUENCE = "purchasing_po_number"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE}")


def reverse(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP SEQUENCE IF EXISTS {SEQUENCE}")


class Migration(migrations.Migration):
    dependencies = [("purchasing", "0002_beat_schedule")]
    operations = [migrations.RunPython(forward, reverse, elidable=False)]
