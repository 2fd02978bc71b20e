"""Events cost on the batched reservation path (issue 14, item 5): the hot event
types are stored in typed columns, their JSON rendered at read time.

Building a jsonb payload per row inside the writing statement was most of what the
events cost a batch of 500 orders (about 1,500 event rows: stock.changed per row,
availability.changed per SKU, reservation.created per order). Their triggers now
store plain columns (balances, version, deltas, ledger ids and types, references;
per-warehouse availability arrays; the reservation and its lines as created) and
leave `payload` NULL; `events_payload(events_event)` (one inlinable expression, lists
longer than one by `events_json_zip()`) renders exactly the JSON the trigger used to store, and the feed, the webhook sender and the chaos checker read
through it. Other types keep their stored jsonb, and so do events written before
this migration (the renderer returns a stored payload as it is).

The columns exist on PostgreSQL only (like the triggers): the model knows only
`payload`, now nullable. Reversing renders every typed event into `payload`, loads
the 0004 functions and drops the columns.
"""

from pathlib import Path

from django.db import migrations, models

FROZEN = Path(__file__).resolve().parent / "sql"
# Every function file in events/sql/ (tests/events/test_sql_files.py checks the list).
FUNCTIONS = (
    "events_feed_position",
    "events_feed_horizon",
    "events_json_zip",
    "events_payload",
    "events_stock_emit",
    "events_reservation_created",
    "events_reservation_changed",
    "events_purchase_order_created",
    "events_purchase_order_dropped",
    "events_purchase_order_received",
    "events_purchase_order_lines",
)
# The ones this migration (re)loads from its frozen copies `sql/0005_*.sql`.
CHANGED = ("events_json_zip", "events_payload", "events_stock_emit", "events_reservation_created")
NEW = ("events_json_zip", "events_payload")
COLUMNS = (
    # stock.changed (available also for availability.changed: the SKU's total)
    ("on_hand", "bigint"),
    ("reserved", "bigint"),
    ("available", "bigint"),
    ("backorder_allowance", "integer"),
    ("version", "bigint"),
    ("on_hand_delta", "bigint"),
    ("reserved_delta", "bigint"),
    ("ledger_ids", "uuid[]"),
    ("ledger_types", "text[]"),
    ("reference_types", "text[]"),
    ("reference_ids", "text[]"),
    # availability.changed: per warehouse, sorted by code
    ("warehouse_codes", "text[]"),
    ("warehouse_available", "bigint[]"),
    ("warehouse_active", "boolean[]"),
    # reservation.created: the reservation and its lines as created
    ("order_id", "text"),
    ("reservation_id", "uuid"),
    ("status", "text"),
    ("expires_at", "timestamptz"),
    ("created_by", "text"),
    ("line_skus", "text[]"),
    ("line_warehouses", "text[]"),
    ("line_quantities", "bigint[]"),
)


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "ALTER TABLE events_event "
        + ", ".join(f"ADD COLUMN IF NOT EXISTS {name} {kind}" for name, kind in COLUMNS)
    )
    for name in CHANGED:
        schema_editor.execute((FROZEN / f"0005_{name}.sql").read_text().replace("%", "%%"))


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("SET LOCAL statement_timeout = 0")
    schema_editor.execute(
        "UPDATE events_event e SET payload = events_payload(e) WHERE payload IS NULL"
    )
    for name in CHANGED:
        if name not in NEW:
            schema_editor.execute((FROZEN / f"0004_{name}.sql").read_text().replace("%", "%%"))
    schema_editor.execute("DROP FUNCTION IF EXISTS events_payload(events_event)")
    schema_editor.execute(
        "DROP FUNCTION IF EXISTS events_json_zip(text, jsonb, text, jsonb, text, jsonb)"
    )
    schema_editor.execute(
        "ALTER TABLE events_event "
        + ", ".join(f"DROP COLUMN IF EXISTS {name}" for name, _ in COLUMNS)
    )


class Migration(migrations.Migration):
    dependencies = [("events", "0004_feed_position")]

    # (Reversed, uninstall fills every payload before NOT NULL comes back.)
    operations = [
        migrations.AlterField(
            model_name="event", name="payload", field=models.JSONField(null=True)
        ),
        migrations.RunPython(install, uninstall, elidable=False),
    ]
