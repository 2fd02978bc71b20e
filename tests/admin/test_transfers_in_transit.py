"""The back office's two-step transfers (issue #15, item 3): the ship page (source
among the user's warehouses, errors on their rows, a double submit ships once), the
list, the "Receive in full" action and the receive page (short lines written off with
a reason), for warehouse staff at the destination only."""

import threading

import pytest
from django.db import connection
from django.urls import reverse

from backoffice.models import StaffWarehouse
from backoffice.roles import WAREHOUSE_STAFF
from inventory import services
from inventory.models import InventoryTransaction, TransactionType, Transfer, TransferStatus
from inventory.services import TransferLine
from warehouses.models import Warehouse

from ..factories import StaffUserFactory
from .conftest import _client_for, message_texts, on_hand

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:inventory_transfer_changelist")


@pytest.fixture
def shipped(stocked):
    services.transfer_ship(
        transfer_id="T-1",
        source="BER",
        destination="HAM",
        lines=[TransferLine("A-1", 4), TransferLine("B-2", 6)],
        actor="client:wms",
    )
    return Transfer.objects.get(transfer_id="T-1")


def receive_url(record):
    return reverse("admin:inventory_transfer_receive", args=[record.pk])


def test_staff_see_transfers_in_transit(staff_client, shipped):
    response = staff_client.get(CHANGELIST)
    assert response.status_code == 200
    assert b"T-1" in response.content and b"Receive" in response.content


def test_receive_page_books_a_short_receipt(staff_client, shipped):
    lines = {line.product.sku: line for line in shipped.lines.select_related("product")}
    page = staff_client.get(receive_url(shipped))
    assert page.status_code == 200
    form = {f"line_{lines['A-1'].pk}": "4", f"line_{lines['B-2'].pk}": "5", "reason": ""}
    refused = staff_client.post(receive_url(shipped), form)
    assert refused.status_code == 200  # the page again, with the service's message
    assert b"reason is required" in refused.content
    assert Transfer.objects.get().status == TransferStatus.SHIPPED
    done = staff_client.post(receive_url(shipped), {**form, "reason": "one box crushed"})
    assert done.status_code == 302
    assert "1 unit(s) written off" in " ".join(message_texts(done))
    assert Transfer.objects.get().status == TransferStatus.RECEIVED_SHORT
    assert (on_hand("A-1", "HAM"), on_hand("B-2", "HAM")) == (5 + 4, 5)
    [write_off] = InventoryTransaction.objects.filter(type=TransactionType.WRITE_OFF)
    assert write_off.created_by == "user:wanda"
    assert write_off.reason == "short on receipt: one box crushed"


def test_receive_in_full_action(staff_client, shipped):
    response = staff_client.post(
        CHANGELIST, {"action": "receive_in_full", "_selected_action": [str(shipped.pk)]}
    )
    assert response.status_code == 302
    assert "1 transfer(s) received in full." in message_texts(response)
    assert (on_hand("A-1", "HAM"), on_hand("B-2", "HAM")) == (5 + 4, 6)
    again = staff_client.get(receive_url(shipped))
    assert again.status_code == 302  # received already: back to the transfer


def test_only_staff_at_the_destination_with_the_transfer_permission_receive(
    roles, buyer_client, shipped
):
    berlin_only = StaffUserFactory(username="bo", groups=[WAREHOUSE_STAFF])
    StaffWarehouse.objects.create(user=berlin_only, warehouse=shipped.source)
    client = _client_for(berlin_only)
    assert client.get(receive_url(shipped)).status_code == 403
    response = client.post(
        CHANGELIST, {"action": "receive_in_full", "_selected_action": [str(shipped.pk)]}
    )
    assert "T-1: you do not work at HAM." in message_texts(response)
    assert buyer_client.get(receive_url(shipped)).status_code == 403
    assert Transfer.objects.get().status == TransferStatus.SHIPPED
    assert on_hand("A-1", "HAM") == 5


# --- Shipping from the back office -------------------------------------------------

SHIP = reverse("admin:inventory_transfer_ship")


def ship_form(page, source="BER", destination="HAM", lines=(("A-1", "4"),), **extra):
    """The ship page's POST (step preview) with the transfer id the page was opened with."""
    data = {
        "step": "preview",
        "transfer_id": page.context["form"]["transfer_id"].value(),
        "source": source,
        "destination": destination,
        "expected_date": "",
        "reason": "",
        "lines-TOTAL_FORMS": "5",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        **extra,
    }
    for index, (sku, quantity) in enumerate(lines):
        data[f"lines-{index}-sku"], data[f"lines-{index}-quantity"] = sku, quantity
    return data


def confirm_data(preview):
    return {"step": "confirm", "payload": preview.context["confirm_form"]["payload"].value()}


def test_the_ship_page_is_linked_from_the_list_and_the_start_page(staff_client, stocked):
    assert SHIP.encode() in staff_client.get(CHANGELIST).content
    assert SHIP.encode() in staff_client.get(reverse("admin:index")).content


def test_staff_ship_from_their_warehouse_and_the_ledger_shows_it(staff_client, stocked):
    page = staff_client.get(SHIP)
    assert page.status_code == 200
    data = ship_form(
        page,
        lines=(("a-1", "4"), ("B-2", "6")),  # SKUs in any case, as typed or scanned
        expected_date="2099-01-02",
        reason="restock Hamburg",
    )
    preview = staff_client.post(SHIP, data)
    assert preview.status_code == 200
    assert [(r["sku"], r["quantity"], r["sellable"]) for r in preview.context["preview"]] == [
        ("A-1", 4, 10),
        ("B-2", 6, 20),
    ]
    assert not Transfer.objects.exists()  # a preview changes nothing
    done = staff_client.post(SHIP, confirm_data(preview))
    record = Transfer.objects.get()
    assert done.status_code == 302
    assert done["Location"] == reverse("admin:inventory_transfer_change", args=[record.pk])
    assert record.transfer_id == data["transfer_id"]
    assert (record.source.code, record.destination.code) == ("BER", "HAM")
    assert record.status == TransferStatus.SHIPPED
    assert str(record.expected_date) == "2099-01-02" and record.reason == "restock Hamburg"
    assert record.shipped_by == "user:wanda"
    assert "now in transit" in " ".join(message_texts(done))
    assert (on_hand("A-1", "BER"), on_hand("B-2", "BER")) == (6, 14)
    assert (on_hand("A-1", "HAM"), on_hand("B-2", "HAM")) == (5, 0)  # not arrived yet
    ledger = InventoryTransaction.objects.filter(
        reference_type="transfer", reference_id=record.transfer_id
    )
    assert sorted(
        (row.product.sku, row.warehouse.code, row.on_hand_delta, row.created_by)
        for row in ledger.select_related("product", "warehouse")
    ) == [("A-1", "BER", -4, "user:wanda"), ("B-2", "BER", -6, "user:wanda")]
    # and it is received through the existing page
    staff_client.post(CHANGELIST, {"action": "receive_in_full", "_selected_action": [record.pk]})
    assert (on_hand("A-1", "HAM"), on_hand("B-2", "HAM")) == (9, 6)


def test_a_double_submit_ships_once(staff_client, stocked):
    preview = staff_client.post(SHIP, ship_form(staff_client.get(SHIP)))
    first = staff_client.post(SHIP, confirm_data(preview))
    second = staff_client.post(SHIP, confirm_data(preview))
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert "shipped already; nothing was shipped again" in " ".join(message_texts(second))
    assert Transfer.objects.count() == 1
    assert on_hand("A-1", "BER") == 10 - 4


def test_the_same_page_submitted_twice_through_preview_ships_once(staff_client, stocked):
    """Back button and submit again: the page's transfer id is the same, so it replays."""
    data = ship_form(staff_client.get(SHIP))
    for _ in range(2):
        preview = staff_client.post(SHIP, data)
        assert staff_client.post(SHIP, confirm_data(preview)).status_code == 302
    assert Transfer.objects.count() == 1
    assert on_hand("A-1", "BER") == 6


def test_errors_show_on_their_row_and_nothing_ships(staff_client, stocked):
    page = staff_client.get(SHIP)
    unknown = staff_client.post(SHIP, ship_form(page, lines=(("A-1", "1"), ("NOPE", "1"))))
    assert unknown.status_code == 200
    rows = unknown.context["formset"].forms
    assert not rows[0].errors and rows[1].errors["sku"] == ["Unknown SKU or barcode."]

    too_many = staff_client.post(SHIP, ship_form(page, lines=(("A-1", "1"), ("C-3", "31"))))
    rows = too_many.context["formset"].forms
    assert not rows[0].errors
    assert rows[1].errors["quantity"] == [
        "Not enough sellable stock in BER: C-3 needs 31, 30 sellable."
    ]
    assert b"Not enough sellable stock in BER: C-3 needs 31" in too_many.content

    same = staff_client.post(SHIP, ship_form(page, destination="BER"))
    assert same.context["form"].errors["destination"] == [
        "Source and destination warehouse must differ."
    ]
    assert b"Source and destination warehouse must differ." in same.content
    assert not Transfer.objects.exists()
    assert not InventoryTransaction.objects.filter(reference_type="transfer").exists()


def test_stock_gone_between_preview_and_confirm_ships_nothing(staff_client, stocked):
    preview = staff_client.post(SHIP, ship_form(staff_client.get(SHIP), lines=(("C-3", "30"),)))
    services.stock_adjust(warehouse="BER", sku="C-3", delta=-1, actor="user:root", reason="broken")
    refused = staff_client.post(SHIP, confirm_data(preview))
    assert refused.status_code == 302 and refused["Location"] == SHIP
    assert "Not enough sellable stock in BER: C-3 needs 30, 29 sellable." in message_texts(refused)
    assert not Transfer.objects.exists() and on_hand("C-3", "BER") == 29


def test_shipping_is_refused_outside_the_users_warehouses(roles, buyer_client, stocked):
    hamburg_only = StaffUserFactory(username="ho", groups=[WAREHOUSE_STAFF])
    StaffWarehouse.objects.create(user=hamburg_only, warehouse=Warehouse.objects.get(code="HAM"))
    client = _client_for(hamburg_only)
    page = client.get(SHIP)
    assert page.status_code == 200
    assert [w.code for w in page.context["form"].fields["source"].queryset] == ["HAM"]
    refused = client.post(SHIP, ship_form(page, source="BER", destination="HAM"))
    assert refused.context["form"].errors["source"] == ["Select one of the warehouses you work at."]
    assert buyer_client.get(SHIP).status_code == 403  # no transfer permission
    assert not Transfer.objects.exists() and on_hand("A-1", "BER") == 10


def test_a_preview_confirmed_after_the_user_left_the_warehouse_is_refused(
    staff_user, staff_client, stocked
):
    preview = staff_client.post(SHIP, ship_form(staff_client.get(SHIP)))
    StaffWarehouse.objects.filter(user=staff_user, warehouse__code="BER").delete()
    assert staff_client.post(SHIP, confirm_data(preview)).status_code == 403
    assert not Transfer.objects.exists() and on_hand("A-1", "BER") == 10


def test_a_past_expected_date_is_an_error_on_its_field(staff_client, stocked):
    page = staff_client.get(SHIP)
    refused = staff_client.post(SHIP, ship_form(page, expected_date="2000-01-01"))
    assert refused.context["form"].errors["expected_date"] == [
        "The expected arrival may not be in the past."
    ]
    assert not Transfer.objects.exists()


def test_the_pages_id_shipped_with_other_lines_is_refused_and_starts_afresh(staff_client, stocked):
    page = staff_client.get(SHIP)
    first = staff_client.post(SHIP, ship_form(page))
    staff_client.post(SHIP, confirm_data(first))
    # Back to the same page, another line, confirmed: not a replay, not a second shipment.
    other = staff_client.post(SHIP, ship_form(page, lines=(("B-2", "2"),)))
    refused = staff_client.post(SHIP, confirm_data(other))
    assert refused.status_code == 302 and refused["Location"] == SHIP
    assert Transfer.objects.count() == 1 and on_hand("B-2", "BER") == 20
    fresh = staff_client.get(SHIP).context["form"]["transfer_id"].value()
    assert fresh != page.context["form"]["transfer_id"].value()


@pytest.mark.django_db(transaction=True)
def test_two_confirmations_racing_ship_once(staff_user, stocked):
    """Two tabs (or a double click reaching two workers) confirm the same preview at
    the same moment: one ships, the other replays it."""
    client = _client_for(staff_user)
    preview = client.post(SHIP, ship_form(client.get(SHIP), lines=(("C-3", "30"),)))
    data = confirm_data(preview)
    start = threading.Barrier(2)
    answers = []

    def confirm():
        tab = _client_for(staff_user)
        start.wait()
        try:
            answers.append(tab.post(SHIP, data))
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer.status_code for answer in answers] == [302, 302]
    assert len({answer["Location"] for answer in answers}) == 1
    assert Transfer.objects.count() == 1 and on_hand("C-3", "BER") == 0
    assert InventoryTransaction.objects.filter(reference_type="transfer").count() == 1
