"""GET /api/v1/events/ and the webhook subscription endpoints."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings

from events import services
from events.models import Event, FeedState, WebhookSubscription
from events.selectors import decode_cursor, encode_cursor
from inventory import clock
from tests.api.conftest import make_caller
from tests.conftest import receive
from tests.factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/events/"


@pytest.fixture
def reader():
    return make_caller("feed", "read")


@pytest.fixture
def ops():
    return make_caller("wms", "operations")


@pytest.fixture
def stocked():
    ProductFactory(sku="API-1")
    ProductFactory(sku="API-2")
    WarehouseFactory(code="BER")
    receive("API-1", "BER", 5)
    receive("API-2", "BER", 5)


def read_all(caller, **params):
    """Follow the feed until it has returned every event in the table (unfiltered).

    The horizon is cluster-wide: another database's open transaction (the other
    engineers share this PostgreSQL) can hold our committed events back for a
    while, so wait for them (long polls) instead of assuming they are readable."""
    events, after = [], ""
    total = Event.objects.count()
    for _ in range(600):
        body = caller.get(URL, {**params, "after": after, "wait": 1}).json()
        events.extend(body["events"])
        after = body["next_cursor"]
        if len(events) >= total and not body["events"]:
            break
    return events, after


def test_feed_pages_filters_and_resumes(reader, stocked):
    total = Event.objects.count()
    events, cursor = read_all(reader, limit=2)
    assert len(events) == total
    assert [e["id"] for e in events] == [
        f"evt_{i}" for i in Event.objects.order_by("feed_txid", "id").values_list("id", flat=True)
    ]
    first = events[0]
    assert set(first) == {
        "id",
        "type",
        "occurred_at",
        "request_id",
        "sku",
        "warehouse",
        "cursor",
        "data",
    }
    only = reader.get(URL, {"types": "stock.changed", "sku": "API-2"}).json()
    assert [(e["type"], e["sku"]) for e in only["events"]] == [("stock.changed", "API-2")]
    # Resuming from the end gives nothing new; from an event's cursor, the rest.
    assert reader.get(URL, {"after": cursor}).json()["events"] == []
    rest = reader.get(URL, {"after": events[1]["cursor"]}).json()["events"]
    assert [e["id"] for e in rest] == [e["id"] for e in events[2:]]


def test_scopes_and_bad_input(reader, ops, stocked):
    shop = make_caller("shop", "storefront")
    assert shop.get(URL).status_code == 403
    assert ops.get(URL).status_code == 200
    for params, field in [
        ({"after": "not-a-cursor"}, "after"),
        ({"types": "stock.nope"}, "types"),
        ({"limit": "0"}, "limit"),
        ({"wait": "999"}, "wait"),
        ({"bogus": "1"}, "bogus"),
    ]:
        response = reader.get(URL, params)
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == "validation_error"
        assert field in response.json()["error"]["details"]


def test_expired_cursor_is_410(reader, stocked):
    events, _ = read_all(reader)
    old_cursor = events[0]["cursor"]
    Event.objects.update(occurred_at=clock.now() - timedelta(days=8))
    receive("API-1", "BER", 1)  # a fresh event stays
    assert services.events_prune() == len(events)
    state = FeedState.objects.get()
    assert decode_cursor(events[-1]["cursor"]) == (state.pruned_txid, state.pruned_id)
    response = reader.get(URL, {"after": old_cursor})
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "cursor_expired"
    # The last pruned event's cursor is still valid: nothing after it was deleted.
    assert reader.get(URL, {"after": events[-1]["cursor"]}).status_code == 200


def test_long_poll_returns_when_an_event_commits(reader, stocked):
    _, cursor = read_all(reader)
    answers: list[dict] = []

    def poll():
        # Repeat the 20 s long poll until the event is there: a writing transaction
        # of another database on the cluster may hold the horizon longer than one
        # wait (then a poll answers empty after its wait, with the same cursor).
        try:
            after = cursor
            for _ in range(15):
                started = time.monotonic()
                body = reader.get(URL, {"after": after, "wait": 20}).json()
                body["waited"] = time.monotonic() - started
                answers.append(body)
                if body["events"]:
                    return
                after = body["next_cursor"]
        finally:
            connection.close()

    thread = threading.Thread(target=poll)
    thread.start()
    receive("API-1", "BER", 2)
    thread.join(400)
    assert answers and answers[-1]["events"], "the long poll never returned the new event"
    assert answers[-1]["events"][0]["sku"] == "API-1"
    for empty in answers[:-1]:  # an empty answer only after the whole wait
        assert empty["events"] == [] and empty["waited"] >= 19


def test_waiting_clients_share_one_poll(reader, stocked, monkeypatch):
    """Five clients long-polling at once: the feed is read about once per client,
    not every 0.25 s per client; one watcher thread polls for all of them."""
    from events import selectors, watch

    _, cursor = read_all(reader)
    reads = []
    real_feed = selectors.event_feed

    def counted(**kwargs):
        reads.append(threading.get_ident())
        return real_feed(**kwargs)

    monkeypatch.setattr(selectors, "event_feed", counted)
    polls_before = watch.watcher.polls
    barrier = threading.Barrier(5)
    bodies: list[dict] = []

    def client():
        try:
            barrier.wait(30)
            bodies.append(reader.get(URL, {"after": cursor, "wait": 3}).json())
        finally:
            connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    elapsed = time.monotonic() - started
    assert [b["events"] for b in bodies] == [[]] * 5  # nothing new: each waited 3 s
    assert len(reads) == 5  # one feed read each (the old loop: ~12 each)
    polls = watch.watcher.polls - polls_before
    # One poll per interval for all five (an upper bound, whatever the machine's speed).
    assert 1 <= polls <= elapsed / watch.POLL_INTERVAL_SECONDS + 2


@override_settings(STOCKROOM_EVENTS_MAX_WAIT=1)
def test_long_poll_answers_empty_after_wait(reader, stocked):
    _, cursor = read_all(reader)
    body = reader.get(URL, {"after": cursor, "wait": 1}).json()
    assert body == {"events": [], "next_cursor": cursor}


def test_webhook_crud_secret_once_and_scopes(ops, reader):
    created = ops.post(
        "/api/v1/webhooks/",
        {"url": "http://127.0.0.1:9/hook", "types": ["stock.changed"], "sku": "API-1"},
    )
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("whsec_")
    detail = ops.get(f"/api/v1/webhooks/{body['id']}/").json()
    assert "secret" not in detail and detail["types"] == ["stock.changed"]
    assert all("secret" not in s for s in ops.get("/api/v1/webhooks/").json())
    assert reader.get("/api/v1/webhooks/").status_code == 403
    bad = ops.post("/api/v1/webhooks/", {"url": "http://x.test/", "types": ["nope"]})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"
    patched = ops.patch(f"/api/v1/webhooks/{body['id']}/", {"is_active": False})
    assert patched.json()["is_active"] is False
    replay = ops.post(f"/api/v1/webhooks/{body['id']}/replay/", {"after": encode_cursor((0, 0))})
    assert replay.status_code == 202
    assert ops.get(f"/api/v1/webhooks/{body['id']}/deliveries/").status_code == 200
    deleted = ops.client.delete(f"/api/v1/webhooks/{body['id']}/", **ops._headers(None))
    assert deleted.status_code == 204
    assert not WebhookSubscription.objects.exists()


def test_schema_documents_the_feed_and_webhooks(db):
    from django.test import Client

    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/v1/events/" in schema["paths"]
    params = {p["name"] for p in schema["paths"]["/api/v1/events/"]["get"]["parameters"]}
    assert {"after", "types", "sku", "limit", "wait"} <= params
    assert "410" in schema["paths"]["/api/v1/events/"]["get"]["responses"]
    assert "/api/v1/webhooks/" in schema["paths"]
