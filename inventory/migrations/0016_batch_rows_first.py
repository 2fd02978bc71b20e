"""`stockroom_reserve_orders` creates no order of a batch that needs a new stock row.

Until now an order needing a row that did not exist yet (a backorder SKU in a
warehouse that never held it) came back 'missing' while the function went on
reserving the batch's later orders; the caller then created the rows and tried
that order again, after the later ones had taken the stock. docs/API.md promises
"an earlier order in the batch gets the stock first" (found by the reference
model, tests/model/). Now, when any new order needs a missing row, the function
reserves nothing: those orders are 'missing' (with their pairs), every other new
order 'deferred', and the caller (`inventory.services.reserve_sql`) creates the
rows and runs the batch once more, whole and in order.

Loads the frozen copy `sql/0016_reserve_orders.sql` (the stock states of 0015
included); reversing loads 0015's.
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
    dependencies = [("inventory", "0015_stock_states")]
    operations = [
        migrations.RunPython(
            load("0016_reserve_orders.sql"), load("0015_reserve_orders.sql"), elidable=False
        )
    ]
