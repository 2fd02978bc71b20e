"""Races over real HTTP: a live server thread, many concurrent clients (urllib threads).

Each test commits for real (transaction=True) and checks the invariants after.
"""

import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections, transaction

from api.services import api_client_create
from inventory.models import Inventory, InventoryTransaction, Reservation

from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def key(settings):
    settings.STOCKROOM_API_THROTTLE_RATE = "100000/min"
    return api_client_create(name="shop", scopes=["storefront", "operations"])[1]


def post(base, path, key, body, retries=5):
    """POST JSON; on 503 (stock_busy) retry after Retry-After, as clients are told to.

    A connection refused or reset (the test server's small listen backlog under a
    burst of 40 connects) is retried too: safe, because reservations are
    idempotent by order id.
    """
    data = json.dumps(body).encode()
    for attempt in range(retries * 4):
        request = urllib.request.Request(
            base + path,
            data=data,
            method="POST",
            headers={"Authorization": f"Token {key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            status, payload = error.code, json.loads(error.read())
            if status != 503 or attempt >= retries - 1:
                return status, payload
            time.sleep(float(error.headers.get("Retry-After", "1")))
        except (ConnectionError, urllib.error.URLError):
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError(f"no answer from {path}")


def concurrently(workers, fn):
    barrier = threading.Barrier(workers)

    def call(i):
        barrier.wait(timeout=30)
        return fn(i)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(call, range(workers)))


def test_forty_clients_race_for_the_last_ten_units(live_server, key):
    ProductFactory(sku="LAST")
    WarehouseFactory(code="BER", latitude=52.52, longitude=13.405)
    WarehouseFactory(code="HAM", latitude=53.55, longitude=9.993)
    receive("LAST", "BER", 6)
    receive("LAST", "HAM", 4)

    results = concurrently(
        40,
        lambda i: post(
            live_server.url,
            "/api/v1/reservations/",
            key,
            {
                "order_id": f"order-{i}",
                "lines": [{"sku": "LAST", "quantity": 1}],
                "ship_to": {"latitude": 52.4, "longitude": 13.0},
            },
        ),
    )

    granted = [body["order_id"] for status, body in results if status in (200, 201)]
    refused = [body for status, body in results if status == 409]
    assert len(granted) == len(set(granted)) == 10
    assert len(refused) == 30
    assert {body["error"]["code"] for body in refused} == {"insufficient_stock"}
    assert {row.warehouse.code: row.available for row in Inventory.objects.all()} == {
        "BER": 0,
        "HAM": 0,
    }
    assert Reservation.objects.count() == 10
    assert InventoryTransaction.objects.filter(type="RESERVE").count() == 10
    assert_invariants()


def test_the_same_order_sent_ten_times_at_once_reserves_once(live_server, key):
    ProductFactory(sku="MUG")
    WarehouseFactory(code="BER")
    receive("MUG", "BER", 10)
    body = {"order_id": "dup", "lines": [{"sku": "MUG", "quantity": 3}]}

    results = concurrently(10, lambda i: post(live_server.url, "/api/v1/reservations/", key, body))

    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 9 + [201]
    assert {json.dumps(b["lines"], sort_keys=True) for _, b in results} == {
        json.dumps(results[0][1]["lines"], sort_keys=True)
    }
    assert Inventory.objects.get().reserved == 3
    assert_invariants()


def test_the_same_idempotency_key_sent_at_once_applies_once(live_server, key):
    ProductFactory(sku="MUG")
    WarehouseFactory(code="BER")
    body = {"sku": "MUG", "warehouse": "BER", "quantity": 5}

    def receive_with_key(i):
        request = urllib.request.Request(
            live_server.url + "/api/v1/stock/receive/",
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": f"Token {key}",
                "Content-Type": "application/json",
                "Idempotency-Key": "delivery-1",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    statuses = concurrently(8, receive_with_key)
    # One applies; the rest see it running (409) or replay its response (201).
    assert set(statuses) <= {201, 409}
    assert 201 in statuses
    assert Inventory.objects.get().on_hand == 5
    assert_invariants()


def test_a_row_locked_past_lock_timeout_is_503_stock_busy(live_server, key):
    ProductFactory(sku="HOT")
    WarehouseFactory(code="BER")
    receive("HOT", "BER", 1)
    locked, release = threading.Event(), threading.Event()

    def hold_the_row():
        try:
            with transaction.atomic():
                list(Inventory.objects.select_for_update().all())
                locked.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        status, body = post(
            live_server.url,
            "/api/v1/stock/receive/",
            key,
            {"sku": "HOT", "warehouse": "BER", "quantity": 1},
            retries=1,
        )
    finally:
        release.set()
        holder.join()
    assert status == 503
    assert body["error"]["code"] == "stock_busy"
    assert Inventory.objects.get().on_hand == 1
    assert_invariants()
