"""The hot event types are stored in typed columns and rendered at read time
(events migration 0005, events_payload()): the JSON the feed and webhooks return is
exactly what the 0004 triggers stored, checked against those triggers run beside
the live ones on the same changes (`twin_0004`, conftest)."""

from datetime import timedelta

import pytest
from django.db import connection, transaction

from events.selectors import START, event_feed
from inventory import clock, services
from inventory.services import OrderRequest, ReserveLine
from tests.conftest import receive
from tests.factories import ProductFactory, WarehouseFactory
from warehouses.models import Warehouse

from .conftest import events_of


@pytest.fixture
def stocked(db):
    ProductFactory(sku="PL-1")
    ProductFactory(sku="PL-2")
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    receive("PL-1", "BER", 20)
    receive("PL-1", "HAM", 5)
    receive("PL-2", "BER", 9)
    # An inactive warehouse: listed in availability.changed, not in its total.
    Warehouse.objects.filter(code="HAM").update(is_active=False)


def test_rendered_payloads_equal_the_jsonb_the_0004_triggers_built(twin_0004, stocked):
    # One statement, several ledger rows of one stock row with references out of
    # order (the references are de-duplicated and sorted as their JSON objects were).
    services.stock_reserve_batch(
        orders=[
            OrderRequest(order_id="z-2", lines=[ReserveLine("PL-1", "BER", 1)]),
            OrderRequest(order_id="a-10", lines=[ReserveLine("PL-1", "BER", 2)]),
            OrderRequest(
                order_id="m-1",
                lines=[ReserveLine("PL-2", "BER", 1), ReserveLine("PL-1", "BER", 1)],
            ),
            OrderRequest(order_id="short", lines=[ReserveLine("PL-2", "BER", 99)]),
        ],
        actor="client:shop",
    )
    # An expiry time (a timestamptz in the payload), two lines sorted by SKU.
    services.stock_reserve(
        order_id="exp-1",
        lines=[ReserveLine("PL-2", "BER", 2), ReserveLine("PL-1", "BER", 1)],
        actor="client:shop",
        expires_at=clock.now() + timedelta(minutes=15),
    )
    # Two statements in one transaction: availability.changed updated in place.
    with transaction.atomic():
        receive("PL-1", "BER", 3)
        receive("PL-1", "BER", 4)
    services.reservation_release(order_id="a-10", actor="client:shop")
    compared = twin_0004()
    assert compared >= 12
    # Stored typed: the trigger built no jsonb for these types.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM events_event WHERE payload IS NOT NULL AND type = ANY(%s)",
            [["stock.changed", "availability.changed", "reservation.created"]],
        )
        assert cursor.fetchone()[0] == 0
    (row,) = [
        e for e in events_of("stock.changed") if e.sku == "PL-1" and e.data["reserved_delta"] == 4
    ]
    assert row.data["references"] == [
        {"type": "order", "id": "a-10"},
        {"type": "order", "id": "m-1"},
        {"type": "order", "id": "z-2"},
    ]
    (availability,) = [e for e in events_of("availability.changed") if e.sku == "PL-1"]
    assert availability.data["warehouses"][-1] == {
        "warehouse": "HAM",
        "available": 5,
        "active": False,
    }


def test_the_feed_and_the_webhook_sender_return_the_rendered_payloads(transactional_db, stocked):
    # Committed for real (transactional_db): the feed returns finished transactions'
    # events only, and whether a still-open one's own events fall below the horizon
    # depended on other sessions' commits (it passed on a busy cluster only).
    services.stock_reserve(
        order_id="feed-1", lines=[ReserveLine("PL-1", "BER", 2)], actor="client:shop"
    )
    stored = {e.id: e.data for e in events_of()}
    page = event_feed(after=START, limit=1000)
    assert {e.id: e.payload for e in page.events} == stored
    # The webhook sender loads each event the same way (the body it signs).
    from events.services import _load_event

    assert {e.id: _load_event(e.id).payload for e in page.events} == stored
    created = next(e for e in page.events if e.type == "reservation.created")
    assert created.as_dict()["data"] == {
        "order_id": "feed-1",
        "reservation_id": created.payload["reservation_id"],
        "status": "active",
        "expires_at": None,
        "created_by": "client:shop",
        "lines": [{"sku": "PL-1", "warehouse": "BER", "quantity": 2}],
    }


def test_the_admin_shows_the_rendered_payload(stocked):
    from django.test import Client

    from events.models import Event
    from tests.factories import StaffUserFactory

    client = Client()
    client.force_login(StaffUserFactory(username="payload-admin", is_superuser=True))
    event = Event.objects.filter(type="stock.changed", sku="PL-2").get()
    assert event.payload is None  # stored typed
    page = client.get(f"/admin/events/event/{event.pk}/change/")
    assert page.status_code == 200
    assert "&quot;on_hand&quot;: 9" in page.content.decode()
    listing = client.get("/admin/events/event/?type__exact=stock.changed")
    assert listing.status_code == 200
