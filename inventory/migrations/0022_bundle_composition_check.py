"""The composition race (issue #16): `stockroom_reserve_orders` takes
`p_compositions` (the compositions its bundle lines were expanded with), locks
those bundles' product rows FOR SHARE and answers 'stale' when one differs from
the stored composition (frozen copy `sql/0022_reserve_orders.sql`; the old
signature is dropped by the file). Reversing loads 0019's function (and drops
the new signature). PostgreSQL only.
"""

from pathlib import Path

from django.db import migrations

FROZEN = Path(__file__).resolve().parent / "sql"

NEW_SIGNATURE = (
    "stockroom_reserve_orders(text[], text[], timestamp with time zone[], integer[], "
    "text[], text[], bigint[], text, text, timestamp with time zone, text[], jsonb)"
)


def load(name, drop=None):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        if drop:
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {drop}")
        schema_editor.execute((FROZEN / name).read_text(encoding="utf-8").replace("%", "%%"))

    return run


class Migration(migrations.Migration):
    dependencies = [("inventory", "0021_ledger_checkpoints")]

    operations = [
        migrations.RunPython(
            load("0022_reserve_orders.sql"),
            load("0019_reserve_orders.sql", drop=NEW_SIGNATURE),
            elidable=False,
        ),
    ]
