"""The stock and reservation.created emitters return at once for a statement that
inserted no rows (issue #18): the reserve function's one-order statement
(inventory migration 0023) inserts none when it declines an order (short,
missing, inactive), and each emitter's big statement cost a refused order more
than the rest of its refusal. Payloads unchanged (a statement without rows
emitted nothing before either). Loads the frozen copies `sql/0007_*.sql`;
reversing loads 0005's (0006 changed neither). PostgreSQL only.
"""

from pathlib import Path

from django.db import migrations

FROZEN = Path(__file__).resolve().parent / "sql"
CHANGED = ("events_stock_emit", "events_reservation_created")


def load(prefix):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for name in CHANGED:
            schema_editor.execute((FROZEN / f"{prefix}_{name}.sql").read_text().replace("%", "%%"))

    return run


class Migration(migrations.Migration):
    dependencies = [("events", "0006_transfer_events")]

    operations = [migrations.RunPython(load("0007"), load("0005"), elidable=False)]
