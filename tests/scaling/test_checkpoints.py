"""Balance checkpoints (issue #21): reconcile reads the newest checkpoint plus the
ledger since its position; a checkpoint is summed from the ledger, so it cannot
hide a drift that existed when it was taken. Faults are planted to show the check
can fail. (These run on the plain ledger; tests/scaling/test_partitions.py runs
reconcile on a partitioned one.)"""

import datetime as dt
import uuid

import pytest
from django.db import connection

from inventory import services
from inventory.models import BalanceCheckpoint, LedgerCheckpoint

from ..conftest import ledger_mismatches, receive
from ..factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_lag(settings):
    # Inside the test's transaction every row is already written: no lag needed.
    settings.STOCKROOM_LEDGER_CHECKPOINT_LAG_SECONDS = 0


@pytest.fixture
def stocked(db):
    WarehouseFactory(code="BER")
    for sku in ("CP-A", "CP-B"):
        ProductFactory(sku=sku)
    receive("CP-A", "BER", 10)
    receive("CP-B", "BER", 4)
    services.stock_reserve(
        order_id="CP-O1", lines=[services.ReserveLine("CP-A", "BER", 3)], actor="user:t"
    )


def plant_ledger_row(sku: str, on_hand_delta: int, created_at: dt.datetime | None = None) -> None:
    """A ledger row no service wrote (the balance does not move with it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO inventory_inventorytransaction
                (id, product_id, warehouse_id, type, on_hand_delta, reserved_delta,
                 on_hand_after, reserved_after, reference_type, reference_id, reason,
                 created_at, created_by, request_id)
            SELECT %s, i.product_id, i.warehouse_id, 'ADJUST', %s, 0, 0, 0, '', '', 'planted',
                   coalesce(%s, clock_timestamp()), 'test', ''
            FROM inventory_inventory i JOIN inventory_product p ON p.id = i.product_id
            WHERE p.sku = %s
            """,
            [uuid.uuid4(), on_hand_delta, created_at, sku],
        )


def problems() -> dict[str, list[str]]:
    return {d.sku: d.problems for d in services.inventory_reconcile().discrepancies}


def test_a_checkpoint_holds_the_ledger_sums_not_the_balances(stocked):
    plant_ledger_row("CP-B", 2)  # a fault before the checkpoint: ledger says 6, row says 4
    taken = services.ledger_checkpoint_take()
    cp = taken.checkpoint
    assert cp is not None and cp.stock_rows == 2 and cp.ledger_rows_read == 4
    balances = {
        b.product.sku: (b.on_hand, b.reserved)
        for b in BalanceCheckpoint.objects.filter(checkpoint=cp).select_related("product")
    }
    assert balances == {"CP-A": (10, 3), "CP-B": (6, 0)}
    # The fault stays visible after the checkpoint (it was not laundered into it).
    assert problems() == {"CP-B": ["on hand 4 but ledger sums to 6"]}
    assert services.inventory_reconcile().checkpoint == cp


def test_reconcile_reads_only_the_ledger_since_the_checkpoint(stocked):
    assert services.ledger_checkpoint_take().checkpoint is not None
    assert problems() == {}
    # A row dated before the position, appearing after the checkpoint was taken
    # (what the position's lag rules out), is not read: proof reconcile does not
    # scan history before the checkpoint. The independent full-ledger check sees it.
    plant_ledger_row("CP-A", 5, created_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    assert problems() == {}
    assert ledger_mismatches() != []


def test_a_fault_after_the_checkpoint_is_reported_and_fixed(stocked):
    services.ledger_checkpoint_take()
    receive("CP-B", "BER", 1)  # service writes after the checkpoint are read
    assert problems() == {}
    plant_ledger_row("CP-A", -4)
    assert problems() == {"CP-A": ["on hand 10 but ledger sums to 6"]}
    result = services.inventory_reconcile(fix=True, reason="planted")
    assert result.fixed == 1
    assert problems() == {}
    assert ledger_mismatches() == []  # the fix's ADJUST row makes the full ledger agree too


def test_checkpoints_chain_and_read_only_the_slice_between(stocked):
    first = services.ledger_checkpoint_take().checkpoint
    receive("CP-A", "BER", 7)
    services.stock_reserve(
        order_id="CP-O2", lines=[services.ReserveLine("CP-B", "BER", 1)], actor="user:t"
    )
    second = services.ledger_checkpoint_take().checkpoint
    assert second.position > first.position
    assert second.ledger_rows_read == 2
    balances = {
        b.product.sku: (b.on_hand, b.reserved)
        for b in BalanceCheckpoint.objects.filter(checkpoint=second).select_related("product")
    }
    assert balances == {"CP-A": (17, 3), "CP-B": (4, 1)}
    assert problems() == {} and ledger_mismatches() == []


def test_the_position_lags_behind_now(stocked, settings):
    settings.STOCKROOM_LEDGER_CHECKPOINT_LAG_SECONDS = 3600
    cp = services.ledger_checkpoint_take().checkpoint
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        now = cursor.fetchone()[0]
    assert cp.position <= now - dt.timedelta(seconds=3600)


def test_the_position_stays_before_a_transaction_still_open():
    """A writer whose transaction is open when the checkpoint starts may still
    commit rows dated after its start: the position is not later than that start."""
    import threading

    from django.db import connections

    opened, release = threading.Event(), threading.Event()
    started: list = []

    def writer():
        conn = connections.create_connection("default")
        try:
            with conn.cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute("SELECT now()")
                started.append(cursor.fetchone()[0])
                opened.set()
                release.wait(timeout=60)
                cursor.execute("ROLLBACK")
        finally:
            conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert opened.wait(timeout=60)
        cp = services.ledger_checkpoint_take().checkpoint
    finally:
        release.set()
        thread.join()
    assert cp.position <= started[0]


def test_only_the_newest_checkpoints_are_kept(stocked):
    for _ in range(5):
        receive("CP-A", "BER", 1)
        services.ledger_checkpoint_take()
    assert LedgerCheckpoint.objects.count() == 3
    assert BalanceCheckpoint.objects.count() == 6


def test_the_command_and_the_task(stocked):
    from django.core.management import call_command

    from inventory.tasks import ledger_checkpoint_task

    call_command("ledger_checkpoint")
    receive("CP-A", "BER", 1)
    assert ledger_checkpoint_task.apply().get().startswith("checkpoint at ")
    assert LedgerCheckpoint.objects.count() == 2


def test_the_reconcile_command_says_which_checkpoint_it_read(stocked):
    import io

    from django.core.management import call_command

    cp = services.ledger_checkpoint_take().checkpoint
    out = io.StringIO()
    call_command("reconcile", "--no-progress", stdout=out)
    assert out.getvalue() == (
        f"Ledger read from the balance checkpoint at {cp.position.isoformat()} onwards.\n"
        "2 inventory rows checked: all balanced.\n"
    )


def test_beat_runs_the_checkpoint_always_and_partman_maintenance_once_partitioned():
    import json
    import os
    import subprocess
    import sys

    from django.conf import settings

    from inventory_site.celery import app

    script = (
        "import json; from inventory_site.settings import base; "
        "print(json.dumps({k: v['task'] for k, v in base.CELERY_BEAT_SCHEDULE.items()}))"
    )

    def schedule(partitioned: str) -> dict:
        env = {**os.environ, "STOCKROOM_LEDGER_PARTITIONED": partitioned}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    assert schedule("false") == {"ledger-checkpoint": "inventory.tasks.ledger_checkpoint_task"}
    assert schedule("true") == {
        "ledger-checkpoint": "inventory.tasks.ledger_checkpoint_task",
        "ledger-partition-maintenance": "inventory.tasks.ledger_partition_maintenance_task",
    }
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks
