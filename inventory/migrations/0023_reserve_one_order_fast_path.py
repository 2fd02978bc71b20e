"""The reserve function's one-order fast path (issue #18, goal 2).

`stockroom_reserve_orders` reserves one order without bundle lines, each line
on a row of its own, in one statement (claim the order id, lock its rows in
key order, check every line under the lock, update, ledger rows, reservation
lines), and falls back to the general path, having dropped its claim, when the
id exists or a line is missing, inactive or short (lapsed holds). Same
signature, same answer, same rows and events (tests/database/test_reserve_one_order.py);
docs/PERFORMANCE.md "The single-order and batch path" has the measurements.
Loads the frozen copy `sql/0023_reserve_orders.sql`; reversing loads 0022's.
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
    dependencies = [("inventory", "0022_bundle_composition_check")]

    operations = [
        migrations.RunPython(
            load("0023_reserve_orders.sql"), load("0022_reserve_orders.sql"), elidable=False
        ),
    ]
