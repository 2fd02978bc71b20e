"""Shipping a two-step transfer from the back office in a real browser (issue #15 item
3): from the start page, lines scanned the way a scanner types (characters, then Enter)
at a laptop (1366 px) and a tablet (768 px) width; Enter in the scan input adds a line,
never submits the half-filled shipment; the ledger and the transfer checked afterwards.
"""

import datetime

import pytest

from inventory.models import Inventory, InventoryTransaction, Transfer, TransferStatus

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


def test_ship_a_transfer_by_scanning_from_the_start_page(page):  # noqa: F811
    page.goto(f"{page.base}/admin/")
    page.locator("#backoffice-actions").get_by_role("link", name="Ship a transfer").click()
    expect(page.locator("#ship-form")).to_be_visible()
    page.select_option("#id_source", "BER")
    page.select_option("#id_destination", "HAM")
    arrival = datetime.date.today() + datetime.timedelta(days=2)
    page.fill("#id_expected_date", arrival.isoformat())
    page.fill("#id_reason", "Hamburg pop-up")
    page.locator("#scan-input").focus()
    for _ in range(3):
        scan(page, "mug-01")  # any case
    scan(page, "4006381333931")  # TSHIRT-M by its barcode
    scan(page, "NOPE-1")
    expect(page.locator("#scan-status")).to_contain_text("Unknown SKU or barcode: NOPE-1")
    expect_line(page, "MUG-01", 3)
    expect_line(page, "TSHIRT-M", 1)
    assert "/ship/" in page.url and not Transfer.objects.exists()  # Enter never submitted
    assert_touch_targets(page)
    shot(page, "ship")
    page.click("text=Preview shipment")
    expect(page.locator("#ship-preview tr", has_text="MUG-01")).to_contain_text("25")
    page.click("text=Confirm shipment")
    expect(page.locator(".messagelist")).to_contain_text("4 unit(s) of 2 SKU(s)")
    expect(page.locator(".messagelist")).to_contain_text("now in transit")
    shot(page, "ship-done")

    record = Transfer.objects.get()
    assert (record.status, record.expected_date) == (TransferStatus.SHIPPED, arrival)
    assert record.shipped_by == "user:wanda" and record.reason == "Hamburg pop-up"
    left = InventoryTransaction.objects.filter(reference_id=record.transfer_id)
    assert sorted(left.values_list("warehouse__code", "product__sku", "on_hand_delta")) == [
        ("BER", "MUG-01", -3),
        ("BER", "TSHIRT-M", -1),
    ]
    ham = Inventory.objects.filter(warehouse__code="HAM", product__sku="MUG-01").first()
    assert ham is None or ham.on_hand == 0  # in transit, not arrived
    assert_invariants()
