"""The back office's two-step transfers (issue #15, item 3): the list, the
"Receive in full" action and the receive page (short lines written off with a
reason), for warehouse staff at the destination only."""

import pytest
from django.urls import reverse

from backoffice.models import StaffWarehouse
from backoffice.roles import WAREHOUSE_STAFF
from inventory import services
from inventory.models import InventoryTransaction, TransactionType, Transfer, TransferStatus
from inventory.services import TransferLine

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
