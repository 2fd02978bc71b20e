"""The ledger partitioned with pg_partman (issue #21): the online conversion keeps
every row (including rows written while it copies, by threads racing it), the
append-only trigger holds on every partition, maintenance makes partitions ahead
and retention detaches (never drops), old partitions archive to files and come
back, and reconcile (with checkpoints) works on the partitioned ledger.

Each test runs in its own database (conftest.py), not in a test transaction.
"""

import datetime as dt
import gzip
import json
import threading
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections

from inventory import services
from inventory.models import InventoryTransaction, LedgerArchive

from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory

DAYS_AGO = 5


def q(sql: str, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def old_history(sku: str, days: int = DAYS_AGO) -> None:
    """A receipt and its reversal `days` ago (balanced: the balance does not move),
    so the ledger has rows in a past partition."""
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    for delta in (3, -3):
        q(
            """
            INSERT INTO inventory_inventorytransaction
                (id, product_id, warehouse_id, type, on_hand_delta, reserved_delta,
                 on_hand_after, reserved_after, reference_type, reference_id, reason,
                 created_at, created_by, request_id)
            SELECT %s, i.product_id, i.warehouse_id, 'ADJUST', %s, 0, i.on_hand, i.reserved,
                   '', '', 'old history', %s, 'test', ''
            FROM inventory_inventory i JOIN inventory_product p ON p.id = i.product_id
            WHERE p.sku = %s
            """,
            [uuid.uuid4(), delta, when + dt.timedelta(seconds=delta), sku],
        )


@pytest.fixture
def stocked(partman_db):
    WarehouseFactory(code="BER")
    for sku in ("PT-A", "PT-B", "PT-C"):
        ProductFactory(sku=sku)
        receive(sku, "BER", 50)
    services.stock_reserve(
        order_id="PT-O1", lines=[services.ReserveLine("PT-A", "BER", 2)], actor="user:t"
    )
    old_history("PT-B")
    return partman_db


def ledger_ids() -> set:
    return {r[0] for r in q("SELECT id FROM inventory_inventorytransaction")}


def test_conversion_keeps_every_row_and_the_rows_written_during_the_copy(stocked, settings):
    before = ledger_ids()
    written = []

    def write_between_batches(copied: int) -> None:
        # Both writers run while the copy is under way: the ORM path and the SQL engine.
        written.append(receive("PT-C", "BER", 1))
        settings.STOCKROOM_RESERVE_ENGINE = "sql" if copied % 2 else "python"
        services.stock_reserve(
            order_id=f"PT-DURING-{copied}",
            lines=[services.ReserveLine("PT-A", "BER", 1)],
            actor="user:t",
        )

    result = services.ledger_partition_convert(batch=2, after_batch=write_between_batches)
    assert services.ledger_is_partitioned()
    assert result.batches >= 3 and len(written) == result.batches
    after = ledger_ids()
    retired = {r[0] for r in q("SELECT id FROM inventory_ledger_unpartitioned")}
    assert before < after and after == retired  # nothing lost, nothing doubled
    assert len(after) == q("SELECT count(*) FROM inventory_inventorytransaction")[0][0]
    # Rows landed in their day's partitions, the old history in its own.
    parts = services.ledger_partitions()
    old = [p for p in parts if p.upper <= dt.datetime.now(dt.UTC) - dt.timedelta(days=1)]
    assert old and q(f"SELECT count(*) FROM {old[0].name}")[0][0] == 2
    assert q("SELECT count(*) FROM inventory_inventorytransaction_default")[0][0] == 0
    # The primary key includes the partition key; the model is unchanged.
    assert q(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conname = 'inventory_inventorytransaction_pkey'"
    ) == [("PRIMARY KEY (id, created_at)",)]
    # The service keeps writing through both engines, reconcile is clean.
    for engine in ("sql", "python"):
        settings.STOCKROOM_RESERVE_ENGINE = engine
        services.stock_reserve(
            order_id=f"PT-AFTER-{engine}",
            lines=[services.ReserveLine("PT-B", "BER", 1)],
            actor="user:t",
        )
    events_before = q("SELECT count(*) FROM events_event")[0][0]
    receive("PT-C", "BER", 2)
    assert q("SELECT count(*) FROM events_event")[0][0] > events_before  # events still flow
    row = InventoryTransaction.objects.filter(reference_id="PT-AFTER-sql").get()
    assert InventoryTransaction.objects.get(pk=row.pk).type == "RESERVE"
    assert services.inventory_reconcile().clean
    assert_invariants()
    # Events still flow from the new table (its statement trigger moved with it).
    assert q("SELECT count(*) FROM pg_trigger WHERE tgname = 'events_stock' "
             "AND tgrelid = 'inventory_inventorytransaction'::regclass")[0][0] == 1  # fmt: skip


def test_writer_threads_racing_the_conversion_lose_nothing(stocked):
    """Threads write receipts while the conversion copies and swaps; every receipt
    they were told succeeded is in the partitioned ledger exactly once."""
    start = threading.Barrier(3)
    stop = threading.Event()
    done: list[list] = [[], []]
    errors: list = []

    def writer(k: int) -> None:
        try:
            start.wait(timeout=60)
            n = 0
            while not stop.is_set() or n < 5:
                result = services.stock_receive(
                    sku="PT-C", warehouse="BER", quantity=1, actor="user:t",
                    reference=services.Reference("manual", f"race-{k}-{n}"),
                )  # fmt: skip
                done[k].append(result)
                n += 1
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    start.wait(timeout=60)
    try:
        services.ledger_partition_convert(batch=3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    refs = [r[0] for r in q(
        "SELECT reference_id FROM inventory_inventorytransaction WHERE reference_id LIKE 'race-%%'"
    )]  # fmt: skip
    assert len(refs) == len(set(refs)) == len(done[0]) + len(done[1]) >= 10
    assert services.inventory_reconcile().clean
    assert_invariants()


def test_the_append_only_trigger_holds_on_every_partition(stocked):
    services.ledger_partition_convert()
    services.ledger_partition_maintenance()
    parts = services.ledger_partitions()
    names = [p.name for p in parts] + ["inventory_inventorytransaction_default"]
    q(  # one row in the default partition too
        """
        INSERT INTO inventory_inventorytransaction
            (id, product_id, warehouse_id, type, on_hand_delta, reserved_delta, on_hand_after,
             reserved_after, reference_type, reference_id, reason, created_at, created_by,
             request_id)
        SELECT %s, product_id, warehouse_id, 'ADJUST', 1, 0, 0, 0, '', '', '',
               '2001-01-01', 'test', '' FROM inventory_inventory LIMIT 1
        """,
        [uuid.uuid4()],
    )
    with_rows = [n for n in names if q(f"SELECT count(*) FROM {n}")[0][0]]
    assert len(with_rows) >= 3  # today's, the old history's, the default
    for name in [*with_rows, "inventory_inventorytransaction"]:
        for statement in (f"UPDATE {name} SET reason = 'x'", f"DELETE FROM {name}"):
            with pytest.raises(DatabaseError, match="append-only"):
                q(statement)
    # including a partition pg_partman makes later
    newest = parts[-1].name
    assert q(
        "SELECT count(*) FROM pg_trigger WHERE tgname = 'inventory_ledger_no_update_delete' "
        "AND tgrelid = %s::regclass",
        [newest],
    ) == [(1,)]


def test_maintenance_makes_partitions_ahead_and_retention_detaches_never_drops(stocked, settings):
    from inventory.tasks import ledger_partition_maintenance_task

    assert ledger_partition_maintenance_task.apply().get() == (
        "ledger not partitioned: nothing to do"
    )
    services.ledger_partition_convert(premake=2)
    settings.STOCKROOM_LEDGER_PREMAKE = 4
    settings.STOCKROOM_LEDGER_RETENTION = "2 days"
    message = ledger_partition_maintenance_task.apply().get()
    assert "ledger partitions" in message
    parts = services.ledger_partitions()
    assert parts[-1].upper >= dt.datetime.now(dt.UTC) + dt.timedelta(days=4)
    assert all(p.upper > dt.datetime.now(dt.UTC) - dt.timedelta(days=3) for p in parts)
    detached = [p for p in services.ledger_partitions(detached=True) if not p.attached]
    assert detached, "the old partitions were detached"
    # ... and kept, with their rows (never dropped).
    assert sum(q(f"SELECT count(*) FROM {p.name}")[0][0] for p in detached) == 2
    assert q(
        "SELECT retention, retention_keep_table FROM partman.part_config "
        "WHERE parent_table = 'public.inventory_inventorytransaction'"
    ) == [("2 days", True)]


def test_archive_to_files_and_restore(stocked, settings, tmp_path):
    services.ledger_partition_convert()
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    old = [p for p in services.ledger_partitions() if p.upper <= cutoff]
    assert old
    # Not covered by a checkpoint yet: nothing leaves the database.
    result = services.ledger_partitions_archive(older_than=dt.timedelta(days=1), directory=tmp_path)
    assert result.archived == [] and {n for n, _ in result.skipped} >= {p.name for p in old}
    settings.STOCKROOM_LEDGER_CHECKPOINT_LAG_SECONDS = 0
    services.ledger_checkpoint_take()
    ids_before = ledger_ids()

    out = __import__("io").StringIO()
    call_command(
        "archive_ledger_partitions", "--older-than", "1d", "--to", str(tmp_path), stdout=out
    )
    archived = LedgerArchive.objects.get(partition=old[0].name)
    assert archived.rows == 2 and f"archived {old[0].name}: 2 rows" in out.getvalue()
    assert q("SELECT to_regclass(%s)", [old[0].name]) == [(None,)]
    gz = tmp_path / f"{old[0].name}.csv.gz"
    with gzip.open(gz, "rt") as handle:
        lines = handle.read().splitlines()
    assert lines[0].startswith("id,") and len(lines) == 3
    manifest = json.loads((tmp_path / f"{old[0].name}.json").read_text())
    assert manifest["rows"] == 2 and manifest["sha256"] == archived.sha256
    assert services.inventory_reconcile().clean  # the checkpoint holds the archived rows

    # A tampered file is refused; the real one comes back, attached.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / gz.name).write_bytes(gzip.compress(b"id\n"))
    (bad / f"{old[0].name}.json").write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match="checksum"):
        call_command("restore_ledger_partition", str(bad / gz.name))
    call_command("restore_ledger_partition", str(gz))
    assert ledger_ids() == ids_before
    assert old[0].name in [p.name for p in services.ledger_partitions()]
    archived.refresh_from_db()
    assert archived.restored_at is not None
    with pytest.raises(DatabaseError, match="append-only"):
        q(f"DELETE FROM {old[0].name}")
    assert services.inventory_reconcile().clean
    assert_invariants()
    # Reconcile from the checkpoint on the partitioned ledger still catches a
    # fault planted after it (a ledger row no service wrote).
    q(
        """
        INSERT INTO inventory_inventorytransaction
            (id, product_id, warehouse_id, type, on_hand_delta, reserved_delta, on_hand_after,
             reserved_after, reference_type, reference_id, reason, created_at, created_by,
             request_id)
        SELECT %s, i.product_id, i.warehouse_id, 'ADJUST', 7, 0, 0, 0, '', '', 'planted',
               clock_timestamp(), 'test', ''
        FROM inventory_inventory i JOIN inventory_product p ON p.id = i.product_id
        WHERE p.sku = 'PT-B'
        """,
        [uuid.uuid4()],
    )
    result = services.inventory_reconcile()
    assert result.checkpoint is not None
    assert [(d.sku, d.problems) for d in result.discrepancies] == [
        ("PT-B", ["on hand 50 but ledger sums to 57"])
    ]


def test_an_interrupted_conversion_leaves_the_ledger_as_it_was(stocked):
    before = ledger_ids()

    class Killed(Exception):
        pass

    def die(copied: int) -> None:
        raise Killed

    with pytest.raises(Killed):
        services.ledger_partition_convert(batch=2, after_batch=die)
    assert not services.ledger_is_partitioned()
    assert q("SELECT to_regclass('inventory_ledger_partitioned')") == [(None,)]
    assert q("SELECT count(*) FROM pg_trigger WHERE tgname = 'inventory_ledger_dual_write'") == [
        (0,)
    ]
    receive("PT-C", "BER", 1)  # writers are unaffected
    assert before < ledger_ids()
    services.ledger_partition_convert()  # and a second attempt goes through
    assert services.ledger_is_partitioned() and services.inventory_reconcile().clean


def test_refusals_change_nothing(partman_db):
    with pytest.raises(CommandError, match="not partitioned"):
        call_command("archive_ledger_partitions", "--older-than", "1d", "--to", "/tmp/x")
    with pytest.raises(CommandError, match="older-than"):
        call_command("archive_ledger_partitions", "--older-than", "soon", "--to", "/tmp/x")
    call_command("partition_ledger")
    with pytest.raises(CommandError, match="already partitioned"):
        call_command("partition_ledger")
