"""A warehouse worker's day in a real browser: log in, count, transfer, check the ledger.

Drives Debian's Chromium (/usr/bin/chromium; `.ci/run` installs it) through
Playwright against pytest-django's live server. Screenshots of every step go to
test-artifacts/ (git-ignored); docs/img/ holds copies for the staff guide.
"""

import os
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connections

from backoffice.models import StaffWarehouse
from backoffice.roles import WAREHOUSE_STAFF, roles_setup
from inventory.models import Inventory, InventoryTransaction, TransactionType

from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, StaffUserFactory, WarehouseFactory

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "staff-password"

pytestmark = pytest.mark.slow

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run should have installed chromium")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


@pytest.fixture(autouse=True)
def _django_beside_playwrights_event_loop(monkeypatch):
    # Playwright's sync API runs an asyncio loop in this thread; Django's ORM
    # refuses to run in a thread with a running loop unless told it is safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser_page():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            browser.close()
            # ORM calls made while Playwright runs get their own connection (its
            # sync API switches context); close it, or the test database cannot
            # be dropped at the end of the run.
            connections.close_all()


@pytest.fixture
def shop(transactional_db):
    roles_setup()
    wanda = StaffUserFactory(username="wanda", groups=[WAREHOUSE_STAFF])
    for code, name in (("BER", "Berlin fulfilment centre"), ("HAM", "Hamburg fulfilment centre")):
        # Warehouse staff act only where they work (none assigned: nowhere).
        StaffWarehouse.objects.create(user=wanda, warehouse=WarehouseFactory(code=code, name=name))
    for sku, name, quantity in [
        ("TSHIRT-M", "Organic T-shirt, size M", 40),
        ("MUG-01", "Enamel mug", 25),
        ("LAMP-7", "Desk lamp", 12),
    ]:
        ProductFactory(sku=sku, name=name)
        receive(sku, "BER", quantity)
    receive("MUG-01", "HAM", 4)
    Inventory.objects.filter(product__sku="LAMP-7").update(
        reorder_threshold=15, reorder_quantity=30
    )


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def fill_line(page, index, sku, quantity):
    """Scan mode (scan.js): the SKU typed into the scan input and Enter add the line;
    then the quantity is typed over (index: kept for readability only)."""
    row = page.locator(f"table.scan-mode tr[data-sku='{sku}']")
    if not row.count():
        page.locator("#scan-input").press_sequentially(sku)
        page.keyboard.press("Enter")
    row.locator("input[name$='-quantity']").fill(str(quantity))


def on_hand(sku, code):
    return Inventory.objects.get(product__sku=sku, warehouse__code=code).on_hand


def test_warehouse_staff_count_transfer_and_check_the_ledger(live_server, shop, browser_page):
    page = browser_page
    base = live_server.url

    # Log in.
    page.goto(f"{base}/admin/")
    page.fill("#id_username", "wanda")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#backoffice-actions")).to_contain_text("Cycle count")
    expect(page.locator("#counts-due")).to_contain_text("LAMP-7")  # never counted
    shot(page, "01-start-page")

    # Cycle count: two SKUs typed in, one pasted.
    page.click("#backoffice-actions >> text=Cycle count")
    page.select_option("#id_warehouse", "BER")
    fill_line(page, 0, "TSHIRT-M", 37)
    fill_line(page, 1, "MUG-01", 25)
    page.click("details.more-lines summary")
    page.fill("#id_paste", "LAMP-7,14")
    shot(page, "02-cycle-count-form")
    page.click("text=Preview differences")
    preview = page.locator("#count-preview")
    expect(preview).to_contain_text("TSHIRT-M")
    expect(preview.locator("tr", has_text="TSHIRT-M")).to_contain_text("-3")
    expect(preview.locator("tr", has_text="LAMP-7")).to_contain_text("+2")
    page.fill("#id_reason", "Weekly count, aisle 4")
    shot(page, "03-cycle-count-preview")
    page.click("text=Confirm count")
    expect(page.locator(".messagelist")).to_contain_text("3 SKU(s) counted, 2 adjusted")
    expect(page.locator("#result_list")).to_contain_text("TSHIRT-M")
    shot(page, "04-cycle-count-saved-ledger")
    assert (on_hand("TSHIRT-M", "BER"), on_hand("LAMP-7", "BER")) == (37, 14)

    # Transfer: asking for more than is available is refused, and nothing moves.
    page.goto(f"{base}/admin/")
    page.click("#backoffice-actions >> text=Transfer")
    page.select_option("#id_source", "BER")
    page.select_option("#id_destination", "HAM")
    page.fill("#id_reason", "Rebalance for the Hamburg promotion")
    fill_line(page, 0, "MUG-01", 30)
    page.click("text=Preview transfer")
    expect(page.locator(".messagelist")).to_contain_text("MUG-01 needs 30, 25 available")
    shot(page, "05-transfer-refused")

    # … then a transfer that fits.
    fill_line(page, 0, "MUG-01", 10)
    fill_line(page, 1, "TSHIRT-M", 5)
    page.click("text=Preview transfer")
    expect(page.locator("#transfer-preview")).to_contain_text("MUG-01")
    shot(page, "06-transfer-preview")
    page.click("text=Confirm transfer")
    expect(page.locator(".messagelist")).to_contain_text("Transferred 15 unit(s) of 2 SKU(s)")
    shot(page, "07-transfer-saved-ledger")
    assert (on_hand("MUG-01", "BER"), on_hand("MUG-01", "HAM")) == (15, 14)

    # The ledger shows both, newest first, with who did it.
    page.goto(f"{base}/admin/inventory/inventorytransaction/")
    results = page.locator("#result_list tbody tr")
    expect(results.first).to_contain_text("Transfer")
    ledger_text = page.locator("#result_list").inner_text()
    assert len(re.findall(r"^\S+ \S+\s+Transfer\t", ledger_text, re.M)) == 4
    assert len(re.findall(r"^\S+ \S+\s+Adjust\t", ledger_text, re.M)) == 2
    assert "user:wanda" in ledger_text
    shot(page, "08-ledger")
    page.click("#changelist-filter >> text=Adjust")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)

    # The product page charts its stock per warehouse.
    page.goto(f"{base}/admin/inventory/product/?q=MUG-01")
    page.click("#result_list >> text=MUG-01")
    charts = page.locator("#stock-history svg")
    expect(charts).to_have_count(2)
    expect(page.locator('#stock-history [data-warehouse="HAM"]')).to_contain_text("on hand: 14")
    shot(page, "09-product-chart")

    # The start page now charts today's movements.
    page.goto(f"{base}/admin/")
    transfer_bar = page.locator('#movements-today rect[data-label="TRANSFER"]')
    expect(transfer_bar).to_have_attribute("data-value", "30")
    shot(page, "10-start-page-after")

    adjust = InventoryTransaction.objects.filter(type=TransactionType.ADJUST)
    assert {t.created_by for t in adjust} == {"user:wanda"}
    assert_invariants()


def test_receive_with_the_product_autocomplete(live_server, shop, browser_page):
    page = browser_page
    page.goto(f"{live_server.url}/admin/backoffice/receive/")
    page.fill("#id_username", "wanda")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.select_option("#id_warehouse", "HAM")
    page.click("details.one-product summary")
    page.click(".select2-selection")
    page.fill(".select2-search__field", "lamp")
    page.click(".select2-results__option >> text=LAMP-7")
    page.fill("#id_quantity", "6")
    page.fill("#id_delivery_note", "DN-2041")
    shot(page, "11-receive-form")
    page.click("#receive-submit")
    expect(page.locator(".messagelist")).to_contain_text(
        re.compile(r"Received 6 x LAMP-7 into HAM: on hand is now 6")
    )
    shot(page, "12-receive-saved")
    assert on_hand("LAMP-7", "HAM") == 6
    assert User.objects.filter(username="wanda").exists()
    assert_invariants()
