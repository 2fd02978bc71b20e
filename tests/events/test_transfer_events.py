"""Two-step transfers (issue #15, item 3) emit `stock.changed` through the ledger
trigger like every stock change: the ship at the source, the receipt (and the
write-off of a short line) at the destination. No event type of their own."""

import pytest

from events.models import Event
from inventory import services
from inventory.services import TransferLine
from tests.conftest import receive
from tests.factories import ProductFactory, WarehouseFactory

from .conftest import events_of

pytestmark = pytest.mark.django_db


def test_ship_and_short_receipt_emit_stock_changed_per_ledger_row(db):
    ProductFactory(sku="EV-T")
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    receive("EV-T", "BER", 10)
    Event.objects.all().delete()
    services.transfer_ship(
        transfer_id="EV-T1", source="BER", destination="HAM",
        lines=[TransferLine("EV-T", 6)], actor="client:wms",
    )  # fmt: skip
    (shipped,) = events_of("stock.changed")
    assert (shipped.warehouse, shipped.data["on_hand"]) == ("BER", 4)
    Event.objects.all().delete()
    services.transfer_receive(
        transfer_id="EV-T1", actor="client:wms", received={"EV-T": 5}, reason="one broken"
    )
    arrived = events_of("stock.changed")
    assert [(e.warehouse, e.data["on_hand"]) for e in arrived] == [("HAM", 6), ("HAM", 5)]
