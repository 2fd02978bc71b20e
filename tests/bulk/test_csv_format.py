"""stock_receive_bulk reads real-world CSV: any column order, BOM, blanks, quotes, spaces,
and names every bad row with its line number and reason."""

import io

import pytest

from inventory import services
from inventory.services.bulk import BulkFormatError

from .conftest import errors_by_line, on_hand, receive_csv, stock_snapshot

pytestmark = pytest.mark.django_db


def test_header_in_another_order_with_bom_blank_lines_quotes_and_whitespace(catalogue):
    text = (
        "\ufeff Quantity , Reference,warehouse ,SKU\r\n"
        "\r\n"
        '  5 , "PO-1, part 2" , BER , SKU-A \r\n'
        ",,,\r\n"
        '"7","PO-1","HAM","SKU-B"\r\n'
        "   \r\n"
        ' 9 ,PO-2, "BER", "SKU-C"\r\n'
    )
    result = receive_csv(text)
    assert (result.rows, result.invalid, result.applied) == (3, 0, 3)
    assert on_hand("SKU-A", "BER") == 5
    assert on_hand("SKU-B", "HAM") == 7
    assert on_hand("SKU-C", "BER") == 9
    from inventory.models import InventoryTransaction

    refs = set(InventoryTransaction.objects.values_list("reference_id", flat=True))
    assert refs == {"PO-1, part 2", "PO-1", "PO-2"}


def test_bad_quantities_are_named_by_line(catalogue):
    text = (
        "sku,warehouse,quantity\n"
        "SKU-A,BER,abc\n"
        "SKU-A,HAM,-4\n"
        "SKU-B,BER,0\n"
        "SKU-B,HAM,2.5\n"
        "SKU-C,BER,\n"
        "SKU-C,HAM,1000001\n"
        "PRE-1,BER,3\n"
    )
    result = receive_csv(text, reference="R", atomic=False)
    assert errors_by_line(result) == dict.fromkeys(range(2, 8), "bad_quantity")
    messages = {row.line: row.message for row in result.bad_rows}
    assert "not a whole number" in messages[2]
    assert "got -4" in messages[3]
    assert result.applied == 1
    assert on_hand("PRE-1", "BER") == 3


def test_unknown_sku_unknown_and_inactive_warehouse_and_duplicates(catalogue):
    text = (
        "sku,warehouse,quantity\n"
        "SKU-A,BER,1\n"
        "NOPE,BER,1\n"
        "SKU-A,XXX,1\n"
        "SKU-A,OLD,1\n"
        "SKU-A,BER,2\n"
        "SKU-B,BER,1\n"
    )
    result = receive_csv(text, reference="R", atomic=False)
    assert errors_by_line(result) == {
        3: "unknown_sku",
        4: "unknown_warehouse",
        5: "warehouse_inactive",
        6: "duplicate",
    }
    assert "line 2" in next(r.message for r in result.bad_rows if r.line == 6)
    assert on_hand("SKU-A", "BER") == 1  # the first of the duplicates, once


def test_a_duplicate_names_the_first_good_line_of_its_pair(catalogue):
    # The first line of the pair is unreadable: the second is applied, the third
    # and fifth are its duplicates (whatever comes between them).
    text = (
        "sku,warehouse,quantity\n"
        "SKU-A,BER,x\n"
        "SKU-A,BER,1\n"
        "SKU-B,BER,4\n"
        "SKU-A,BER,2\n"
        "SKU-A,HAM,3\n"
        "SKU-A,BER,5\n"
    )
    result = receive_csv(text, reference="R", atomic=False)
    assert errors_by_line(result) == {2: "bad_quantity", 5: "duplicate", 7: "duplicate"}
    assert {r.line: r.message for r in result.bad_rows if r.error == "duplicate"} == {
        5: "duplicate of line 3 (same SKU and warehouse)",
        7: "duplicate of line 3 (same SKU and warehouse)",
    }
    assert (on_hand("SKU-A", "BER"), on_hand("SKU-B", "BER"), on_hand("SKU-A", "HAM")) == (1, 4, 3)


def test_rows_with_missing_or_extra_cells_and_missing_values(catalogue):
    text = (
        "sku,warehouse,quantity\n"
        "SKU-A,BER\n"
        "SKU-A,BER,1,surplus\n"
        ",BER,1\n"
        "SKU-B,,1\n"
        "SKU-C,BER,1,\n"  # a trailing empty cell is fine
    )
    result = receive_csv(text, reference="R", atomic=False)
    assert errors_by_line(result) == {
        2: "missing_columns",
        3: "too_many_columns",
        4: "missing_sku",
        5: "missing_warehouse",
    }
    assert result.applied == 1


def test_a_quoted_field_spanning_lines_reports_the_line_the_row_starts_on(catalogue):
    text = 'sku,warehouse,quantity,reference\nSKU-A,BER,1,"two\nlines"\nNOPE,BER,1,R\n'
    result = receive_csv(text, atomic=False)
    assert errors_by_line(result) == {4: "unknown_sku"}
    assert result.applied == 1


def test_a_nul_character_makes_a_bad_row_not_a_crash(catalogue):
    result = receive_csv("sku,warehouse,quantity\nSKU\x00A,BER,1\nSKU-B,BER,2\n", reference="R",
                         atomic=False)  # fmt: skip
    assert errors_by_line(result) == {2: "unknown_sku"}
    assert on_hand("SKU-B", "BER") == 2


def test_every_row_needs_a_reference(catalogue):
    result = receive_csv("sku,warehouse,quantity\nSKU-A,BER,1\n")
    assert errors_by_line(result) == {2: "missing_reference"}
    assert on_hand("SKU-A", "BER") is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("SKU-A,BER,5\nSKU-B,BER,6\n", "must be a header"),
        ("sku,warehouse\nSKU-A,BER\n", "missing column(s): quantity"),
        ("sku,sku,warehouse,quantity\n", "named twice"),
        ("\n\n", "empty"),
        ("", "empty"),
    ],
)
def test_a_file_without_a_usable_header_is_refused_whole(catalogue, text, fragment):
    before = stock_snapshot()
    with pytest.raises(BulkFormatError) as caught:
        receive_csv(text, reference="R")
    assert fragment in caught.value.message
    assert stock_snapshot() == before


def test_a_file_that_is_not_utf8_is_refused_with_nothing_applied(catalogue):
    raw = io.BytesIO(b"sku,warehouse,quantity\nSKU-A,BER,1\nSKU-\xff,BER,1\n")
    before = stock_snapshot()
    with pytest.raises(BulkFormatError, match="not UTF-8"):
        services.stock_receive_bulk(
            source=io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""),
            actor="user:t",
            reference="R",
        )
    assert stock_snapshot() == before


def test_report_lists_every_bad_row_in_line_order(catalogue):
    report = io.StringIO()
    text = "sku,warehouse,quantity\nNOPE,BER,1\nSKU-A,BER,x\nSKU-A,BER,1\n"
    receive_csv(text, reference="R", report=report)
    lines = report.getvalue().splitlines()
    assert lines[0] == "line,sku,warehouse,quantity,reference,error,message"
    assert [line.split(",")[0] for line in lines[1:]] == ["2", "3"]
    assert "unknown_sku" in lines[1] and "bad_quantity" in lines[2]
