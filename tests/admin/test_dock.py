"""The back office's stock states (issue #15 items 4 and 6, issue #19 items 1 and 2):
moving units between sellable, damaged and quality control (permission per role, a
reason required), the returns dock (what shipped, dispositions, bounded, idempotent),
the start page's "waiting for a decision" panels, the product chart's states, and
closing purchase-order lines short without a delivery."""

import re

import pytest
from django.urls import reverse

from backoffice.forms import sign_payload
from backoffice.models import StaffWarehouse
from backoffice.roles import WAREHOUSE_STAFF
from backoffice.selectors import product_stock_history
from inventory import services
from inventory.models import (
    Inventory,
    InventoryTransaction,
    Product,
    Return,
    ReturnLine,
    TransactionType,
)
from inventory.services import ReserveLine, ReturnLineRequest
from purchasing import services as purchasing
from purchasing.models import PurchaseOrderLine, PurchaseOrderStatus
from purchasing.services import ReceiptLine

from ..factories import ProductFactory, StaffUserFactory
from ..purchasing.factories import PurchaseOrderFactory, SupplierFactory
from .conftest import _client_for, message_texts

MOVE = reverse("admin:backoffice_state_move")
RETURNS = reverse("admin:backoffice_returns")


def row(sku="A-1", code="BER") -> Inventory:
    return Inventory.objects.get(product__sku=sku, warehouse__code=code)


def states(sku="A-1", code="BER"):
    r = row(sku, code)
    return r.on_hand, r.damaged, r.quality_control, r.available


def move_data(**overrides):
    data = {
        "warehouse": "BER",
        "sku": "A-1",
        "from_state": "sellable",
        "to_state": "quality_control",
        "quantity": "3",
        "reason": "dented boxes, check them",
        "token": "8d9c3b0e-8a51-4a4e-9f0b-2f3b1c0d9e11",
    }
    return {**data, **overrides}


def ship(order_id, quantity, sku="A-1", code="BER"):
    services.stock_reserve(
        order_id=order_id, lines=[ReserveLine(sku, code, quantity)], actor="client:shop"
    )
    services.reservation_fulfill(order_id=order_id, actor="client:shop")


# --- State moves -------------------------------------------------------------------


def test_staff_move_sellable_units_to_quality_control_and_back(staff_client, stocked):
    response = staff_client.post(MOVE, move_data())
    assert response.status_code == 302, message_texts(response)
    assert states() == (10, 0, 3, 7)
    [txn] = InventoryTransaction.objects.filter(type=TransactionType.MOVE)
    assert (txn.quality_control_delta, txn.on_hand_delta, txn.created_by) == (3, 0, "user:wanda")
    assert txn.reason == "dented boxes, check them"
    assert txn.reference_id in response["Location"]

    # The QC decision: two pass (sellable again), one is damaged.
    back = move_data(from_state="quality_control", to_state="sellable", quantity="2")
    back["token"] = "11111111-1111-4111-8111-111111111111"
    assert staff_client.post(MOVE, {**back, "reason": "QC passed"}).status_code == 302
    broken = move_data(from_state="quality_control", to_state="damaged", quantity="1")
    broken["token"] = "22222222-2222-4222-8222-222222222222"
    assert staff_client.post(MOVE, {**broken, "reason": "QC failed"}).status_code == 302
    assert states() == (10, 1, 0, 9)


def test_a_double_submitted_move_moves_once(staff_client, stocked):
    staff_client.post(MOVE, move_data())
    again = staff_client.post(MOVE, move_data())
    assert again.status_code == 302
    assert "already saved" in " ".join(message_texts(again))
    assert states() == (10, 0, 3, 7)


def test_a_move_needs_a_reason_and_changes_nothing_without(staff_client, stocked):
    response = staff_client.post(MOVE, move_data(reason=""))
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert states() == (10, 0, 0, 10)


def test_a_move_of_more_than_the_state_holds_is_an_error_not_a_500(staff_client, stocked):
    response = staff_client.post(
        MOVE, move_data(from_state="damaged", to_state="sellable", quantity="1")
    )
    assert response.status_code == 200
    assert any("has 0 units in damaged" in text for text in message_texts(response))
    assert states() == (10, 0, 0, 10)


def test_sellable_units_held_by_orders_cannot_be_moved(staff_client, stocked):
    services.stock_reserve(
        order_id="o-9", lines=[ReserveLine("A-1", "BER", 9)], actor="client:shop"
    )
    response = staff_client.post(MOVE, move_data(quantity="2"))
    assert response.status_code == 200
    assert any("not held by open orders" in text for text in message_texts(response))
    assert states() == (10, 0, 0, 1)


def test_staff_may_not_write_off_managers_may(staff_client, manager_client, stocked):
    staff_client.post(MOVE, move_data(to_state="damaged", quantity="4"))
    page = staff_client.get(MOVE).content.decode()
    assert 'value="written_off"' not in page
    refused = staff_client.post(
        MOVE,
        move_data(
            from_state="damaged",
            to_state="written_off",
            quantity="4",
            token="33333333-3333-4333-8333-333333333333",
        ),
    )
    assert refused.status_code == 200
    assert "Select a valid choice" in refused.content.decode()
    assert states() == (10, 4, 0, 6)

    assert 'value="written_off"' in manager_client.get(MOVE).content.decode()
    done = manager_client.post(
        MOVE,
        move_data(
            from_state="damaged",
            to_state="written_off",
            quantity="4",
            reason="crushed, binned",
            token="44444444-4444-4444-8444-444444444444",
        ),
    )
    assert done.status_code == 302
    assert states() == (6, 0, 0, 6)
    [txn] = InventoryTransaction.objects.filter(type=TransactionType.WRITE_OFF)
    assert (txn.on_hand_delta, txn.damaged_delta, txn.created_by) == (-4, -4, "user:mia")


def test_staff_move_only_at_their_warehouses(roles, warehouse, other_warehouse, stocked):
    from warehouses.models import Warehouse

    Warehouse.objects.create(code="MUC", name="Munich")
    ProductFactory(sku="M-1")
    clerk = StaffUserFactory(username="hans", groups=[WAREHOUSE_STAFF])
    StaffWarehouse.objects.create(user=clerk, warehouse=other_warehouse)
    client = _client_for(clerk)
    response = client.post(MOVE, move_data())  # BER: not theirs
    assert response.status_code == 200
    assert "Select one of the warehouses you work at" in response.content.decode()
    assert states() == (10, 0, 0, 10)


def test_purchasing_and_no_role_may_not_move(buyer_client, no_role_client, stocked):
    assert buyer_client.get(MOVE).status_code == 403
    assert no_role_client.post(MOVE, move_data()).status_code == 403
    assert states() == (10, 0, 0, 10)


def test_the_move_page_opens_filled_in_for_a_row(staff_client, stocked):
    services.stock_move_state(
        sku="A-1",
        warehouse="BER",
        from_state="sellable",
        to_state="quality_control",
        quantity=2,
        reason="check",
        actor="user:x",
    )
    page = staff_client.get(MOVE, {"row": row().pk, "from": "quality_control"})
    text = page.content.decode()
    assert page.status_code == 200
    assert 'id="state-row"' in text
    assert 'name="quantity" value="2"' in text
    assert 'value="quality_control" selected' in text


# --- States on the stock row, the chart and the start page ---------------------------


def test_states_are_columns_of_the_stock_list_and_the_row_page(staff_client, stocked):
    services.stock_move_state(
        sku="A-1",
        warehouse="BER",
        from_state="sellable",
        to_state="damaged",
        quantity=2,
        reason="dropped",
        actor="user:x",
    )
    listing = staff_client.get(reverse("admin:inventory_inventory_changelist"), {"q": "A-1"})
    text = listing.content.decode()
    assert "column-damaged" in text and "column-quality_control" in text
    assert re.search(r"field-damaged[^>]*>2<", text)
    page = staff_client.get(reverse("admin:inventory_inventory_change", args=[row().pk]))
    assert "Quality control" in page.content.decode()
    assert f"{MOVE}?row={row().pk}&amp;from=sellable" in page.content.decode()


def test_the_product_chart_draws_damaged_and_quality_control(stocked):
    for to_state, quantity in (("damaged", 2), ("quality_control", 3)):
        services.stock_move_state(
            sku="A-1",
            warehouse="BER",
            from_state="sellable",
            to_state=to_state,
            quantity=quantity,
            reason="r",
            actor="user:x",
        )
    [ber, ham] = product_stock_history(Product.objects.get(sku="A-1"))
    assert (ber.on_hand, ber.damaged, ber.quality_control) == (10, 2, 3)
    assert 'data-series="damaged"' in ber.chart and 'data-series="quality control"' in ber.chart
    # Walked back from today's states: before the moves, nothing was damaged.
    series = re.search(r'data-series="damaged"[^>]*points="([^"]+)"', ber.chart)
    ys = [float(p.split(",")[1]) for p in series.group(1).split()]
    assert ys[0] > ys[-1]  # SVG y grows downwards: 0 at the start, 2 at the end
    assert 'data-series="damaged"' not in ham.chart  # nothing unsellable there


def test_start_page_lists_quality_control_and_returns_waiting(staff_client, stocked):
    ship("o-1", 4)
    services.stock_return(
        return_id="R-1",
        lines=[ReturnLineRequest("A-1", "BER", 2, "quality_control", "o-1")],
        actor="user:dock",
    )
    page = staff_client.get(reverse("admin:index")).content.decode()
    qc = page[page.index('id="qc-waiting"') :]
    assert "Quality control waiting for a decision: 1 row(s)" in qc
    assert f"?row={row().pk}&amp;from=quality_control" in qc
    returns = page[page.index('id="returns-waiting"') :]
    assert "o-1" in returns and "Quality control" in returns
    # Decided: released to sellable, nothing waits any more.
    services.stock_move_state(
        sku="A-1",
        warehouse="BER",
        from_state="quality_control",
        to_state="sellable",
        quantity=2,
        reason="QC passed",
        actor="user:x",
    )
    page = staff_client.get(reverse("admin:index")).content.decode()
    assert "Nothing held for quality control." in page
    assert "No returned units waiting." in page


def test_the_purchasing_start_page_has_no_dock_panels(buyer_client, stocked):
    page = buyer_client.get(reverse("admin:index")).content.decode()
    assert 'id="qc-waiting"' not in page and 'id="returns-waiting"' not in page


# --- The returns dock --------------------------------------------------------------


def return_data(lines, order_id="", return_id="dock-test-1", warehouse="BER"):
    data = {
        "step": "preview",
        "warehouse": warehouse,
        "order_id": order_id,
        "return_id": return_id,
        "reason": "parcel via DHL",
        "lines-TOTAL_FORMS": str(len(lines)),
        "lines-INITIAL_FORMS": "0",
    }
    for index, (sku, quantity, disposition) in enumerate(lines):
        data[f"lines-{index}-sku"] = sku
        data[f"lines-{index}-quantity"] = str(quantity)
        data[f"lines-{index}-disposition"] = disposition
    return data


def confirm_from(preview) -> dict:
    payload = re.search(r'name="payload" value="([^"]+)"', preview.content.decode()).group(1)
    return {"step": "confirm", "payload": payload}


def test_the_dock_shows_what_the_order_shipped_minus_earlier_returns(staff_client, stocked):
    ship("o-1", 5)
    ship("o-1b", 1, sku="B-2")
    services.stock_return(
        return_id="R-0",
        lines=[ReturnLineRequest("A-1", "BER", 1, "restock", "o-1")],
        actor="user:dock",
    )
    page = staff_client.get(RETURNS, {"order": "o-1"}).content.decode()
    shipped = page[page.index('id="return-shipped"') : page.index("</table>")]
    assert re.search(r'data-sku="A-1">.*?>5<.*?>1<.*?>4<', shipped.replace("\n", ""), flags=re.S)
    assert "B-2" not in shipped
    assert 'name="order_id" value="o-1"' in page
    unknown = staff_client.get(RETURNS, {"order": "nope"}).content.decode()
    assert 'id="return-nothing-shipped"' in unknown


def test_a_return_with_dispositions_books_return_rows_into_each_state(staff_client, stocked):
    ship("o-1", 6)
    lines = [
        ("a-1", 2, "restock"),  # any case
        ("A-1", 1, "damaged"),
        ("A-1", 1, "quality_control"),
        ("A-1", 1, "dispose"),
    ]
    preview = staff_client.post(RETURNS, return_data(lines, order_id="o-1"))
    assert preview.status_code == 200
    text = preview.content.decode()
    assert 'id="return-confirm"' in text and "has-errors" not in text
    assert states() == (4, 0, 0, 4)  # nothing yet
    done = staff_client.post(RETURNS, confirm_from(preview))
    assert done.status_code == 302
    assert "reference_type__exact=return" in done["Location"]
    assert states() == (8, 1, 1, 6)
    [txn] = InventoryTransaction.objects.filter(type=TransactionType.RETURN)
    assert (txn.on_hand_delta, txn.damaged_delta, txn.quality_control_delta) == (4, 1, 1)
    assert (txn.reference_id, txn.created_by) == ("dock-test-1", "user:wanda")
    assert sorted(ReturnLine.objects.values_list("disposition", "quantity", "order_id")) == [
        ("damaged", 1, "o-1"),
        ("dispose", 1, "o-1"),
        ("quality_control", 1, "o-1"),
        ("restock", 2, "o-1"),
    ]
    # A double submit (the same confirmation again) replays: nothing changes.
    again = staff_client.post(RETURNS, confirm_from(preview))
    assert "already booked" in " ".join(message_texts(again))
    assert states() == (8, 1, 1, 6)
    assert Return.objects.count() == 1


def test_more_than_shipped_is_an_error_on_its_row_and_books_nothing(staff_client, stocked):
    ship("o-1", 2)
    data = return_data([("A-1", 3, "restock"), ("B-2", 1, "restock")], order_id="o-1")
    page = staff_client.post(RETURNS, data)
    text = page.content.decode()
    assert page.status_code == 200
    assert 'id="return-form"' in text and 'id="return-confirm"' not in text  # back on the form
    rows = re.findall(r'<tr class="line has-errors">.*?</tr>', text, flags=re.S)
    assert len(rows) == 2
    assert 'value="A-1"' in rows[0] and "Only 2 of A-1 can come back" in rows[0]
    assert 'value="B-2"' in rows[1] and "shipped no B-2" in rows[1]
    assert 'value="3"' in rows[0]  # what was entered stays, to correct
    # A forged confirmation of the refused lines: the service refuses, on the row again.
    payload = {
        "warehouse": "BER",
        "order_id": "o-1",
        "return_id": "dock-forged",
        "reason": "",
        "lines": [["A-1", 3, "restock"]],
    }
    refused = staff_client.post(RETURNS, {"step": "confirm", "payload": sign_payload(payload)})
    assert refused.status_code == 200
    a_row = re.search(
        r'<tr class="has-errors" data-sku="A-1">.*?</tr>', refused.content.decode(), flags=re.S
    )
    assert a_row and "Only 2 of A-1 can come back" in a_row.group(0)
    assert 'id="return-confirm"' not in refused.content.decode()
    assert Return.objects.count() == 0
    assert states() == (8, 0, 0, 8)


def test_a_return_race_on_the_last_returnable_unit_is_refused_on_the_row(staff_client, stocked):
    ship("o-1", 2)
    preview = staff_client.post(RETURNS, return_data([("A-1", 2, "restock")], order_id="o-1"))
    # Meanwhile another return of the same order takes one unit.
    services.stock_return(
        return_id="R-other",
        lines=[ReturnLineRequest("A-1", "BER", 1, "restock", "o-1")],
        actor="user:dock",
    )
    refused = staff_client.post(RETURNS, confirm_from(preview))
    text = refused.content.decode()
    assert "Nothing was booked" in " ".join(message_texts(refused))
    assert re.search(r'has-errors" data-sku="A-1">.*?Only 1 of A-1', text, flags=re.S)
    assert states() == (9, 0, 0, 9)


def test_a_return_without_an_order_is_not_bounded(staff_client, stocked):
    preview = staff_client.post(RETURNS, return_data([("C-3", 5, "quality_control")]))
    done = staff_client.post(RETURNS, confirm_from(preview))
    assert done.status_code == 302
    assert states("C-3") == (35, 0, 5, 30)
    assert ReturnLine.objects.get().order_id == ""


def test_a_dispose_only_return_writes_no_ledger_row(staff_client, stocked):
    ship("o-1", 1)
    preview = staff_client.post(RETURNS, return_data([("A-1", 1, "dispose")], order_id="o-1"))
    done = staff_client.post(RETURNS, confirm_from(preview))
    assert done["Location"] == RETURNS
    assert not InventoryTransaction.objects.filter(type=TransactionType.RETURN).exists()
    assert ReturnLine.objects.get().disposition == "dispose"


def test_dock_bad_input_is_shown_on_its_row_and_changes_nothing(staff_client, stocked):
    bad = staff_client.post(RETURNS, return_data([("NOPE", 1, "restock"), ("A-1", 0, "restock")]))
    assert bad.status_code == 200
    text = bad.content.decode()
    assert "Ensure this value is greater than or equal to 1" in text
    assert text.count("has-errors") >= 1
    unknown = staff_client.post(RETURNS, return_data([("NOPE", 1, "restock")]))
    assert "Unknown SKU or barcode." in unknown.content.decode()
    wrong_site = staff_client.post(RETURNS, return_data([("A-1", 1, "restock")], warehouse="XX"))
    assert "Select one of the warehouses you work at" in wrong_site.content.decode()
    assert Return.objects.count() == 0


def test_only_who_may_book_returns_sees_the_dock(buyer_client, no_role_client, stocked):
    assert buyer_client.get(RETURNS).status_code == 403
    assert no_role_client.get(RETURNS).status_code == 403


# --- Closing purchase-order lines short without a delivery -------------------------


@pytest.fixture
def open_order(stocked, warehouse):
    po = PurchaseOrderFactory(
        supplier=SupplierFactory(), warehouse=warehouse, status=PurchaseOrderStatus.ORDERED
    )
    for sku, quantity in (("A-1", 10), ("B-2", 5), ("C-3", 4)):
        PurchaseOrderLine.objects.create(
            purchase_order=po,
            product=Product.objects.get(sku=sku),
            warehouse=warehouse,
            quantity_ordered=quantity,
        )
    purchasing.purchase_order_receive(
        purchase_order=po, actor="user:x", lines=[ReceiptLine("A-1", 4)], receipt_id="r-1"
    )
    return po


def close_url(po):
    return reverse("admin:purchasing_purchaseorder_close_short", args=[po.pk])


def test_staff_close_outstanding_lines_short_without_receiving(staff_client, open_order):
    page = staff_client.get(close_url(open_order))
    text = page.content.decode()
    assert page.status_code == 200
    assert 'value="A-1"' in text and 'value="B-2"' in text
    before = InventoryTransaction.objects.count()
    response = staff_client.post(
        close_url(open_order), {"sku": ["A-1", "B-2"], "reason": "supplier out of stock"}
    )
    assert response.status_code == 302
    lines = {line.product.sku: line for line in open_order.lines.select_related("product").all()}
    assert lines["A-1"].closed_short_reason == "supplier out of stock"
    assert lines["A-1"].closed_short_by == "user:wanda"
    assert lines["B-2"].closed_short_at is not None
    assert lines["C-3"].closed_short_at is None and lines["C-3"].is_open
    assert InventoryTransaction.objects.count() == before  # nothing received
    open_order.refresh_from_db()
    assert open_order.status == PurchaseOrderStatus.PARTIALLY_RECEIVED
    # Closing the last one finishes the order.
    staff_client.post(close_url(open_order), {"sku": ["C-3"], "reason": "discontinued"})
    open_order.refresh_from_db()
    assert open_order.status == PurchaseOrderStatus.RECEIVED


def test_closing_short_needs_a_reason_and_a_line(staff_client, open_order):
    no_reason = staff_client.post(close_url(open_order), {"sku": ["A-1"], "reason": ""})
    assert no_reason.status_code == 200
    assert "Say why" in no_reason.content.decode()
    no_line = staff_client.post(close_url(open_order), {"reason": "x"})
    assert "Tick at least one line" in no_line.content.decode()
    assert not open_order.lines.filter(closed_short_at__isnull=False).exists()


def test_closing_short_respects_the_warehouses_staff_work_at(roles, open_order, other_warehouse):
    clerk = StaffUserFactory(username="hans", groups=[WAREHOUSE_STAFF])
    StaffWarehouse.objects.create(user=clerk, warehouse=other_warehouse)
    client = _client_for(clerk)
    response = client.post(close_url(open_order), {"sku": ["A-1"], "reason": "x"})
    assert response.status_code in (403, 404)
    assert not open_order.lines.filter(closed_short_at__isnull=False).exists()


def test_change_the_lines_from_the_preview_keeps_them_and_the_return_id(staff_client, stocked):
    ship("o-1", 3)
    preview = staff_client.post(
        RETURNS, return_data([("A-1", 2, "damaged")], order_id="o-1", return_id="dock-keep")
    )
    edit = staff_client.post(RETURNS, {**confirm_from(preview), "step": "edit"})
    text = edit.content.decode()
    assert edit.status_code == 200 and 'id="return-form"' in text
    assert 'name="return_id" value="dock-keep"' in text
    assert 'name="order_id" value="o-1"' in text
    assert 'name="lines-0-sku" value="A-1"' in text
    assert re.search(r'name="lines-0-disposition".*?value="damaged" selected', text, flags=re.S)
    assert Return.objects.count() == 0


def test_below_threshold_counts_good_units_as_the_reorder_rule_does(buyer_client, stocked):
    """The start page's and the list filter's "below reorder threshold" is the reorder
    rule's (good units = on hand - damaged - quality control below the threshold), the
    predicate of the partial index inventory_below_threshold."""
    Inventory.objects.filter(warehouse__code="BER").update(reorder_threshold=12)
    # A-1 (10 on hand) is below; B-2 (20) falls below when 9 units are damaged; C-3
    # (30) stays above although orders hold 25 of it (reserved is not missing stock).
    services.stock_move_state(
        sku="B-2",
        warehouse="BER",
        from_state="sellable",
        to_state="damaged",
        quantity=9,
        reason="flood",
        actor="user:x",
    )
    services.stock_reserve(order_id="o", lines=[ReserveLine("C-3", "BER", 25)], actor="c:shop")
    page = buyer_client.get(reverse("admin:index"))
    assert sorted(r.product.sku for r in page.context["below_threshold"]) == ["A-1", "B-2"]
    listing = buyer_client.get(
        reverse("admin:inventory_inventory_changelist"),
        {"stock": "below_threshold", "warehouse": "all"},
    )
    assert sorted(r.product.sku for r in listing.context["cl"].result_list) == ["A-1", "B-2"]
