"""`purchasing_next_po_number()` loaded from a file: `purchasing/sql/` holds its live text.

Loads a frozen copy (`purchasing/migrations/sql/0004_next_po_number.sql`) of
the definition 0003 created, tidied; a later change edits the live file and adds
a migration with its own frozen copy (see inventory migration 0013). Reverse:
nothing to undo. PostgreSQL only.
"""

from pathlib import Path

from django.db import migrations

FROZEN = Path(__file__).resolve().parent / "sql" / "0004_next_po_number.sql"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FROZEN.read_text(encoding="utf-8").replace("%", "%%"))


class Migration(migrations.Migration):
    dependencies = [("purchasing", "0003_purchase_order_number_sequence")]
    operations = [migrations.RunPython(forward, migrations.RunPython.noop, elidable=False)]
