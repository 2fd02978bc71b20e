"""The two-step transfer checker (chaos.checker.transfer_problems) is computed
from the ledger, independently of the transfer's own lines and status, and
finds each planted fault: a line that says more was shipped than left the
source, a received transfer whose destination never got the units, a write-off
that does not match the receipt, units that arrived while the transfer still
says in transit."""

import pytest

from chaos.checker import transfer_problems
from inventory import services
from inventory.models import Transfer, TransferLine
from inventory.services import TransferLine as ShipLine

from ..conftest import receive
from ..factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def shipped(db):
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    ProductFactory(sku="TRC-A")
    receive("TRC-A", "BER", 10)
    services.transfer_ship(
        transfer_id="TRC-1", source="BER", destination="HAM",
        lines=[ShipLine("TRC-A", 6)], actor="u",
    )  # fmt: skip
    return Transfer.objects.get(transfer_id="TRC-1")


def problems():
    return [p for _, _, found in transfer_problems() for p in found]


def test_clean_in_transit_and_after_a_short_receipt(shipped):
    assert transfer_problems() == []
    services.transfer_receive(
        transfer_id="TRC-1", actor="u", received={"TRC-A": 4}, reason="2 lost"
    )
    assert transfer_problems() == []


def test_a_line_claiming_more_than_left_the_source(shipped):
    TransferLine.objects.filter(transfer=shipped).update(quantity_shipped=7)
    [found] = problems()
    assert "source ledger -6" in found and "7 shipped" in found


def test_a_received_transfer_whose_units_never_arrived(shipped):
    TransferLine.objects.filter(transfer=shipped).update(quantity_received=6)
    Transfer.objects.filter(pk=shipped.pk).update(status="received")
    assert any("destination ledger +0" in p for p in problems())


def test_a_write_off_that_does_not_match_the_receipt(shipped):
    services.transfer_receive(
        transfer_id="TRC-1", actor="u", received={"TRC-A": 4}, reason="2 lost"
    )
    TransferLine.objects.filter(transfer=shipped).update(quantity_received=5)
    assert any("write-offs -2" in p and "received 5" in p for p in problems())


def test_units_that_arrived_while_the_transfer_says_in_transit(shipped):
    services.transfer_receive(transfer_id="TRC-1", actor="u")
    Transfer.objects.filter(pk=shipped.pk).update(status="shipped")
    found = problems()
    assert any("destination ledger +6" in p and "status shipped" in p for p in found)
    assert any("in transit with a received quantity 6" in p for p in found)
