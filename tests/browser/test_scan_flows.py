"""Scan mode in a real browser (issue 19): each flow driven the way a scanner types —
the characters of a SKU or barcode, then Enter — at a laptop (1366 px) and a tablet
(768 px) width, and the ledger checked afterwards.

Enter in the scan input must add the line, never submit the form; repeated scans add
up; an unknown code is an inline error and adds nothing; undo takes the last scan back.
"""

import datetime
import re

import pytest
from django.db import connections

from backoffice.models import StaffWarehouse
from backoffice.roles import WAREHOUSE_STAFF, roles_setup
from inventory.models import Inventory, InventoryTransaction, Product, TransactionType
from purchasing.models import PurchaseOrder, PurchaseOrderLine, PurchaseOrderStatus, Supplier

from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, StaffUserFactory, WarehouseFactory
from .test_staff_flow import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, PASSWORD

pytestmark = pytest.mark.slow

from playwright.sync_api import expect, sync_playwright  # noqa: E402

WIDTHS = {"laptop": (1366, 900), "tablet": (768, 1024)}


@pytest.fixture(autouse=True)
def _django_beside_playwrights_event_loop(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(params=list(WIDTHS))
def page(request, live_server, floor):
    width, height = WIDTHS[request.param]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": width, "height": height})
        page.set_default_timeout(15_000)
        page.width_name = request.param
        page.base = live_server.url
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "wanda")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        expect(page.locator("#backoffice-actions")).to_be_visible()
        try:
            yield page
        finally:
            browser.close()
            connections.close_all()


@pytest.fixture
def floor(transactional_db):
    roles_setup()
    wanda = StaffUserFactory(username="wanda", groups=[WAREHOUSE_STAFF])
    for code in ("BER", "HAM"):
        StaffWarehouse.objects.create(user=wanda, warehouse=WarehouseFactory(code=code))
    for sku, name, barcode, quantity in [
        ("TSHIRT-M", "Organic T-shirt, size M", "4006381333931", 40),
        ("MUG-01", "Enamel mug", "4006381333948", 25),
        ("LAMP-7", "Desk lamp", None, 12),
    ]:
        ProductFactory(sku=sku, name=name, barcode=barcode)
        receive(sku, "BER", quantity)


def scan(page, code):
    """What a keyboard-wedge scanner does: type the characters, then Enter."""
    page.locator("#scan-input").press_sequentially(code, delay=5)
    page.keyboard.press("Enter")


def expect_line(page, sku, quantity):
    row = page.locator(f"table.scan-mode tr[data-sku='{sku}']")
    expect(row.locator("input[name$='-quantity']")).to_have_value(str(quantity))


def assert_touch_targets(page):
    """At tablet width every control of the scan form is at least 44 px tall."""
    if page.width_name != "tablet":
        return
    for selector in ("#scan-input", "#scan-undo", "input[type=submit]", "select"):
        for box in [el.bounding_box() for el in page.locator(selector).all()]:
            if box:  # not hidden
                assert box["height"] >= 44, (selector, box)


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"scan-{name}-{page.width_name}.png"), full_page=True)


def test_cycle_count_by_scanning(page):
    page.goto(f"{page.base}/admin/backoffice/cycle-count/")
    page.select_option("#id_warehouse", "BER")
    page.locator("#scan-input").focus()
    assert page.evaluate("document.activeElement.id") == "scan-input"
    for _ in range(3):
        scan(page, "lamp-7")  # any case, as the lists search
    expect_line(page, "LAMP-7", 3)
    scan(page, "4006381333948")  # MUG-01 by its barcode
    expect_line(page, "MUG-01", 1)
    scan(page, "NOPE-1")
    expect(page.locator("#scan-status")).to_contain_text("Unknown SKU or barcode: NOPE-1")
    expect(page.locator("table.scan-mode tr.scan-line")).to_have_count(2)
    scan(page, "MUG-01")
    expect_line(page, "MUG-01", 2)
    page.click("#scan-undo")  # the last scan back
    expect_line(page, "MUG-01", 1)
    page.fill("table.scan-mode tr[data-sku='MUG-01'] input[name$='-quantity']", "20")
    expect(page.locator("#scan-totals")).to_contain_text("2 line(s), 23 unit(s)")
    assert "cycle-count" in page.url  # Enter never submitted the form
    assert_touch_targets(page)
    shot(page, "count")
    page.click("text=Preview differences")
    expect(page.locator("#count-preview tr", has_text="LAMP-7")).to_contain_text("-9")
    page.fill("#id_reason", "Aisle 4 scan count")
    page.click("text=Confirm count")
    expect(page.locator(".messagelist")).to_contain_text("2 SKU(s) counted, 2 adjusted")
    # The ledger shows who and why without scrolling sideways, on a laptop and a tablet.
    width = page.viewport_size["width"]
    for column in ("created_by", "short_reason"):
        cell = page.locator(f"#result_list td.field-{column}").first
        expect(cell).to_be_visible()
        box = cell.bounding_box()
        assert box["x"] + box["width"] <= width, (column, box, width)
    expect(page.locator("#result_list")).to_contain_text("user:wanda")
    expect(page.locator("#result_list")).to_contain_text("Aisle 4 scan count")
    shot(page, "count-ledger")

    counted = Inventory.objects.filter(warehouse__code="BER", product__sku__in=["LAMP-7", "MUG-01"])
    assert dict(counted.values_list("product__sku", "on_hand")) == {"LAMP-7": 3, "MUG-01": 20}
    adjust = InventoryTransaction.objects.filter(type=TransactionType.ADJUST)
    assert sorted(adjust.values_list("product__sku", "on_hand_delta", "created_by")) == [
        ("LAMP-7", -9, "user:wanda"),
        ("MUG-01", -5, "user:wanda"),
    ]
    assert all(row.last_counted_at is not None for row in counted)
    assert_invariants()


def test_direct_receipt_by_scanning(page):
    page.goto(f"{page.base}/admin/backoffice/receive/")
    page.select_option("#id_warehouse", "HAM")
    page.fill("#id_delivery_note", "DN-2041")
    page.locator("#scan-input").focus()
    for code in ("TSHIRT-M", "tshirt-m", "4006381333931", "LAMP-7"):
        scan(page, code)
    expect_line(page, "TSHIRT-M", 3)
    expect_line(page, "LAMP-7", 1)
    assert "receive" in page.url and page.locator("#receive-preview").count() == 0
    assert_touch_targets(page)
    shot(page, "receive")
    page.click("#receive-submit")
    expect(page.locator("#receive-preview")).to_contain_text("TSHIRT-M")
    page.click("text=Confirm receipt")
    expect(page.locator(".messagelist")).to_contain_text("Received 4 unit(s) of 2 SKU(s) into HAM")

    rows = InventoryTransaction.objects.filter(type=TransactionType.RECEIVE, reference_id="DN-2041")
    assert sorted(rows.values_list("product__sku", "on_hand_delta", "created_by")) == [
        ("LAMP-7", 1, "user:wanda"),
        ("TSHIRT-M", 3, "user:wanda"),
    ]
    # The page remembers the warehouse for the next delivery.
    page.goto(f"{page.base}/admin/backoffice/receive/")
    expect(page.locator("#id_warehouse")).to_have_value("HAM")
    assert_invariants()


def test_transfer_by_scanning(page):
    page.goto(f"{page.base}/admin/backoffice/transfer/")
    page.select_option("#id_source", "BER")
    page.select_option("#id_destination", "HAM")
    page.locator("#scan-input").focus()
    for _ in range(4):
        scan(page, "MUG-01")
    expect_line(page, "MUG-01", 4)
    assert_touch_targets(page)
    page.click("text=Preview transfer")
    page.click("text=Confirm transfer")
    expect(page.locator(".messagelist")).to_contain_text("Transferred 4 unit(s) of 1 SKU(s)")
    ham = Inventory.objects.get(warehouse__code="HAM", product__sku="MUG-01")
    assert ham.on_hand == 4
    moves = InventoryTransaction.objects.filter(type=TransactionType.TRANSFER)
    moved = sorted(moves.values_list("warehouse__code", "on_hand_delta"))
    assert moved == [("BER", -4), ("HAM", 4)]
    assert_invariants()


def test_purchase_order_delivery_by_scanning_and_closing_a_line_short(page):
    supplier = Supplier.objects.create(name="Acme")
    po = PurchaseOrder.objects.create(
        number="PO-9001",
        supplier=supplier,
        warehouse=WarehouseFactory(code="BER"),
        status=PurchaseOrderStatus.ORDERED,
        created_by="user:bert",
        expected_arrival_date=datetime.date.today(),
    )
    for sku, quantity in (("TSHIRT-M", 10), ("MUG-01", 6), ("LAMP-7", 2)):
        PurchaseOrderLine.objects.create(
            purchase_order=po,
            product=Product.objects.get(sku=sku),
            warehouse=po.warehouse,
            quantity_ordered=quantity,
        )
    page.goto(f"{page.base}/admin/")
    expect(page.locator("#deliveries-due")).to_contain_text("PO-9001")
    shot(page, "start")
    page.click("#deliveries-due >> text=Receive")
    expect(page.locator("#po-totals")).to_contain_text("outstanding 18")
    page.locator("#scan-input").focus()
    for code in ("TSHIRT-M",) * 10 + ("mug-01",) * 4:
        scan(page, code)
    expect_line(page, "TSHIRT-M", 10)
    expect_line(page, "MUG-01", 4)
    assert_touch_targets(page)
    shot(page, "po-receive")
    page.click("#po-preview-submit")
    short = page.locator("#po-short-lines tr[data-sku='MUG-01']")
    short.locator("input[value=close]").check()
    short.locator("input[type=text]").fill("Supplier out of stock")
    shot(page, "po-confirm")
    page.click("text=Confirm receipt")
    expect(page.locator(".messagelist")).to_contain_text(re.compile(r"Received .*on PO-9001"))
    expect(page.locator(".messagelist")).to_contain_text("Closed short: MUG-01")

    lines = {line.product.sku: line for line in po.lines.select_related("product")}
    assert (lines["MUG-01"].is_open, lines["MUG-01"].closed_short_by) == (False, "user:wanda")
    assert lines["LAMP-7"].is_open  # not in the delivery: still expected
    ledger = InventoryTransaction.objects.filter(reference_id="PO-9001")
    assert sorted(ledger.values_list("product__sku", "on_hand_delta")) == [
        ("MUG-01", 4),
        ("TSHIRT-M", 10),
    ]
    assert_invariants()
