"""Task wiring: names, acks_late, retries, idempotency, and the installed beat schedule."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from inventory import services as stock
from inventory.models import Reservation
from inventory.services import ReserveLine
from inventory_site.celery import app
from purchasing.models import PurchaseOrder, PurchaseOrderLine
from purchasing.tasks import expire_reservations_task, reorder_batch_task, reorder_check_task

from .conftest import stocked_row

pytestmark = pytest.mark.django_db

TASKS = [reorder_check_task, reorder_batch_task, expire_reservations_task]


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_tasks_are_named_registered_and_acknowledge_late(task):
    assert task.name.endswith("_task")
    assert task.name in app.tasks
    assert task.acks_late is True
    assert task.max_retries >= 1


def test_beat_schedule_is_installed_by_migration():
    schedule = {t.task: t for t in PeriodicTask.objects.filter(enabled=True)}

    batch = schedule["purchasing.tasks.reorder_batch_task"]
    assert (batch.crontab.hour, batch.crontab.minute) == ("2", "30")
    sweeper = schedule["purchasing.tasks.expire_reservations_task"]
    assert (sweeper.interval.every, sweeper.interval.period) == (60, "seconds")
    app.loader.import_default_modules()  # what a worker does at start (autodiscovery)
    assert all(name in app.tasks for name in schedule), sorted(schedule)


def test_check_task_twice_creates_one_line(supplier):
    row = stocked_row("MUG", "BER", on_hand=1, supplier=supplier)

    first = reorder_check_task.delay(str(row.pk)).get()
    second = reorder_check_task.delay(str(row.pk)).get()

    assert first is not None and second is None
    assert PurchaseOrderLine.objects.count() == 1


def test_batch_task_twice_creates_orders_once(supplier):
    stocked_row("MUG", "BER", on_hand=1, supplier=supplier)
    stocked_row("CUP", "BER", on_hand=1, supplier=supplier)

    first = reorder_batch_task.delay().get()
    second = reorder_batch_task.delay().get()

    assert (first["lines_created"], first["orders_created"]) == (2, 1)
    assert (second["lines_created"], second["orders_created"]) == (0, 0)
    assert PurchaseOrder.objects.count() == 1


def test_sweeper_task_releases_expired_holds(supplier):
    stocked_row("MUG", "BER", on_hand=5, supplier=supplier)
    stock.stock_reserve(
        order_id="late",
        lines=[ReserveLine("MUG", "BER", 2)],
        actor="c",
        expires_at=timezone.now() - timedelta(minutes=1),
    )
    stock.stock_reserve(
        order_id="fresh",
        lines=[ReserveLine("MUG", "BER", 1)],
        actor="c",
        expires_at=timezone.now() + timedelta(minutes=10),
    )

    assert expire_reservations_task.delay().get() == 1
    assert expire_reservations_task.delay().get() == 0
    statuses = dict(Reservation.objects.values_list("order_id", "status"))
    assert statuses == {"late": "expired", "fresh": "active"}


def test_check_task_retries_a_transient_database_error(supplier, monkeypatch):
    from django.db import OperationalError

    from purchasing import services

    row = stocked_row("MUG", "BER", on_hand=1, supplier=supplier)
    real_check = services.reorder_check
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real_check(**kwargs)

    monkeypatch.setattr(services, "reorder_check", flaky)

    # throw=False: let apply() run the retry inline instead of raising Retry.
    result = reorder_check_task.apply((str(row.pk),), throw=False)

    assert result.successful(), result.traceback
    assert len(calls) == 2
    assert PurchaseOrderLine.objects.count() == 1
