"""Stock events speak the sellable figure (issue 15): `available` in
stock.changed, sku.out_of_stock / back_in_stock and sku.low_stock is on hand -
reserved - safety stock - damaged - quality control, and a move between states
(a MOVE, WRITE_OFF or RETURN ledger row) emits availability.changed.

Loads the frozen copy `sql/0003_events_stock_emit.sql`; reversing loads 0002's.
PostgreSQL only.
"""

from pathlib import Path

from django.db import migrations

FROZEN = Path(__file__).resolve().parent / "sql"


def load(name):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        schema_editor.execute((FROZEN / name).read_text(encoding="utf-8").replace("%", "%%"))

    return run


class Migration(migrations.Migration):
    dependencies = [("events", "0002_triggers"), ("inventory", "0015_stock_states")]
    operations = [
        migrations.RunPython(
            load("0003_events_stock_emit.sql"),
            load("0002_events_stock_emit.sql"),
            elidable=False,
        )
    ]
