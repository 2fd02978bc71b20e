"""The management commands: thin wrappers with honest exit codes, reports and progress."""

import io
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from inventory.models import Inventory, InventoryTransaction

from .conftest import on_hand, stock_snapshot

pytestmark = pytest.mark.django_db


def write(tmp_path: Path, text: str, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bulk_receive_applies_a_good_file_and_exits_zero(catalogue, tmp_path):
    path = write(tmp_path, "sku,warehouse,quantity\nSKU-A,BER,5\nSKU-B,HAM,3\n")
    out = io.StringIO()
    call_command("bulk_receive", str(path), "--reference", "DN-1", "--no-progress", stdout=out)
    assert "2 applied" in out.getvalue()
    assert (on_hand("SKU-A", "BER"), on_hand("SKU-B", "HAM")) == (5, 3)
    report = (tmp_path / "in.csv.report.csv").read_text().splitlines()
    assert report == ["line,sku,warehouse,quantity,reference,error,message"]


def test_bulk_receive_bad_row_exits_one_names_the_row_and_applies_nothing(catalogue, tmp_path):
    path = write(tmp_path, "sku,warehouse,quantity\nSKU-A,BER,5\nNOPE,BER,3\n")
    before = stock_snapshot()
    with pytest.raises(CommandError) as caught:
        call_command("bulk_receive", str(path), "--reference", "DN-1", "--no-progress",
                     stdout=io.StringIO())  # fmt: skip
    assert caught.value.returncode == 1
    assert "line 3" in str(caught.value) and "unknown SKU NOPE" in str(caught.value)
    assert "Nothing was applied" in str(caught.value)
    assert stock_snapshot() == before
    report = (tmp_path / "in.csv.report.csv").read_text().splitlines()
    assert report[1].startswith("3,NOPE,BER,3,DN-1,unknown_sku,")


def test_bulk_receive_skip_invalid_applies_good_rows_and_still_exits_one(catalogue, tmp_path):
    path = write(tmp_path, "sku,warehouse,quantity\nSKU-A,BER,5\nNOPE,BER,3\n")
    report = tmp_path / "bad.csv"
    with pytest.raises(CommandError) as caught:
        call_command("bulk_receive", str(path), "--reference", "DN-1", "--skip-invalid",
                     "--report", str(report), "--no-progress", stdout=io.StringIO())  # fmt: skip
    assert caught.value.returncode == 1
    assert on_hand("SKU-A", "BER") == 5
    assert "unknown_sku" in report.read_text()


def test_bulk_receive_dry_run_applies_nothing(catalogue, tmp_path):
    path = write(tmp_path, "sku,warehouse,quantity\nSKU-A,BER,5\n")
    out = io.StringIO()
    call_command("bulk_receive", str(path), "--reference", "DN-1", "--dry-run", "--no-progress",
                 stdout=out)  # fmt: skip
    assert "Dry run" in out.getvalue()
    assert on_hand("SKU-A", "BER") is None


def test_bulk_receive_unreadable_file_exits_two(catalogue, tmp_path):
    path = write(tmp_path, "SKU-A,BER,5\n")
    with pytest.raises(CommandError) as caught:
        call_command("bulk_receive", str(path), "--reference", "R", "--no-progress")
    assert caught.value.returncode == 2
    assert "header" in str(caught.value)
    with pytest.raises(CommandError) as missing:
        call_command("bulk_receive", str(tmp_path / "nope.csv"), "--reference", "R")
    assert missing.value.returncode == 2


def test_bulk_receive_reads_stdin(catalogue, tmp_path, monkeypatch):
    class Stdin:
        buffer = io.BytesIO(b"\xef\xbb\xbfsku,warehouse,quantity\nSKU-C,HAM,4\n")

    monkeypatch.setattr(sys, "stdin", Stdin())
    monkeypatch.chdir(tmp_path)
    call_command("bulk_receive", "-", "--reference", "DN-1", "--no-progress",
                 stdout=io.StringIO())  # fmt: skip
    assert on_hand("SKU-C", "HAM") == 4
    assert list(tmp_path.glob("bulk_receive-*.report.csv"))


def test_bulk_receive_logs_progress_lines_when_not_on_a_terminal(catalogue, tmp_path, caplog):
    path = write(tmp_path, "sku,warehouse,quantity\nSKU-A,BER,5\n")
    with caplog.at_level("INFO", logger="inventory.bulk"):
        call_command("bulk_receive", str(path), "--reference", "DN-1", stdout=io.StringIO())
    text = caplog.text
    assert "reading rows" in text and "rows/s" in text and "applying" in text


def test_terminal_progress_draws_a_bar_with_rate_and_eta():
    from inventory.management.progress import TerminalProgress

    stream = io.StringIO()
    progress = TerminalProgress(stream)
    progress.phase("reading rows", total=10)
    progress.advance(4)
    progress.close()
    drawn = stream.getvalue()
    assert "reading rows" in drawn and "40%" in drawn and "rows/s" in drawn


def test_seed_demo_is_set_based_on_the_ledger_and_idempotent():
    out = io.StringIO()
    call_command("seed_demo", "--skus", "60", "--warehouses", "3", "--no-progress", stdout=out)
    assert Inventory.objects.count() == 180
    stocked = Inventory.objects.filter(on_hand__gt=0).count()
    assert InventoryTransaction.objects.filter(type="RECEIVE").count() == stocked > 0
    assert Inventory.objects.filter(product__stock_policy="backorder").exists()
    assert Inventory.objects.filter(product__stock_policy="preorder").exists()
    assert Inventory.objects.exclude(backorder_allowance=0).exists()
    before = stock_snapshot()
    call_command("seed_demo", "--skus", "60", "--warehouses", "3", "--no-progress",
                 stdout=io.StringIO())  # fmt: skip
    assert stock_snapshot() == before
    call_command("seed_demo", "--skus", "60", "--warehouses", "4", "--no-progress",
                 stdout=io.StringIO())  # fmt: skip
    assert Inventory.objects.count() == 240
    call_command("reconcile", "--no-progress", stdout=io.StringIO())  # clean: no error


def test_seed_demo_rejects_nonsense():
    with pytest.raises(CommandError):
        call_command("seed_demo", "--skus", "0", "--no-progress")


def test_export_round_trips_through_bulk_receive(catalogue, tmp_path):
    call_command("seed_demo", "--skus", "30", "--warehouses", "2", "--no-progress",
                 stdout=io.StringIO())  # fmt: skip
    export = tmp_path / "export.csv"
    call_command("export_inventory", "--output", str(export), "--skip-zero")
    lines = export.read_text().splitlines()
    assert lines[0] == (
        "sku,warehouse,quantity,reserved,available,reorder_threshold,reorder_quantity,version,"
        "safety_stock,damaged,quality_control"
    )
    exported = {tuple(line.split(",")[:2]): int(line.split(",")[2]) for line in lines[1:]}
    in_db = {
        (sku, code): qty
        for sku, code, qty in Inventory.objects.filter(on_hand__gt=0).values_list(
            "product__sku", "warehouse__code", "on_hand"
        )
    }
    assert exported == in_db and exported
    # The export is valid bulk_receive input: receiving it doubles every balance.
    call_command("bulk_receive", str(export), "--reference", "ROUND-TRIP", "--no-progress",
                 stdout=io.StringIO())  # fmt: skip
    for (sku, code), qty in exported.items():
        assert on_hand(sku, code) == 2 * qty


def test_export_of_one_warehouse_and_unknown_warehouse(catalogue, tmp_path):
    from .conftest import receive_csv

    receive_csv("sku,warehouse,quantity\nSKU-A,BER,5\nSKU-A,HAM,6\n", reference="R")
    export = tmp_path / "ber.csv"
    call_command("export_inventory", "-o", str(export), "--warehouse", "HAM")
    assert export.read_text().splitlines()[1:] == ["SKU-A,HAM,6,0,6,0,0,1,0,0,0"]
    with pytest.raises(CommandError, match="Unknown warehouse"):
        call_command("export_inventory", "-o", str(export), "--warehouse", "NOPE")


def test_export_has_the_stock_states_and_sellable_available(catalogue, tmp_path):
    """Issue #15: safety stock, damaged and quality control are columns; available
    is the sellable figure (on hand - reserved - safety - damaged - QC)."""
    from inventory import services
    from inventory.services import ReserveLine

    from .conftest import receive_csv

    receive_csv("sku,warehouse,quantity\nSKU-A,HAM,20\n", reference="R")
    Inventory.objects.filter(product__sku="SKU-A", warehouse__code="HAM").update(safety_stock=2)
    for to_state, quantity in (("damaged", 3), ("quality_control", 4)):
        services.stock_move_state(
            sku="SKU-A", warehouse="HAM", from_state="sellable", to_state=to_state,
            quantity=quantity, reason="inspect", actor="u",
        )  # fmt: skip
    services.stock_reserve(order_id="o", lines=[ReserveLine("SKU-A", "HAM", 5)], actor="c")
    export = tmp_path / "ham.csv"
    call_command("export_inventory", "-o", str(export), "--warehouse", "HAM")
    header, row = export.read_text().splitlines()
    assert dict(zip(header.split(","), row.split(","), strict=True)) == {
        "sku": "SKU-A", "warehouse": "HAM", "quantity": "20", "reserved": "5",
        "available": "6", "reorder_threshold": "0", "reorder_quantity": "0",
        "version": "4", "safety_stock": "2", "damaged": "3", "quality_control": "4",
    }  # fmt: skip
