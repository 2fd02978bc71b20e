"""Celery tasks: thin edges that load by id and call one service.

All are idempotent (running one twice creates nothing new), acknowledge late (a
worker that dies mid-task leaves the message for another worker) and retry with
exponential backoff on transient database errors (a busy row, a lost connection).
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from inventory import services as stock_services
from inventory.errors import StockBusy

from . import services

TRANSIENT_ERRORS = (OperationalError, InterfaceError, StockBusy)


@shared_task(
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
    ignore_result=True,
)
def reorder_check_task(inventory_id: str) -> int | None:
    """Order stock for one inventory row if it needs it (after a FULFILL or ADJUST)."""
    line = services.reorder_check(inventory_id=inventory_id)
    return line.pk if line is not None else None


@shared_task(
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=60,
    retry_backoff_max=1800,
    retry_jitter=True,
    max_retries=3,
    ignore_result=True,
)
def reorder_batch_task() -> dict[str, int | float]:
    """The daily pass over every inventory row below threshold (on beat)."""
    result = services.reorder_batch()
    return {
        "chunks": result.chunks,
        "candidates": result.candidates,
        "orders_created": result.orders_created,
        "lines_created": result.lines_created,
        "seconds": round(result.seconds, 3),
    }


@shared_task(
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=5,
    retry_backoff_max=60,
    max_retries=2,
    ignore_result=True,
    # A sweep that waits longer than the interval is superseded by the next one.
    expires=120,
)
def expire_reservations_task() -> int:
    """Release reservation holds whose `expires_at` has passed (on beat, every minute)."""
    return stock_services.reservations_expire()
