"""Celery tasks of the API: the reaper of old `Idempotency-Key` records (on beat, daily)."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from .services import idempotency_records_purge


@shared_task(acks_late=True, ignore_result=True, expires=3600)
def idempotency_records_purge_task() -> int:
    """Delete finished Idempotency-Key records older than the retention
    (`STOCKROOM_IDEMPOTENCY_RETENTION_HOURS`, default 168 = 7 days). Idempotent."""
    hours = settings.STOCKROOM_IDEMPOTENCY_RETENTION_HOURS
    return idempotency_records_purge(older_than=timedelta(hours=hours))
