"""Two-step transfers (issue #15, item 3) in the feed: each step emits `stock.changed`
through the ledger trigger like every stock change, and one event of its own,
`transfer.shipped` / `transfer.received`, written by the triggers on the transfer's
tables in the same transaction (events migration 0006). The instant transfer has no
transfer row and emits only `stock.changed`."""

import datetime
import time

import pytest
from django.db import transaction
from django.utils import timezone

from events import services as event_services
from events.models import Delivery, Event
from inventory import errors, services
from inventory.context import reset_request_id, set_request_id
from inventory.models import InventoryTransaction
from inventory.services import TransferLine
from tests.api.conftest import make_caller
from tests.conftest import receive
from tests.factories import ProductFactory, WarehouseFactory

from .conftest import Follower, events_of

pytestmark = pytest.mark.django_db

TRANSFER_TYPES = ("transfer.shipped", "transfer.received")


@pytest.fixture
def stocked(db):
    ProductFactory(sku="EV-T")
    ProductFactory(sku="EV-U")
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    receive("EV-T", "BER", 10)
    receive("EV-U", "BER", 3)
    Event.objects.all().delete()  # only the events of the test's own changes


def ship(transfer_id="EV-T1", lines=(("EV-T", 6), ("EV-U", 2)), **kwargs):
    return services.transfer_ship(
        transfer_id=transfer_id,
        source="BER",
        destination="HAM",
        lines=[TransferLine(sku, qty) for sku, qty in lines],
        actor="client:wms",
        **kwargs,
    )


def ledger_ids(transfer_id, warehouse):
    return [
        str(t.id)
        for t in InventoryTransaction.objects.filter(
            reference_type="transfer", reference_id=transfer_id, warehouse__code=warehouse
        ).order_by("created_at", "id")
    ]


def test_ship_and_short_receipt_emit_stock_changed_per_ledger_row(stocked):
    ship(lines=[("EV-T", 6)])
    (shipped,) = events_of("stock.changed")
    assert (shipped.warehouse, shipped.data["on_hand"]) == ("BER", 4)
    Event.objects.all().delete()
    services.transfer_receive(
        transfer_id="EV-T1", actor="client:wms", received={"EV-T": 5}, reason="one broken"
    )
    arrived = events_of("stock.changed")
    assert [(e.warehouse, e.data["on_hand"]) for e in arrived] == [("HAM", 6), ("HAM", 5)]


def test_ship_emits_transfer_shipped_with_the_whole_shipment(stocked):
    due = timezone.localdate() + datetime.timedelta(days=2)
    result = ship(expected_date=due, reason="rebalance")

    (event,) = events_of("transfer.shipped")
    assert (event.sku, event.warehouse, event.stream) == ("", "BER", "transfer:EV-T1")
    data = dict(event.data)
    assert data.pop("shipped_at")  # the transfer row's timestamp
    assert data == {
        "transfer_id": "EV-T1",
        "status": "shipped",
        "source": "BER",
        "destination": "HAM",
        "expected_date": due.isoformat(),
        "reason": "rebalance",
        "shipped_by": "client:wms",
        "lines": [
            {"sku": "EV-T", "quantity_shipped": 6},
            {"sku": "EV-U", "quantity_shipped": 2},
        ],
        "ledger_ids": [str(t.id) for t in result.transactions],
    }
    assert data["ledger_ids"] == ledger_ids("EV-T1", "BER") and len(data["ledger_ids"]) == 2
    # In the feed after the stock changes of the same transaction (the lines are its
    # last statement).
    order = [e.type for e in events_of()]
    assert order.index("transfer.shipped") > max(
        n for n, kind in enumerate(order) if kind == "stock.changed"
    )


def test_short_receipt_emits_transfer_received_with_what_arrived(stocked):
    ship(expected_date=None)
    Event.objects.all().delete()

    services.transfer_receive(
        transfer_id="EV-T1", actor="user:dock", received={"EV-T": 5}, reason="one broken"
    )

    (event,) = events_of("transfer.received")
    assert (event.sku, event.warehouse, event.stream) == ("", "HAM", "transfer:EV-T1")
    data = dict(event.data)
    assert data.pop("received_at")
    assert data == {
        "transfer_id": "EV-T1",
        "status": "received_short",
        "source": "BER",
        "destination": "HAM",
        "expected_date": None,
        "received_by": "user:dock",
        "receive_reason": "one broken",
        "lines": [
            {"sku": "EV-T", "quantity_shipped": 6, "quantity_received": 5, "quantity_short": 1},
            {"sku": "EV-U", "quantity_shipped": 2, "quantity_received": 2, "quantity_short": 0},
        ],
        # TRANSFER per SKU, then the WRITE_OFF of the unit short, at the destination
        "ledger_ids": ledger_ids("EV-T1", "HAM"),
    }
    assert len(data["ledger_ids"]) == 3
    order = [e.type for e in events_of()]
    assert order[-1] == "transfer.received"
    assert not events_of("transfer.shipped")  # the receipt emits no second shipped


def test_a_full_receipt_is_received_and_retries_emit_nothing_more(stocked):
    ship()
    services.transfer_receive(transfer_id="EV-T1", actor="user:dock")
    ship()  # replays
    services.transfer_receive(transfer_id="EV-T1", actor="user:dock")  # replays
    assert [e.type for e in events_of(*TRANSFER_TYPES)] == list(TRANSFER_TYPES)
    (received,) = events_of("transfer.received")
    assert received.data["status"] == "received"
    assert {line["quantity_short"] for line in received.data["lines"]} == {0}


def test_a_refused_step_emits_nothing(stocked):
    with pytest.raises(errors.InsufficientStock):
        ship(lines=[("EV-T", 11)])
    ship()
    with pytest.raises(errors.ReasonRequired):
        services.transfer_receive(transfer_id="EV-T1", actor="u", received={"EV-T": 1})
    assert [e.type for e in events_of(*TRANSFER_TYPES)] == ["transfer.shipped"]


def test_the_instant_transfer_emits_stock_changed_only(stocked):
    """No transfer row, no transfer event: its two stock.changed per SKU (out of the
    source, into the destination, one reference) describe it (docs/EVENTS.md)."""
    services.stock_transfer(
        source="BER", destination="HAM", lines=[TransferLine("EV-T", 2)], actor="u"
    )
    assert events_of(*TRANSFER_TYPES) == []
    changed = events_of("stock.changed")
    assert sorted((e.warehouse, e.data["on_hand_delta"]) for e in changed) == [
        ("BER", -2),
        ("HAM", 2),
    ]
    assert len({e.data["references"][0]["id"] for e in changed}) == 1


@pytest.mark.django_db(transaction=True)
def test_committed_steps_reach_the_feed_in_order_and_a_rolled_back_one_never(stocked):
    token = set_request_id("req-truck-7")
    try:
        ship()
    finally:
        reset_request_id(token)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.transfer_receive(transfer_id="EV-T1", actor="user:dock")
        assert len(events_of("transfer.received")) == 1  # written with the change...
        raise RuntimeError("roll back")
    assert events_of("transfer.received") == []  # ...and gone with it
    services.transfer_receive(transfer_id="EV-T1", actor="user:dock")

    follower = Follower(types=list(TRANSFER_TYPES))
    assert follower.follow_until(lambda f: len(f.events) >= 2)
    assert [(e.type, e.stream) for e in follower.events] == [
        ("transfer.shipped", "transfer:EV-T1"),
        ("transfer.received", "transfer:EV-T1"),
    ]
    assert follower.events[0].request_id == "req-truck-7"  # from the ship's ledger rows
    assert follower.events[1].payload["status"] == "received"


@pytest.mark.django_db(transaction=True)
def test_subscriptions_and_the_feed_accept_the_transfer_types(stocked):
    ops = make_caller("wms", "operations")
    created = ops.post(
        "/api/v1/webhooks/",
        {"url": "http://127.0.0.1:9/hook", "types": ["transfer.shipped", "transfer.received"]},
    )
    assert created.status_code == 201, created.json()
    feed = ops.get("/api/v1/events/", {"types": "transfer.shipped,transfer.received"})
    assert feed.status_code == 200, feed.json()

    ship()
    services.transfer_receive(transfer_id="EV-T1", actor="user:dock")
    subscription_id = created.json()["id"]
    deadline = time.monotonic() + 120  # the feed waits for older transactions to end
    while Delivery.objects.filter(subscription_id=subscription_id).count() < 2:
        assert time.monotonic() < deadline, "the transfer events were never dispatched"
        event_services.dispatch_subscription(subscription_id)
        time.sleep(0.05)
    delivered = Event.objects.filter(
        id__in=Delivery.objects.filter(subscription_id=subscription_id).values("event_id")
    ).order_by("feed_txid", "id")
    assert [(e.type, e.stream) for e in delivered] == [
        ("transfer.shipped", "transfer:EV-T1"),
        ("transfer.received", "transfer:EV-T1"),
    ]
