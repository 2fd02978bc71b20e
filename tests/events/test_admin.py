"""Events and webhooks in the admin: a subscription's secret shown once, the
delivery log (status, attempts, response code, latency, error), the disable
reason and "Enable", and replay from a cursor — against a real receiver on
loopback (tests/events/receiver.py) and the real feed."""

import time

import pytest
from django.test import Client

from chaos.processes import free_port
from events import selectors, services
from events.models import Delivery, DeliveryStatus, Event, FeedState, WebhookSubscription
from inventory import clock
from tests.conftest import receive
from tests.factories import ProductFactory, StaffUserFactory, WarehouseFactory

from .receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

SUBS = "/admin/events/webhooksubscription/"
DELIVERIES = "/admin/events/delivery/"


@pytest.fixture
def admin_client():
    client = Client()
    client.force_login(StaffUserFactory(username="events-admin", is_superuser=True))
    return client


@pytest.fixture
def stock_changes():
    WarehouseFactory(code="BER")
    for sku in ("ADM-1", "ADM-2"):
        ProductFactory(sku=sku)
        receive(sku, "BER", 3)


def dispatch_all(subscription) -> None:
    """Dispatch until every event in the table is a delivery (the feed waits for the
    cluster's horizon to pass our commits; a safety cap only)."""
    deadline = time.monotonic() + 120
    while Delivery.objects.filter(subscription=subscription).count() < Event.objects.count():
        assert time.monotonic() < deadline, "the feed never reached our events"
        services.dispatch_subscription(subscription.pk)
        time.sleep(0.05)


def deliver_due(subscription) -> None:
    for sub_id, stream in services.due_lanes(subscription.pk):
        services.deliver_lane(sub_id, stream)


def test_creating_a_subscription_shows_the_secret_once(admin_client):
    page = admin_client.post(
        f"{SUBS}add/",
        {
            "name": "erp",
            "url": "http://127.0.0.1:9/hook",
            "types": '["stock.changed", "sku.back_in_stock"]',
            "sku": "",
            "warehouse": "",
            "is_active": "on",
        },
        follow=True,
    ).content.decode()
    sub = WebhookSubscription.objects.get()
    assert sub.types == ["sku.back_in_stock", "stock.changed"]
    assert sub.created_by.startswith("user:")
    assert sub.secret.startswith("whsec_") and sub.secret in page  # shown after Save
    change = admin_client.get(f"{SUBS}{sub.pk}/change/").content.decode()
    assert sub.secret not in change  # and never again
    assert "Replay from a cursor" in change


def test_delivery_log_disable_reason_and_enable(admin_client, stock_changes, settings):
    settings.STOCKROOM_WEBHOOK_DISABLE_AFTER = 2
    port = free_port()
    sub = services.subscription_create(
        url=f"http://127.0.0.1:{port}/hook", actor="user:test", from_start=True
    )
    dispatch_all(sub)
    deliver_due(sub)  # nobody listens: each lane's first attempt fails
    sub.refresh_from_db()
    assert not sub.is_active
    assert sub.disabled_reason.startswith("Disabled after 2 consecutive failed deliveries")
    listing = admin_client.get(SUBS).content.decode()
    assert "Disabled after 2 consecutive failed deliveries" in listing
    log = admin_client.get(DELIVERIES).content.decode()
    assert "Pending" in log and "ConnectionError" in log

    response = admin_client.post(SUBS, {"action": "enable", "_selected_action": [str(sub.pk)]})
    assert response.status_code == 302
    sub.refresh_from_db()
    assert sub.is_active and sub.disabled_reason == "" and sub.consecutive_failures == 0

    receiver = Receiver(port, sub.secret)
    receiver.start()
    try:
        clock.advance(3600)  # past every backoff
        deliver_due(sub)
    finally:
        clock.reset()
        receiver.stop()
    assert not Delivery.objects.filter(status=DeliveryStatus.PENDING).exists()
    assert len(set(receiver.ids)) == Event.objects.count() and receiver.rejected == 0
    retried = Delivery.objects.filter(attempts=2).first()
    assert retried is not None and retried.response_code == 204
    assert retried.latency_ms is not None
    log = admin_client.get(f"{DELIVERIES}?status=delivered").content.decode()
    assert "Delivered" in log and "204" in log
    detail = admin_client.get(f"{DELIVERIES}{retried.pk}/change/")
    assert detail.status_code == 200  # read-only detail of one delivery


def test_replay_from_a_cursor(admin_client, stock_changes):
    port = free_port()
    sub = services.subscription_create(
        url=f"http://127.0.0.1:{port}/hook", actor="user:test", from_start=True
    )
    receiver = Receiver(port, sub.secret)
    receiver.start()
    try:
        dispatch_all(sub)
        deliver_due(sub)
        events = list(Event.objects.order_by("feed_txid", "id"))
        assert len(set(receiver.ids)) == len(events)
        page = f"{SUBS}{sub.pk}/replay/"
        assert admin_client.get(page).status_code == 200

        bad = admin_client.post(page, {"after": "not-a-cursor"})
        assert bad.status_code == 200 and "Not a cursor of this feed" in bad.content.decode()

        cursor = selectors.encode_cursor((events[1].feed_txid, events[1].id))
        response = admin_client.post(page, {"after": cursor})
        assert response.status_code == 302
        again = {f"evt_{e.id}" for e in events[2:]}
        pending = Delivery.objects.filter(subscription=sub, status=DeliveryStatus.PENDING)
        assert {f"evt_{d.event_id}" for d in pending} == again
        receiver.ids.clear()
        deliver_due(sub)
        assert set(receiver.ids) == again  # sent again with the same webhook-id

        FeedState.objects.update_or_create(
            pk=1, defaults={"pruned_txid": events[-1].feed_txid, "pruned_id": events[-1].id}
        )
        expired = admin_client.post(page, {"after": cursor})
        assert "cursor_expired" in expired.content.decode()
    finally:
        receiver.stop()
