"""The returns dock and the quality-control decision in a real browser (issue #15 items 4
and 6, issue #19 item 1): driven the way a scanner types (characters, then Enter) at a
laptop (1366 px) and a tablet (768 px) width, the ledger and the states checked
afterwards. Enter in the order field looks the order up; Enter in the scan input adds a
line, never submits the half-filled return.
"""

import pytest

from inventory import services
from inventory.models import Inventory, InventoryTransaction, Return, ReturnLine, TransactionType
from inventory.services import ReserveLine

from ..conftest import assert_invariants
from .test_scan_flows import (  # noqa: F401 - the fixtures, shared with the scan flows
    _django_beside_playwrights_event_loop,
    assert_touch_targets,
    expect_line,
    floor,
    page,
    scan,
    shot,
)

pytestmark = pytest.mark.slow

from playwright.sync_api import expect  # noqa: E402


@pytest.fixture
def shipped(floor):  # noqa: F811
    """Order SO-1001 shipped 3 T-shirts and 2 mugs from BER."""
    services.stock_reserve(
        order_id="SO-1001",
        lines=[ReserveLine("TSHIRT-M", "BER", 3), ReserveLine("MUG-01", "BER", 2)],
        actor="client:shop",
    )
    services.reservation_fulfill(order_id="SO-1001", actor="client:shop")


def type_and_enter(page, selector, text):  # noqa: F811
    page.locator(selector).press_sequentially(text, delay=5)
    page.keyboard.press("Enter")


def row_states(sku, code="BER"):
    row = Inventory.objects.get(product__sku=sku, warehouse__code=code)
    return row.on_hand, row.damaged, row.quality_control, row.available


def test_return_at_the_dock_by_scanning(page, shipped):  # noqa: F811
    page.goto(f"{page.base}/admin/")
    page.click("#backoffice-actions >> text=Returns dock")
    # The order id field has focus: a scan of the order's barcode looks it up.
    assert page.evaluate("document.activeElement.id") == "return-order"
    type_and_enter(page, "#return-order", "SO-1001")
    shipped_table = page.locator("#return-shipped")
    expect(shipped_table.locator("tr[data-sku='TSHIRT-M']")).to_contain_text("3")
    expect(shipped_table.locator("tr[data-sku='MUG-01']")).to_be_visible()
    page.select_option("#id_warehouse", "BER")

    page.locator("#scan-input").focus()
    scan(page, "tshirt-m")
    scan(page, "TSHIRT-M")
    expect_line(page, "TSHIRT-M", 2)
    # The broken one: switch where scans go, then scan it (by its barcode).
    page.select_option("#scan-extra-mode", "damaged")
    page.locator("#scan-input").focus()
    scan(page, "4006381333931")
    damaged = page.locator("table.scan-mode tr[data-sku='TSHIRT-M']").nth(1)
    expect(damaged.locator("select")).to_have_value("damaged")
    expect(damaged.locator("input[name$='-quantity']")).to_have_value("1")
    # A mug scanned by mistake, taken back.
    scan(page, "MUG-01")
    expect(page.locator("table.scan-mode tr.scan-line")).to_have_count(3)
    page.click("#scan-undo")
    expect(page.locator("table.scan-mode tr.scan-line")).to_have_count(2)
    # One too many T-shirts for the order: refused on its row, nothing booked.
    page.select_option("#scan-extra-mode", "restock")
    page.locator("#scan-input").focus()
    scan(page, "TSHIRT-M")
    expect(page.locator("#scan-totals")).to_contain_text("2 line(s), 4 unit(s)")
    assert "/returns/" in page.url and page.locator("#return-preview").count() == 0
    assert_touch_targets(page)
    shot(page, "return")
    page.click("#return-preview-submit")
    # Both T-shirt rows (restock 3, damaged 1) together exceed the 3 shipped.
    error_rows = page.locator("table.scan-mode tr.has-errors")
    expect(error_rows).to_have_count(2)
    expect(error_rows.first).to_contain_text("Only 3 of TSHIRT-M can come back")
    assert Return.objects.count() == 0
    # Correct it on the row (the lines came back as they were), preview, confirm.
    restock = page.locator("table.scan-mode tr.scan-line").filter(
        has=page.locator("select option:checked", has_text="Restock")
    )
    restock.locator("input[name$='-quantity']").fill("2")
    expect(page.locator("#scan-totals")).to_contain_text("2 line(s), 3 unit(s)")
    page.click("#return-preview-submit")
    expect(page.locator("#return-preview")).to_contain_text("Damaged")
    shot(page, "return-preview")
    page.click("#return-confirm")
    expect(page.locator(".messagelist")).to_contain_text(
        "Return booked in BER: 3 unit(s) of 2 line(s) from order SO-1001"
    )
    expect(page.locator("#result_list")).to_contain_text("Return")
    expect(page.locator("#result_list td.field-state_change")).to_contain_text("damaged +1")
    expect(page.locator("#result_list")).to_contain_text("user:wanda")

    [txn] = InventoryTransaction.objects.filter(type=TransactionType.RETURN)
    assert (txn.on_hand_delta, txn.damaged_delta, txn.quality_control_delta) == (3, 1, 0)
    assert (txn.reference_type, txn.created_by) == ("return", "user:wanda")
    assert row_states("TSHIRT-M") == (40, 1, 0, 39)  # 40 - 3 shipped + 3 back, 1 damaged
    assert sorted(ReturnLine.objects.values_list("disposition", "quantity", "order_id")) == [
        ("damaged", 1, "SO-1001"),
        ("restock", 2, "SO-1001"),
    ]
    # Back on the dock, the order shows what may still come back.
    page.goto(f"{page.base}/admin/backoffice/returns/?order=SO-1001")
    expect(page.locator("#return-shipped tr[data-sku='TSHIRT-M'] td").nth(4)).to_have_text("0")
    assert_invariants()


def test_quality_control_decision_from_the_start_page(page, shipped):  # noqa: F811
    services.stock_return(
        return_id="R-77",
        lines=[services.ReturnLineRequest("MUG-01", "BER", 2, "quality_control", "SO-1001")],
        actor="user:dock",
    )
    page.goto(f"{page.base}/admin/")
    expect(page.locator("#qc-waiting")).to_contain_text("MUG-01")
    expect(page.locator("#returns-waiting")).to_contain_text("SO-1001")
    shot(page, "start-qc")
    page.click("#qc-waiting >> text=Decide")
    expect(page.locator("#state-row")).to_contain_text("MUG-01")
    expect(page.locator("#id_from_state")).to_have_value("quality_control")
    expect(page.locator("#id_to_state")).to_have_value("sellable")
    expect(page.locator("#id_quantity")).to_have_value("2")
    # Staff may not write off: the choice is not offered.
    assert page.locator("#id_to_state option[value=written_off]").count() == 0
    # Without a reason the form does not go (the browser holds it; the server would too).
    page.fill("#id_reason", "")
    page.click("#state-move-submit")
    assert page.evaluate("document.querySelector('#id_reason').validity.valueMissing")
    assert not InventoryTransaction.objects.filter(type=TransactionType.MOVE).exists()
    page.fill("#id_quantity", "1")
    page.fill("#id_reason", "QC passed, repacked")
    if page.width_name == "tablet":
        for selector in ("#id_quantity", "#id_reason", "#id_to_state", "#state-move-submit"):
            assert page.locator(selector).bounding_box()["height"] >= 44, selector
    shot(page, "qc-decision")
    page.click("#state-move-submit")
    expect(page.locator(".messagelist")).to_contain_text(
        "Moved 1 x MUG-01 in BER from quality control to sellable"
    )
    expect(page.locator("#result_list")).to_contain_text("QC passed, repacked")
    # The other one failed QC: damaged.
    page.goto(f"{page.base}/admin/")
    page.click("#qc-waiting >> text=Decide")
    page.select_option("#id_to_state", "damaged")
    page.fill("#id_reason", "QC failed: cracked")
    page.click("#state-move-submit")
    expect(page.locator(".messagelist")).to_contain_text("to damaged")

    moves = InventoryTransaction.objects.filter(type=TransactionType.MOVE).order_by("id")
    assert list(moves.values_list("quality_control_delta", "damaged_delta", "created_by")) == [
        (-1, 0, "user:wanda"),
        (-1, 1, "user:wanda"),
    ]
    assert row_states("MUG-01") == (25, 1, 0, 24)
    page.goto(f"{page.base}/admin/")
    expect(page.locator("#qc-waiting")).to_contain_text("Nothing held for quality control")
    assert_invariants()
