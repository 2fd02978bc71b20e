"""The stock-event emitter's lean path for a one-row statement (issue #18, goal 2).

`events_stock_emit` writes the events of a statement that inserted ONE ledger row,
in a transaction's first emitting statement (a 1-line reservation, one receipt or
adjustment), with two small statements instead of the general ~30-node one, whose
start-up and shutdown cost more than such a statement's own work. Same event rows
(types, typed columns, payloads, stream, feed position, order:
tests/events/test_lean_emitter.py compares them with 0007's emitter on every
statement shape); every other statement runs the general statement unchanged.
Also: set_config by assignment instead of PERFORM (an expression, not a query).
Loads the frozen copy `sql/0008_events_stock_emit.sql`; reversing loads 0007's.
PostgreSQL only.
"""

from pathlib import Path

from django.db import migrations

FROZEN = Path(__file__).resolve().parent / "sql"


def load(prefix):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        sql = (FROZEN / f"{prefix}_events_stock_emit.sql").read_text()
        schema_editor.execute(sql.replace("%", "%%"))

    return run


class Migration(migrations.Migration):
    dependencies = [("events", "0007_skip_empty_statements")]

    operations = [migrations.RunPython(load("0008"), load("0007"), elidable=False)]
