"""Transfer events (issue #15, item 3): `transfer.shipped` and `transfer.received`.

A two-step transfer showed in the feed only as `stock.changed` of its ledger rows.
Two statement-level triggers with transition tables now emit one event per step,
in the same transaction, with a stored jsonb payload (one event per transfer and
step: rare, like the purchase-order events):

* `events_transfer_shipped`, AFTER INSERT on inventory_transferline: the ship
  writes the source's ledger rows, the transfer row and then all its lines in one
  statement, so the line statement sees the whole shipment (lines, ledger ids).
* `events_transfer_received`, AFTER UPDATE on inventory_transfer: when the status
  leaves `shipped`; the receipt's ledger rows and each line's quantity_received
  are written before that update, the receipt's last statement.

Stream `transfer:<transfer_id>` (webhooks deliver a transfer's two events in
order). The instant transfer (`stock_transfer`) has no Transfer row and emits no
transfer event: its two `stock.changed` per SKU describe it (docs/EVENTS.md).
The functions are loaded from their frozen copies `sql/0006_*.sql` with the
trigger definitions (`sql/0006_triggers.sql`, the whole of events/sql/triggers.sql);
reversing drops the two triggers and functions. PostgreSQL only.
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
    "events_transfer_shipped",
    "events_transfer_received",
)
# The ones this migration loads (new) from its frozen copies.
NEW = ("events_transfer_shipped", "events_transfer_received")
TRIGGERS = (
    ("events_transfer_shipped", "inventory_transferline"),
    ("events_transfer_received", "inventory_transfer"),
)


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in NEW:
        schema_editor.execute((FROZEN / f"0006_{name}.sql").read_text().replace("%", "%%"))
    schema_editor.execute((FROZEN / "0006_triggers.sql").read_text().replace("%", "%%"))


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for trigger, table in TRIGGERS:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for name in NEW:
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}()")


class Migration(migrations.Migration):
    dependencies = [("events", "0005_typed_payloads"), ("inventory", "0020_transfers")]

    operations = [
        migrations.AlterField(
            model_name="event",
            name="type",
            field=models.CharField(
                choices=[
                    ("stock.changed", "Stock Changed"),
                    ("availability.changed", "Availability Changed"),
                    ("sku.out_of_stock", "Out Of Stock"),
                    ("sku.back_in_stock", "Back In Stock"),
                    ("sku.low_stock", "Low Stock"),
                    ("reservation.created", "Reservation Created"),
                    ("reservation.confirmed", "Reservation Confirmed"),
                    ("reservation.released", "Reservation Released"),
                    ("reservation.fulfilled", "Reservation Fulfilled"),
                    ("reservation.expired", "Reservation Expired"),
                    ("purchase_order.created", "Purchase Order Created"),
                    ("purchase_order.received", "Purchase Order Received"),
                    ("transfer.shipped", "Transfer Shipped"),
                    ("transfer.received", "Transfer Received"),
                ],
                max_length=40,
            ),
        ),
        migrations.RunPython(install, uninstall, elidable=False),
    ]
