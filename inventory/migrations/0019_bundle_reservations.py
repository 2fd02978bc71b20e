"""Bundles in reservations (issue #16): an order line for a bundle reserves its components.

* `reservation_line_unique_row` becomes one line per (reservation, row, bundle):
  an order may hold a component on one row for a bundle and sold alone, or for
  two bundles (a plain line's bundle counts as the nil UUID, so two plain lines
  on one row stay impossible, on SQLite too).
* `stockroom_reserve_orders` takes `p_bundles` (the bundle each line was
  expanded from), checks each row once per order against the order's total on
  it, and writes a line and a ledger row per line (frozen copy
  `sql/0019_reserve_orders.sql`; the old signature is dropped).
* `stockroom_close_order` updates a row shared by several of the order's lines
  once with their total and writes a ledger row per line (`sql/0019_close_order.sql`).

Reversing loads 0016's / 0015's functions (and drops the new signature).
The functions are PostgreSQL only.
"""

import uuid
from pathlib import Path

import django.db.models.functions.comparison
from django.db import migrations, models

FROZEN = Path(__file__).resolve().parent / "sql"

NEW_SIGNATURE = (
    "stockroom_reserve_orders(text[], text[], timestamp with time zone[], integer[], "
    "text[], text[], bigint[], text, text, timestamp with time zone, text[])"
)


def load(*names, drop=None):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        if drop:
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {drop}")
        for name in names:
            schema_editor.execute((FROZEN / name).read_text(encoding="utf-8").replace("%", "%%"))

    return run


class Migration(migrations.Migration):
    dependencies = [("inventory", "0018_bundle_guards")]

    operations = [
        migrations.RemoveConstraint(
            model_name="reservationline",
            name="reservation_line_unique_row",
        ),
        migrations.AddConstraint(
            model_name="reservationline",
            constraint=models.UniqueConstraint(
                models.F("reservation"),
                models.F("inventory"),
                django.db.models.functions.comparison.Coalesce(
                    models.F("bundle"),
                    models.Value(uuid.UUID("00000000-0000-0000-0000-000000000000")),
                    output_field=models.UUIDField(),
                ),
                name="reservation_line_unique_row",
            ),
        ),
        migrations.RunPython(
            load("0019_reserve_orders.sql", "0019_close_order.sql"),
            load("0016_reserve_orders.sql", "0015_close_order.sql", drop=NEW_SIGNATURE),
            elidable=False,
        ),
    ]
