"""Balance checkpoints: reconcile reads the ledger since the last one, not all history.

A checkpoint (`LedgerCheckpoint` + one `BalanceCheckpoint` per product and
warehouse) holds, at a ledger position P (a `created_at` boundary), the sums of
every ledger row with `created_at < P`. It is computed from the ledger alone —
the previous checkpoint's balances plus the ledger rows between the two
positions — never copied from the inventory rows, so a balance that had already
drifted from its ledger when a checkpoint was taken is still reported by every
reconcile afterwards (a checkpoint cannot launder a fault).

Reconcile's "what the ledger says" is then `checkpoint + sum(ledger since P)`:
`ledger_sums_sql()` is that one expression, used by `bulk.inventory_reconcile`
for the scan and for the fix. On a partitioned ledger, `created_at >= P`
prunes every partition before P; on a plain one it is a range scan of the
`created_at` index. Works the same whether or not the ledger is partitioned.

The position. A ledger row must not appear below a position after the
checkpoint at that position was taken, or it would be counted by neither side.
Rows get `created_at` from the writer's clock inside its transaction, so P is
the earlier of (now - `STOCKROOM_LEDGER_CHECKPOINT_LAG_SECONDS`) and the start
of the oldest transaction open in this database when the checkpoint starts;
the sums are read by a later statement (a later snapshot), so every transaction
that started before P has either committed (and is visible) or rolled back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from ..models import LedgerCheckpoint

LEDGER = "inventory_inventorytransaction"
CHECKPOINTS_KEPT = 3  # the newest is the one reconcile reads; older ones are history


@dataclass
class CheckpointTaken:
    checkpoint: LedgerCheckpoint | None
    skipped: str = ""  # why none was taken


def _position(cursor) -> dt.datetime:
    """The checkpoint's position: lag behind now, and behind every open transaction."""
    cursor.execute(
        """
        SELECT least(clock_timestamp() - make_interval(secs => %s),
                     (SELECT min(xact_start) FROM pg_stat_activity
                      WHERE datname = current_database() AND pid <> pg_backend_pid()
                        AND xact_start IS NOT NULL))
        """,
        [settings.STOCKROOM_LEDGER_CHECKPOINT_LAG_SECONDS],
    )
    return cursor.fetchone()[0]


def latest_checkpoint() -> LedgerCheckpoint | None:
    return LedgerCheckpoint.objects.order_by("-position").first()


def ledger_sums_sql(
    checkpoint: LedgerCheckpoint | None, until: dt.datetime | None = None
) -> tuple[str, dict]:
    """A query of (product_id, warehouse_id, on_hand, reserved, damaged,
    quality_control): what the ledger says each stock row holds, read as the
    checkpoint's balances plus the ledger since its position (all of it with no
    checkpoint), up to `until` if given. Parameters are named."""
    params = {
        "cp_id": checkpoint.pk if checkpoint else None,
        "cp_position": checkpoint.position if checkpoint else None,
        "cp_until": until,
    }
    # With no checkpoint, all of the ledger. (Parameters are bound client-side,
    # so the planner sees constants and prunes partitions before the position.)
    since = "created_at >= %(cp_position)s" if checkpoint else "true"
    cut = "AND created_at < %(cp_until)s" if until is not None else ""
    sql = f"""
        SELECT product_id, warehouse_id,
               sum(on_hand) AS on_hand, sum(reserved) AS reserved,
               sum(damaged) AS damaged, sum(quality_control) AS quality_control
        FROM (
            SELECT product_id, warehouse_id, on_hand, reserved, damaged, quality_control
            FROM inventory_balancecheckpoint WHERE checkpoint_id = %(cp_id)s
            UNION ALL
            SELECT product_id, warehouse_id, on_hand_delta, reserved_delta,
                   damaged_delta, quality_control_delta
            FROM {LEDGER} WHERE {since} {cut}
        ) parts
        GROUP BY product_id, warehouse_id
    """
    return sql, params


def ledger_checkpoint_take() -> CheckpointTaken:
    """Take a checkpoint at the position described in the module docstring.

    One INSERT … SELECT of the previous checkpoint's balances plus the ledger
    between its position and the new one (reads only that slice of the ledger;
    the first checkpoint reads all of it). Keeps the newest `CHECKPOINTS_KEPT`.
    PostgreSQL only; on another database nothing is taken.
    """
    if connection.vendor != "postgresql":
        return CheckpointTaken(None, "balance checkpoints need PostgreSQL")
    previous = latest_checkpoint()
    with connection.cursor() as cursor:
        position = _position(cursor)
    if previous is not None and position <= previous.position:
        return CheckpointTaken(None, f"no new position after {previous.position.isoformat()}")
    with transaction.atomic():
        checkpoint = LedgerCheckpoint.objects.create(position=position)
        # The same expression as reconcile's, cut at the new position.
        sums, params = ledger_sums_sql(previous, until=position)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT count(*) FROM {LEDGER}
                WHERE (%(cp_position)s::timestamptz IS NULL OR created_at >= %(cp_position)s)
                  AND created_at < %(cp_until)s
                """,
                params,
            )
            checkpoint.ledger_rows_read = cursor.fetchone()[0]
            cursor.execute(
                f"""
                INSERT INTO inventory_balancecheckpoint
                    (checkpoint_id, product_id, warehouse_id,
                     on_hand, reserved, damaged, quality_control)
                SELECT %(new_id)s, product_id, warehouse_id,
                       on_hand, reserved, damaged, quality_control
                FROM ({sums}) s
                """,
                {**params, "new_id": checkpoint.pk},
            )
            checkpoint.stock_rows = cursor.rowcount
            checkpoint.save(update_fields=["stock_rows", "ledger_rows_read"])
            stale = list(
                LedgerCheckpoint.objects.order_by("-position").values_list("pk", flat=True)[
                    CHECKPOINTS_KEPT:
                ]
            )
            if stale:  # set-based: a checkpoint holds one row per stock row
                cursor.execute(
                    "DELETE FROM inventory_balancecheckpoint WHERE checkpoint_id = ANY(%s)",
                    [stale],
                )
                cursor.execute("DELETE FROM inventory_ledgercheckpoint WHERE id = ANY(%s)", [stale])
    return CheckpointTaken(checkpoint)
