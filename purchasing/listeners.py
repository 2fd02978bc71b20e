"""The reorder trigger: hears committed stock changes and queues a check per row.

Registered in `PurchasingConfig.ready()` on `inventory.services.COMMITTED_CHANGE_LISTENERS`,
which the service layer calls after commit with committed changes only, so
nothing is queued for a rolled-back change. The stock operation has already
committed when this runs: a broker that is down (or anything else failing
here) is logged and swallowed, never raised to the caller; the daily batch
orders what these checks missed.
"""

from __future__ import annotations

import logging

from inventory.models import TransactionType
from inventory.services import CommittedChange

logger = logging.getLogger(__name__)

# The changes that can take good units (on hand - damaged - quality control)
# down. A transfer queues a check for both of its rows; the receiving row's
# check finds nothing to order. MOVE (into damaged / QC) and WRITE_OFF: issue #15.
TRIGGER_TYPES = frozenset(
    {
        TransactionType.FULFILL,
        TransactionType.ADJUST,
        TransactionType.TRANSFER,
        TransactionType.MOVE,
        TransactionType.WRITE_OFF,
    }
)

# Publishing gives up quickly when the broker is unreachable: the request that
# changed stock is waiting on this call.
PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.1,
    "interval_max": 0.1,
}


def enqueue_reorder_checks(changes: tuple[CommittedChange, ...]) -> None:
    from .tasks import reorder_check_task

    inventory_ids = sorted({c.inventory_id for c in changes if c.type in TRIGGER_TYPES})
    for inventory_id in inventory_ids:
        try:
            reorder_check_task.apply_async(
                (str(inventory_id),), retry=True, retry_policy=PUBLISH_RETRY_POLICY
            )
        except Exception:
            logger.warning(
                "reorder check for inventory row %s not queued (broker unavailable?); "
                "the daily reorder batch will catch it",
                inventory_id,
                exc_info=True,
            )
