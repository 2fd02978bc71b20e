"""Sequential purchase-order numbers: PO-000001, PO-000002, …

A PostgreSQL sequence numbers them, and one SQL function formats the next
number, `purchasing_next_po_number()`, used in Python
(`new_purchase_order_number`) and in the daily batch's SQL alike. It pads to at
least six digits and never cuts longer numbers (`lpad` alone truncates: the
millionth order would have been PO-100000 again), so PO-999999 is followed by
PO-1000000. A number taken by a transaction that rolls back is not reused (a
gap, as with any sequence); numbers never repeat. Orders made before this
migration keep their random-suffixed numbers. SQLite (the embedded default) has
no sequences: there the next number follows the count of orders.
"""

from django.db import migrations

SEQUENCE = "purchasing_po_number"
FUNCTION = "purchasing_next_po_number"

# plpgsql: called once per row that gets a number, never inlined into a query.
CREATE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n text := nextval('{SEQUENCE}')::text;
BEGIN
    RETURN 'PO-' || lpad(n, greatest(6, length(n)), '0');
END
$$
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE}")
        schema_editor.execute(CREATE_FUNCTION)


def reverse(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
        schema_editor.execute(f"DROP SEQUENCE IF EXISTS {SEQUENCE}")


class Migration(migrations.Migration):
    dependencies = [("purchasing", "0002_beat_schedule")]
    operations = [migrations.RunPython(forward, reverse, elidable=False)]
