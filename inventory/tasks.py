"""Celery tasks for the ledger at scale (issue #21): thin edges over one service each.

Both run from beat (`CELERY_BEAT_SCHEDULE` in settings): the checkpoint daily, the
partition maintenance hourly once `STOCKROOM_LEDGER_PARTITIONED` is set. Both are
idempotent (a second run takes no checkpoint at an older position and creates no
partition twice).
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from inventory import services

TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@shared_task(
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=60,
    max_retries=5,
    ignore_result=True,
)
def ledger_checkpoint_task() -> str:
    """Take a balance checkpoint, so the next reconcile reads only the ledger since it."""
    taken = services.ledger_checkpoint_take()
    if taken.checkpoint is None:
        return f"no checkpoint: {taken.skipped}"
    return str(taken.checkpoint)


@shared_task(
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=60,
    max_retries=5,
    ignore_result=True,
)
def ledger_partition_maintenance_task() -> str:
    """pg_partman's maintenance for the ledger: partitions made ahead, retention
    (old partitions detached, never dropped)."""
    return services.ledger_partition_maintenance()
