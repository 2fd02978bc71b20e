"""The event triggers (PostgreSQL only): events written in the same transaction as
the stock change, by statement-level triggers with transition tables.

The trigger functions live in events/sql/*.sql, one file per function, exactly as
`pg_get_functiondef` prints them (tests/events/test_sql_files.py compares the two).
This migration loads the frozen copies of those files as they were when it was
written (events/migrations/sql/0002_*.sql); a later change to a function ships
with its own frozen copy and migration (0003: the sellable figure of issue 15).

Also: the txid column's default (the writing transaction's id), the per-transaction
coalescing index of availability.changed, a BRIN index on occurred_at for the
retention job, and the beat schedule (dispatch every 2 s, prune daily).
SQLite (the embedded default) gets the tables only: no events are written there.
"""

from pathlib import Path

from django.db import migrations

SQL_DIR = Path(__file__).resolve().parent / "sql"
FUNCTIONS = (
    "events_stock_emit",
    "events_reservation_created",
    "events_reservation_changed",
    "events_purchase_order_created",
    "events_purchase_order_dropped",
    "events_purchase_order_received",
)
DISPATCH = "events: dispatch webhook deliveries"
PRUNE = "events: prune events past retention"


def install_sql(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "ALTER TABLE events_event ALTER COLUMN txid SET DEFAULT pg_current_xact_id(), "
        "ALTER COLUMN txid SET NOT NULL"
    )
    schema_editor.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS events_availability_per_txn "
        "ON events_event (txid, sku) WHERE type = 'availability.changed'"
    )
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS events_occurred_brin ON events_event USING brin (occurred_at)"
    )
    for name in FUNCTIONS:
        schema_editor.execute((SQL_DIR / f"0002_{name}.sql").read_text().replace("%", "%%"))
    schema_editor.execute((SQL_DIR / "0002_triggers.sql").read_text().replace("%", "%%"))


def uninstall_sql(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, trigger in (
        ("inventory_inventorytransaction", "events_stock"),
        ("inventory_reservationline", "events_reservation_created"),
        ("inventory_reservation", "events_reservation_changed"),
        ("purchasing_purchaseorder", "events_purchase_order_created"),
        ("purchasing_purchaseorder", "events_purchase_order_dropped"),
        ("purchasing_purchaseorderreceipt", "events_purchase_order_received"),
    ):
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for name in FUNCTIONS:
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}()")


def install_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    if not PeriodicTask.objects.filter(name=DISPATCH).exists():
        every, _ = IntervalSchedule.objects.get_or_create(every=2, period="seconds")
        PeriodicTask.objects.create(
            name=DISPATCH,
            task="events.tasks.events_dispatch_task",
            interval=every,
            description="Turns new feed events into webhook deliveries and starts due lanes "
            "(docs/EVENTS.md).",
        )
    if not PeriodicTask.objects.filter(name=PRUNE).exists():
        daily, _ = CrontabSchedule.objects.get_or_create(
            minute="15",
            hour="3",
            day_of_week="*",
            day_of_month="*",
            month_of_year="*",
            timezone="UTC",
        )
        PeriodicTask.objects.create(
            name=PRUNE,
            task="events.tasks.events_prune_task",
            crontab=daily,
            description="Deletes events and delivery logs older than "
            "STOCKROOM_EVENTS_RETENTION_DAYS.",
        )
    from django.utils import timezone

    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def uninstall_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[DISPATCH, PRUNE]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0001_initial"),
        ("inventory", "0011_close_confirm"),
        ("purchasing", "0003_purchase_order_number_sequence"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(install_sql, uninstall_sql, elidable=False),
        migrations.RunPython(install_schedule, uninstall_schedule, elidable=False),
    ]
