"""stock_receive_bulk applies set-based, all-or-nothing or good-rows-only, exactly once per
reference, writes the ledger and tells the after-commit listeners."""

import threading
import uuid

import pytest
from django.db import connection

from inventory import services
from inventory.models import AppliedOperation, Inventory, InventoryTransaction
from inventory.services import bulk

from ..conftest import assert_invariants
from .conftest import errors_by_line, on_hand, receive_csv, stock_snapshot

pytestmark = pytest.mark.django_db

GOOD = "sku,warehouse,quantity\nSKU-A,BER,5\nSKU-B,HAM,7\nPRE-1,BER,2\n"


def test_applies_rows_with_ledger_rows_keys_and_new_inventory_rows(catalogue):
    services.stock_receive(sku="SKU-A", warehouse="BER", quantity=10, actor="user:t")
    version_before = Inventory.objects.get(product__sku="SKU-A", warehouse__code="BER").version

    result = receive_csv(GOOD, reference="DN-1")

    assert (result.rows, result.applied, result.invalid) == (3, 3, 0)
    row = Inventory.objects.get(product__sku="SKU-A", warehouse__code="BER")
    assert (row.on_hand, row.version) == (15, version_before + 1)
    new_row = Inventory.objects.get(product__sku="PRE-1", warehouse__code="BER")
    assert (new_row.on_hand, new_row.backorder_allowance) == (2, 7)
    entry = InventoryTransaction.objects.get(product__sku="SKU-A", reference_id="DN-1")
    assert (entry.type, entry.on_hand_delta, entry.on_hand_after, entry.reserved_after) == (
        "RECEIVE", 5, 15, 0,
    )  # fmt: skip
    assert (entry.reference_type, entry.created_by, entry.reason) == (
        "import", "user:tester", "bulk receive",
    )  # fmt: skip
    assert uuid.UUID(str(entry.id)).version == 7
    assert AppliedOperation.objects.filter(key="receive:import:DN-1:SKU-A:BER").exists()
    assert_invariants()


def test_atomic_mode_applies_nothing_when_any_row_is_bad(catalogue):
    receive_csv("sku,warehouse,quantity\nSKU-A,BER,1\n", reference="EARLIER")
    before = stock_snapshot()
    result = receive_csv(GOOD + "NOPE,BER,1\n", reference="DN-1")
    assert (result.invalid, result.applied) == (1, 0)
    assert stock_snapshot() == before


def test_atomic_mode_rolls_back_everything_when_the_database_refuses_mid_apply(catalogue):
    """A failure inside the apply statement (here a trigger refusing one row) leaves no
    balance, ledger row or idempotency key behind."""
    receive_csv("sku,warehouse,quantity\nSKU-A,BER,1\nSKU-B,HAM,1\n", reference="EARLIER")
    before = stock_snapshot()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION test_refuse_sku_b() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.product_id = (SELECT id FROM inventory_product WHERE sku = 'SKU-B') THEN
                RAISE EXCEPTION 'refused for the test';
              END IF;
              RETURN NEW;
            END $$;
            CREATE TRIGGER test_refuse BEFORE UPDATE ON inventory_inventory
              FOR EACH ROW EXECUTE FUNCTION test_refuse_sku_b();
            """
        )
    with pytest.raises(Exception, match="refused for the test"):
        receive_csv(GOOD, reference="DN-1")
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_refuse ON inventory_inventory")
    after = stock_snapshot()
    # The empty PRE-1@BER row was created (holding no locks) before the apply: that
    # is the foundation's rule and changes no balance. Nothing else moved.
    after["rows"] = [r for r in after["rows"] if r[:2] != ("PRE-1", "BER")]
    assert after == before


def test_skip_invalid_applies_exactly_the_good_rows(catalogue):
    text = (
        "sku,warehouse,quantity\n"
        "SKU-A,BER,5\n"
        "NOPE,BER,1\n"
        "SKU-B,HAM,x\n"
        "SKU-B,HAM,7\n"
        "SKU-C,OLD,1\n"
        "SKU-A,BER,9\n"
    )
    result = receive_csv(text, reference="DN-1", atomic=False)
    assert errors_by_line(result) == {3: "unknown_sku", 4: "bad_quantity",
                                      6: "warehouse_inactive", 7: "duplicate"}  # fmt: skip
    assert (result.applied, result.invalid) == (2, 4)
    assert sorted(
        Inventory.objects.filter(on_hand__gt=0).values_list(
            "product__sku", "warehouse__code", "on_hand"
        )
    ) == [("SKU-A", "BER", 5), ("SKU-B", "HAM", 7)]
    assert InventoryTransaction.objects.count() == 2
    assert_invariants()


def test_skip_invalid_commits_in_chunks_with_the_same_outcome(catalogue, monkeypatch):
    monkeypatch.setattr(bulk, "APPLY_CHUNK", 2)
    text = "sku,warehouse,quantity\n" + "".join(
        f"{sku},{code},{n + 1}\n"
        for n, (sku, code) in enumerate(
            (s, c) for s in ("SKU-A", "SKU-B", "SKU-C", "PRE-1") for c in ("BER", "HAM")
        )
    )
    result = receive_csv(text, reference="DN-1", atomic=False)
    assert (result.rows, result.applied) == (8, 8)
    assert sum(Inventory.objects.values_list("on_hand", flat=True)) == sum(range(1, 9))
    assert_invariants()


def test_dry_run_validates_and_changes_nothing(catalogue):
    before = stock_snapshot()
    result = receive_csv(GOOD + "NOPE,BER,1\n", reference="DN-1", dry_run=True)
    assert (result.rows, result.invalid, result.applied) == (4, 1, 0)
    assert stock_snapshot() == before


def test_rerunning_the_same_file_and_reference_applies_nothing_twice(catalogue):
    first = receive_csv(GOOD, reference="DN-1")
    after_first = stock_snapshot()
    again = receive_csv(GOOD, reference="DN-1")
    assert (first.applied, again.applied, again.already_applied, again.invalid) == (3, 0, 3, 0)
    assert stock_snapshot() == after_first
    assert on_hand("SKU-A", "BER") == 5


def test_a_partly_applied_file_rerun_applies_only_the_rest(catalogue):
    receive_csv("sku,warehouse,quantity\nSKU-A,BER,5\n", reference="DN-1")
    result = receive_csv(GOOD, reference="DN-1")
    assert (result.applied, result.already_applied) == (2, 1)
    assert on_hand("SKU-A", "BER") == 5


def test_the_same_reference_with_another_quantity_is_a_conflict(catalogue):
    receive_csv(GOOD, reference="DN-1")
    result = receive_csv("sku,warehouse,quantity\nSKU-A,BER,6\n", reference="DN-1")
    assert errors_by_line(result) == {2: "idempotency_conflict"}
    assert on_hand("SKU-A", "BER") == 5


def test_another_reference_receives_again(catalogue):
    receive_csv(GOOD, reference="DN-1")
    receive_csv(GOOD, reference="DN-2")
    assert on_hand("SKU-A", "BER") == 10


def test_bulk_and_single_receives_share_idempotency_keys(catalogue):
    receive_csv(GOOD, reference="PO-9", reference_type="purchase_order")
    replay = services.stock_receive(
        sku="SKU-A", warehouse="BER", quantity=5, actor="user:t",
        reference=services.Reference("purchase_order", "PO-9"),
    )  # fmt: skip
    assert replay.replayed
    services.stock_receive(
        sku="SKU-C", warehouse="HAM", quantity=4, actor="user:t",
        reference=services.Reference("purchase_order", "PO-9"),
    )  # fmt: skip
    result = receive_csv(
        "sku,warehouse,quantity\nSKU-C,HAM,4\n", reference="PO-9", reference_type="purchase_order"
    )
    assert (result.applied, result.already_applied) == (0, 1)
    assert on_hand("SKU-A", "BER") == 5
    assert on_hand("SKU-C", "HAM") == 4


def test_committed_rows_are_published_after_commit_in_batches(
    catalogue, monkeypatch, django_capture_on_commit_callbacks
):
    heard = []
    monkeypatch.setattr(services.ledger, "COMMITTED_CHANGE_LISTENERS", [heard.append])
    monkeypatch.setattr(bulk, "PUBLISH_BATCH", 2)
    with django_capture_on_commit_callbacks(execute=True):
        receive_csv(GOOD, reference="DN-1")
    assert [len(batch) for batch in heard] == [2, 1]
    changes = {
        (c.inventory_id, c.sku, c.warehouse_code, c.on_hand, c.version, c.type, c.available)
        for b in heard
        for c in b
    }
    rows = Inventory.objects.filter(on_hand__gt=0).select_related("product", "warehouse")
    # The natural keys travel with each change (the read model does not read them back).
    assert changes == {
        (r.id, r.product.sku, r.warehouse.code, r.on_hand, r.version, "RECEIVE", r.available)
        for r in rows
    }


def test_batches_reach_every_listener_in_order_on_a_worker_before_the_call_returns(
    catalogue, monkeypatch, django_capture_on_commit_callbacks
):
    heard, threads = [], set()

    def failing(batch):
        raise RuntimeError("a listener that fails never stops the others")

    def listening(batch):
        threads.add(threading.current_thread().name)
        heard.append([c.sku for c in batch])

    monkeypatch.setattr(services.ledger, "COMMITTED_CHANGE_LISTENERS", [failing, listening])
    monkeypatch.setattr(bulk, "PUBLISH_BATCH", 1)
    with django_capture_on_commit_callbacks(execute=True):
        receive_csv(GOOD, reference="DN-1")
    # Published by line, one batch each, all of them by the time the call returned,
    # from the worker thread (the read-back of the next batch overlaps it).
    assert heard == [["SKU-A"], ["SKU-B"], ["PRE-1"]]
    assert threads and threading.current_thread().name not in threads


def test_ledger_ids_ascend_in_the_order_the_rows_are_written(catalogue):
    # Lines in SKU order; the apply writes (product, warehouse) order, and the
    # ledger ids (numbered at validation) ascend in it, so the ledger's primary
    # key and ledger_product_time are filled in key order, not at random.
    text = "sku,warehouse,quantity\n" + "".join(
        f"{sku},{code},{n + 1}\n"
        for n, (sku, code) in enumerate(
            (sku, code) for sku in ("PRE-1", "SKU-A", "SKU-B", "SKU-C") for code in ("BER", "HAM")
        )
    )
    receive_csv(text, reference="DN-ORDER")
    rows = list(
        InventoryTransaction.objects.filter(reference_id="DN-ORDER")
        .order_by("id")
        .values_list("product_id", "warehouse_id", "id")
    )
    assert len(rows) == 8 and len({r[2] for r in rows}) == 8
    assert [r[:2] for r in rows] == sorted(r[:2] for r in rows)
    assert all(uuid.UUID(str(r[2])).version == 7 for r in rows)


def test_nothing_is_published_for_a_refused_file(
    catalogue, monkeypatch, django_capture_on_commit_callbacks
):
    heard = []
    monkeypatch.setattr(services.ledger, "COMMITTED_CHANGE_LISTENERS", [heard.append])
    with django_capture_on_commit_callbacks(execute=True):
        receive_csv(GOOD + "NOPE,BER,1\n", reference="DN-1")
    assert heard == []


class RssProbe(bulk.NullProgress):
    """Samples the process's resident memory every 10,000 rows while the file is read."""

    def __init__(self) -> None:
        self.rows = 0
        self.samples: list[int] = []

    def advance(self, n: int = 1) -> None:
        self.rows += n
        if self.rows % 10_000 == 0:
            with open("/proc/self/statm") as statm:
                self.samples.append(int(statm.read().split()[1]) * 4096)


def test_a_huge_generated_file_streams_in_flat_memory(db):
    """200,000 rows from a generator (never a whole file in memory): every row is read
    and validated, the bad ones named, and resident memory does not grow with the
    rows read (holding them would cost well over 50 MB)."""
    from inventory.models import Product
    from warehouses.models import Warehouse

    Warehouse.objects.bulk_create(Warehouse(code=f"W{w:03d}", name=f"W{w}") for w in range(100))
    Product.objects.bulk_create(Product(sku=f"HUGE-{n:05d}", name="x") for n in range(2000))
    bad_lines = {50_001, 100_001, 150_001, 200_001}

    def lines():
        yield "sku,warehouse,quantity\n"
        for i in range(200_000):
            n, w = divmod(i, 100)
            quantity = "oops" if i + 2 in bad_lines else str(1 + i % 50)
            yield f"HUGE-{n:05d},W{w:03d},{quantity}\n"

    probe = RssProbe()
    result = services.stock_receive_bulk(
        source=lines(), actor="user:t", reference="BIG", dry_run=True, progress=probe
    )
    assert result.rows == 200_000
    assert {row.line for row in result.bad_rows} == bad_lines
    assert len(probe.samples) == 20
    growth = max(probe.samples) - probe.samples[0]
    assert growth < 15 * 1024 * 1024, f"resident memory grew {growth / 1e6:.1f} MB"


@pytest.mark.django_db(transaction=True)
def test_the_connection_gets_its_own_timeouts_back(catalogue):
    """A pooled connection must not keep the bulk session's settings for later requests."""

    def timeouts():
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            statement = cursor.fetchone()[0]
            cursor.execute("SHOW lock_timeout")
            lock = cursor.fetchone()[0]
            cursor.execute("SHOW work_mem")
            return statement, lock, cursor.fetchone()[0]

    before = timeouts()
    receive_csv(GOOD, reference="DN-1")
    services.inventory_reconcile()
    assert timeouts() == before


def test_rows_found_missing_at_validation_are_created_or_found_then_applied_by_id(
    catalogue, monkeypatch
):
    """The staging table carries each row's inventory id from validation; rows missing
    then are created before the apply, or found if someone else created them meanwhile
    (here a single receive between validation and the apply), and every row is then
    applied once, by id, with its ledger row: the same outcome as before the change,
    across chunks mixing existing and new rows."""
    monkeypatch.setattr(bulk, "APPLY_CHUNK", 2)
    services.stock_receive(sku="SKU-A", warehouse="BER", quantity=10, actor="user:t")

    class CreatedMeanwhile(bulk.NullProgress):
        def phase(self, name: str, total: int | None = None) -> None:
            if name == "applying":
                services.stock_receive(sku="PRE-1", warehouse="BER", quantity=4, actor="user:o")

    text = (
        "sku,warehouse,quantity\nSKU-A,BER,5\nSKU-B,HAM,7\nPRE-1,BER,2\nNOPE,BER,1\nSKU-C,HAM,1\n"
    )
    result = receive_csv(text, reference="DN-9", atomic=False, progress=CreatedMeanwhile())

    assert (result.applied, result.invalid, result.already_applied) == (4, 1, 0)
    assert errors_by_line(result) == {5: "unknown_sku"}
    assert [on_hand(*pair) for pair in [("SKU-A", "BER"), ("SKU-B", "HAM"), ("PRE-1", "BER"),
            ("SKU-C", "HAM")]] == [15, 7, 6, 1]  # fmt: skip
    entries = InventoryTransaction.objects.filter(reference_id="DN-9").order_by("on_hand_after")
    assert [(e.product.sku, e.on_hand_delta, e.on_hand_after) for e in entries] == [
        ("SKU-C", 1, 1), ("PRE-1", 2, 6), ("SKU-B", 7, 7), ("SKU-A", 5, 15),
    ]  # fmt: skip
    assert (
        Inventory.objects.get(product__sku="PRE-1", warehouse__code="BER").backorder_allowance == 7
    )
    again = receive_csv(text, reference="DN-9", atomic=False)
    assert (again.applied, again.already_applied) == (0, 4)
    assert_invariants()
