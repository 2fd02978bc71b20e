"""The feed position (issue 14, per-row order): events file under `feed_txid`, the
newest transaction id assigned when the writing statement ran
(`events_feed_position()`, never below the writer's own id), and the feed, the
dispatcher and the retention job order by (feed_txid, id) instead of (txid, id).

Why: a transaction that already holds an id and then waits for a row lock held by
a younger transaction used to sort its change of that row before the younger
one's, although it committed after it. Its statement now runs after the younger
one committed, so it files at a position at least the younger one's id: per stock
row, feed order is commit order (tests/events/test_order.py). The cursor rule is
unchanged: feed_txid >= txid, so nothing a running transaction writes can file
below the horizon.

The stock emitter got cheaper per batch (issue 14, throughput): no per-group sorts
(the ledger rows are sorted once; de-duplication only for rows with several ledger
rows), availability.changed built in one sorted pass, and coalesced per transaction
without the unique index `events_availability_per_txn` (dropped): a transaction's
first statement inserts, later ones update their own events.

The horizon (`events_feed_horizon()`) no longer counts transactions that
pg_stat_activity shows in another database of the cluster: they cannot write this
database's events, and one database's long transaction (a bulk load, a dump) no
longer holds back every other database's feed.

Payloads (issue 14, item 5): purchase_order.created carries its lines (a new
statement trigger on purchasing_purchaseorderline fills the creating transaction's
event; `sql/0004_triggers.sql` adds it).

Existing events keep their order (feed_txid = txid). The trigger functions are
loaded from their frozen copies `sql/0004_*.sql`; reversing loads 0003's / 0002's.
PostgreSQL only for the SQL; SQLite gets the column and the index.
"""

from pathlib import Path

from django.db import migrations, models

import events.models

FROZEN = Path(__file__).resolve().parent / "sql"
FUNCTIONS = (
    "events_feed_position",
    "events_feed_horizon",
    "events_stock_emit",
    "events_reservation_created",
    "events_reservation_changed",
    "events_purchase_order_created",
    "events_purchase_order_dropped",
    "events_purchase_order_received",
    "events_purchase_order_lines",
)
NEW = ("events_feed_position", "events_feed_horizon", "events_purchase_order_lines")
PREVIOUS = {"events_stock_emit": "0003"}  # the rest were last loaded by 0002


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # One pass over the retained events (up to a week's): not bound by the
    # application's statement timeout (this transaction only).
    schema_editor.execute("SET LOCAL statement_timeout = 0")
    schema_editor.execute("UPDATE events_event SET feed_txid = txid WHERE feed_txid IS NULL")
    schema_editor.execute(
        "ALTER TABLE events_event ALTER COLUMN feed_txid SET DEFAULT pg_current_xact_id(), "
        "ALTER COLUMN feed_txid SET NOT NULL"
    )
    for name in FUNCTIONS:
        schema_editor.execute((FROZEN / f"0004_{name}.sql").read_text().replace("%", "%%"))
    schema_editor.execute((FROZEN / "0004_triggers.sql").read_text().replace("%", "%%"))
    # availability.changed is coalesced per transaction by the emitter itself now
    # (insert in the first statement, update in later ones): no unique index to keep.
    schema_editor.execute("DROP INDEX IF EXISTS events_availability_per_txn")


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS events_availability_per_txn "
        "ON events_event (txid, sku) WHERE type = 'availability.changed'"
    )
    schema_editor.execute(
        "DROP TRIGGER IF EXISTS events_purchase_order_lines ON purchasing_purchaseorderline"
    )
    for name in FUNCTIONS:
        if name not in NEW:
            frozen = f"{PREVIOUS.get(name, '0002')}_{name}.sql"
            schema_editor.execute((FROZEN / frozen).read_text().replace("%", "%%"))
    for name in NEW:
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}()")


class Migration(migrations.Migration):
    dependencies = [("events", "0003_sellable_available"), ("purchasing", "0003_purchase_order_number_sequence")]

    operations = [
        migrations.AlterModelOptions(name="event", options={"ordering": ["feed_txid", "id"]}),
        migrations.AddField(
            model_name="event",
            name="feed_txid",
            field=events.models.XID8Field(editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["feed_txid", "id"], name="events_feed_position"),
        ),
        migrations.RunPython(install, uninstall, elidable=False),
        migrations.RemoveIndex(model_name="event", name="events_feed_order"),
    ]
