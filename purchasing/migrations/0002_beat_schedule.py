"""Install the Celery beat schedule (django-celery-beat's database scheduler).

Creates the two periodic tasks if they are missing and leaves existing ones
alone, so that a schedule edited in the admin (Periodic tasks) is never
overwritten. Times are UTC.
"""

from django.db import migrations

REORDER_BATCH = "purchasing: daily reorder batch"
EXPIRE_RESERVATIONS = "inventory: release expired reservation holds"


def install(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")

    if not PeriodicTask.objects.filter(name=REORDER_BATCH).exists():
        daily, _ = CrontabSchedule.objects.get_or_create(
            minute="30",
            hour="2",
            day_of_week="*",
            day_of_month="*",
            month_of_year="*",
            timezone="UTC",
        )
        PeriodicTask.objects.create(
            name=REORDER_BATCH,
            task="purchasing.tasks.reorder_batch_task",
            crontab=daily,
            description="Orders stock for every inventory row below its reorder threshold "
            "that no open purchase order covers (docs/PURCHASING.md).",
        )
    if not PeriodicTask.objects.filter(name=EXPIRE_RESERVATIONS).exists():
        every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period="seconds")
        PeriodicTask.objects.create(
            name=EXPIRE_RESERVATIONS,
            task="purchasing.tasks.expire_reservations_task",
            interval=every_minute,
            description="Releases reservation holds whose expires_at has passed.",
        )
    # Tell a running beat (DatabaseScheduler) that the schedule changed.
    from django.utils import timezone

    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def uninstall(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[REORDER_BATCH, EXPIRE_RESERVATIONS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("purchasing", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
