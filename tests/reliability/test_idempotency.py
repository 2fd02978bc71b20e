"""Idempotency under a burst: 50 identical requests at once create exactly one effect.

Served by gunicorn on loopback (3 processes with 8 threads each, so the duplicates really
run in parallel), against the test database. Plus the reaper of old
Idempotency-Key records and its beat schedule.
"""

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from api.models import IdempotencyRecord, IdempotencyStatus
from api.services import api_client_create
from api.tasks import idempotency_records_purge_task
from chaos.scenarios import database_url, stack
from inventory.models import AppliedOperation, Inventory, InventoryTransaction, Reservation

from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory

BURST = 50


def burst(url: str, key: str, body: dict, headers: dict | None = None) -> list[tuple[int, dict]]:
    barrier = threading.Barrier(BURST)

    def one(_):
        with requests.Session() as session:
            barrier.wait(timeout=30)
            response = session.post(
                url,
                data=json.dumps(body),
                headers={
                    "Authorization": f"Token {key}",
                    "Content-Type": "application/json",
                    **(headers or {}),
                },
                timeout=60,
            )
            return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=BURST) as pool:
        return list(pool.map(one, range(BURST)))


@pytest.fixture(scope="module")
def gunicorn_url(django_db_setup, django_db_blocker):
    """One gunicorn (and private Redis) for the module, on the test database."""
    with django_db_blocker.unblock(), stack(database_url(), workers=3, threads=8) as (_, server):
        yield server.url


@pytest.fixture
def server(transactional_db, gunicorn_url):
    ProductFactory(sku="MUG")
    WarehouseFactory(code="BER")
    receive("MUG", "BER", 100)
    _, key = api_client_create(name="burst", scopes=["storefront", "operations"])
    return gunicorn_url, key


@pytest.mark.slow
def test_fifty_identical_receives_under_one_key_apply_once(server):
    url, key = server
    body = {"sku": "MUG", "warehouse": "BER", "quantity": 7}

    results = burst(url + "/api/v1/stock/receive/", key, body, {"Idempotency-Key": "grn-1"})

    statuses = [status for status, _ in results]
    assert set(statuses) <= {201, 409}, statuses
    created = [b for s, b in results if s == 201]
    assert created, statuses
    # Every success is the same response: the first one, replayed.
    assert len({json.dumps(b, sort_keys=True) for b in created}) == 1
    conflicts = {b["error"]["code"] for s, b in results if s == 409}
    assert conflicts <= {"idempotency_in_progress"}
    assert Inventory.objects.get().on_hand == 107
    assert InventoryTransaction.objects.filter(type="RECEIVE").count() == 2  # seed + this
    assert AppliedOperation.objects.filter(key__endswith=":grn-1").count() == 1
    assert IdempotencyRecord.objects.get().status == IdempotencyStatus.DONE
    assert_invariants()


@pytest.mark.slow
def test_fifty_identical_reservations_under_one_order_id_reserve_once(server):
    url, key = server
    body = {"order_id": "ORD-50", "lines": [{"sku": "MUG", "quantity": 3, "warehouse": "BER"}]}

    results = burst(url + "/api/v1/reservations/", key, body)

    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * (BURST - 1) + [201], statuses
    assert len({json.dumps(b["lines"], sort_keys=True) for _, b in results}) == 1
    assert Reservation.objects.count() == 1
    assert InventoryTransaction.objects.filter(type="RESERVE").count() == 1
    assert Inventory.objects.get().reserved == 3
    assert_invariants()


@pytest.mark.slow
def test_fifty_identical_partial_fulfilments_under_one_key_ship_once(server):
    url, key = server
    requests.post(
        url + "/api/v1/reservations/",
        json={"order_id": "ORD-P", "lines": [{"sku": "MUG", "quantity": 5, "warehouse": "BER"}]},
        headers={"Authorization": f"Token {key}"},
        timeout=30,
    ).raise_for_status()
    body = {"lines": [{"sku": "MUG", "quantity": 2}]}

    results = burst(
        url + "/api/v1/reservations/ORD-P/fulfill/", key, body, {"Idempotency-Key": "ship-1"}
    )

    # As on every endpoint that takes the key (docs/API.md): the first answer, replayed
    # to the duplicates that come after it, or 409 idempotency_in_progress while it runs.
    statuses = [status for status, _ in results]
    assert set(statuses) <= {200, 409}, statuses
    shipped = [b for s, b in results if s == 200]
    assert shipped, statuses
    assert len({json.dumps(b, sort_keys=True) for b in shipped}) == 1
    assert {b["error"]["code"] for s, b in results if s == 409} <= {"idempotency_in_progress"}
    row = Inventory.objects.get()
    assert (row.on_hand, row.reserved) == (98, 3)
    assert InventoryTransaction.objects.filter(type="FULFILL").count() == 1
    assert_invariants()


# --- the reaper -------------------------------------------------------------


def test_the_reaper_is_on_the_beat_schedule(db):
    task = PeriodicTask.objects.get(task="api.tasks.idempotency_records_purge_task")
    assert task.enabled
    assert (task.crontab.hour, task.crontab.minute) == ("3", "15")


def test_the_reaper_purges_finished_records_past_the_retention_only(db, settings):
    settings.STOCKROOM_IDEMPOTENCY_RETENTION_HOURS = 24
    client, _ = api_client_create(name="reaped", scopes=["operations"])

    def record(key, status, age_hours):
        r = IdempotencyRecord.objects.create(
            client=client,
            key=key,
            fingerprint="f",
            status=status,
            response_status=201 if status == IdempotencyStatus.DONE else None,
            response_body={} if status == IdempotencyStatus.DONE else None,
        )
        IdempotencyRecord.objects.filter(pk=r.pk).update(
            created_at=timezone.now() - timedelta(hours=age_hours)
        )

    record("old-done", IdempotencyStatus.DONE, 25)
    record("new-done", IdempotencyStatus.DONE, 23)
    record("old-running", IdempotencyStatus.RUNNING, 48)

    assert idempotency_records_purge_task.delay().get() == 1
    assert sorted(IdempotencyRecord.objects.values_list("key", flat=True)) == [
        "new-done",
        "old-running",
    ]
    assert idempotency_records_purge_task.delay().get() == 0
