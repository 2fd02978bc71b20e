"""The SQL functions and triggers, loaded from files: `inventory/sql/` holds their live text.

Until 0012 each migration patched the previous one's function text with
`str.replace`, so the current definitions existed nowhere. This migration loads
frozen copies (`inventory/migrations/sql/0013_*.sql`) of the files as they are
now: the definitions 0002-0012 built, with whitespace and comments tidied (one
comment names a moved Python function), so the database behaves the same.

A later change to a function edits its live file in `inventory/sql/` and adds a
migration that loads its own frozen copy (never the live file: an old migration
must keep building the same database). `tests/database/test_sql_functions.py`
fails while the migrated database and the live files differ.

Reverse: nothing to undo (0012's definitions are these, up to whitespace and
comments). PostgreSQL only, as the functions are.
"""

from pathlib import Path

from django.db import migrations

FROZEN = Path(__file__).resolve().parent / "sql"
FILES = [
    "0013_uuid7.sql",
    "0013_ledger_append_only.sql",
    "0013_allowance_from_product.sql",
    "0013_reserve_orders.sql",
    "0013_close_order.sql",
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in FILES:
        schema_editor.execute((FROZEN / name).read_text(encoding="utf-8").replace("%", "%%"))


class Migration(migrations.Migration):
    dependencies = [("inventory", "0012_lapsed_holds")]
    operations = [migrations.RunPython(forward, migrations.RunPython.noop, elidable=False)]
