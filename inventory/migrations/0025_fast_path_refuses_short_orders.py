"""The one-order fast path answers a short order itself (issue #18, goal 2).

When every line of the order is on a row of its own in an active warehouse and
some line is short, and no short row has a lapsed hold (none could help), the
one-order statement's answer is final: a second statement drops the claim
(checking for lapsed holds with a fresh snapshot, the rows still locked) and the
function answers 'insufficient' with the general path's detail, instead of
running the general path after the declined statement. With any lapsed hold on
a short row, or a missing row, an inactive warehouse, an existing id, the
general path decides as before. Same signature, same answer
(tests/database/test_reserve_one_order.py). Loads the frozen copy
`sql/0025_reserve_orders.sql`; reversing loads 0023's. PostgreSQL only.
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
    dependencies = [("inventory", "0024_applied_operation_key_no_like_index")]

    operations = [
        migrations.RunPython(
            load("0025_reserve_orders.sql"), load("0023_reserve_orders.sql"), elidable=False
        ),
    ]
