"""Install the daily Idempotency-Key reaper on Celery beat (django-celery-beat).

Same pattern as purchasing 0002: created if missing, never overwritten (the
schedule is editable in the admin). 03:15 UTC, after the reorder batch.
"""

from django.db import migrations

REAPER = "api: purge old Idempotency-Key records"


def install(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")

    if not PeriodicTask.objects.filter(name=REAPER).exists():
        daily, _ = CrontabSchedule.objects.get_or_create(
            minute="15",
            hour="3",
            day_of_week="*",
            day_of_month="*",
            month_of_year="*",
            timezone="UTC",
        )
        PeriodicTask.objects.create(
            name=REAPER,
            task="api.tasks.idempotency_records_purge_task",
            crontab=daily,
            description="Deletes finished Idempotency-Key records older than "
            "STOCKROOM_IDEMPOTENCY_RETENTION_HOURS (default 7 days); docs/RELIABILITY.md.",
        )
    from django.utils import timezone

    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def uninstall(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=REAPER).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
