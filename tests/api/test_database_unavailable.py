"""A database connection killed while a request is in flight (a real pg_terminate_backend).

A read is answered once more on a fresh connection; a write is answered 503
`database_unavailable` with Retry-After, changes nothing, and the client's retry
with the same order id is applied once.
"""

from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection

from inventory.models import Inventory, InventoryTransaction, Reservation

from ..conftest import receive
from ..factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def kill_connection_on(marker: str, times: int = 1):
    """Terminate this thread's backend (from another session) just before the first
    `times` queries whose SQL contains `marker`; the query then fails as in production."""
    killed = []

    def wrapper(execute, sql, params, many, context):
        if marker in sql and len(killed) < times:
            pid = context["connection"].connection.info.backend_pid
            settings = connection.settings_dict
            with psycopg.connect(
                dbname=settings["NAME"],
                user=settings["USER"],
                host=settings["HOST"] or "127.0.0.1",
                port=settings["PORT"] or 5432,
                autocommit=True,
            ) as killer:
                killer.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
            killed.append(pid)
        return execute(sql, params, many, context)

    try:
        with connection.execute_wrapper(wrapper):
            yield killed
    finally:
        # What Django's request_finished does in production (the test client skips it).
        connection.close_if_unusable_or_obsolete()


@pytest.fixture
def stocked_committed(transactional_db):
    ProductFactory(sku="LAMP")
    WarehouseFactory(code="BER")
    receive("LAMP", "BER", 10)


def test_a_read_whose_connection_dies_is_answered_on_a_fresh_one(
    reader, stocked_committed, settings
):
    settings.STOCKROOM_AVAILABILITY_CACHE = False  # the answer must come from PostgreSQL
    with kill_connection_on("inventory_inventory") as killed:
        response = reader.get("/api/v1/availability/LAMP/")
    assert len(killed) == 1
    assert response.status_code == 200, response.content
    assert response.json()["available"] == 10


def test_a_read_whose_connection_dies_twice_is_a_503_with_retry_after(
    reader, stocked_committed, settings
):
    settings.STOCKROOM_AVAILABILITY_CACHE = False
    with kill_connection_on("inventory_inventory", times=2) as killed:
        response = reader.get("/api/v1/availability/", {"sku": ["LAMP"]})
    assert len(killed) == 2  # answered once more, not forever
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "database_unavailable"


@pytest.mark.parametrize("engine", ["sql", "python"])
def test_a_write_whose_connection_dies_is_a_503_that_changed_nothing_and_retries_once(
    storefront, stocked_committed, settings, engine
):
    settings.STOCKROOM_RESERVE_ENGINE = engine
    order = {
        "order_id": "ORD-KILLED",
        "lines": [{"sku": "LAMP", "warehouse": "BER", "quantity": 3}],
    }
    ledger_before = InventoryTransaction.objects.count()
    marker = "stockroom_reserve" if engine == "sql" else "FOR NO KEY UPDATE"
    with kill_connection_on(marker) as killed:
        response = storefront.post("/api/v1/reservations/", order)
    assert len(killed) == 1
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "1"
    error = response.json()["error"]
    assert error["code"] == "database_unavailable"
    assert "same order id" in error["message"]
    # Nothing was applied.
    assert not Reservation.objects.filter(order_id="ORD-KILLED").exists()
    assert Inventory.objects.get().reserved == 0
    assert InventoryTransaction.objects.count() == ledger_before

    # The client's retry with the same order id is applied, once.
    assert storefront.post("/api/v1/reservations/", order).status_code == 201
    assert storefront.post("/api/v1/reservations/", order).status_code == 200
    assert Inventory.objects.get().reserved == 3
    assert InventoryTransaction.objects.count() == ledger_before + 1


def test_a_stock_operation_whose_connection_dies_frees_its_idempotency_key(
    operations, stocked_committed
):
    body = {"sku": "LAMP", "warehouse": "BER", "quantity": 5}
    headers = {"Idempotency-Key": "GRN-KILLED"}
    with kill_connection_on("FOR NO KEY UPDATE") as killed:
        first = operations.post("/api/v1/stock/receive/", body, headers=headers)
    assert len(killed) == 1
    assert first.status_code == 503
    assert first.json()["error"]["code"] == "database_unavailable"
    assert Inventory.objects.get().on_hand == 10

    # The key was freed (Django drops the dead connection when the operation's
    # transaction cannot roll back, so the key is deleted over a new one): the
    # retry with the same key is applied now, not 409 idempotency_in_progress for
    # a minute, and once.
    retry = operations.post("/api/v1/stock/receive/", body, headers=headers)
    assert retry.status_code == 201, retry.content
    assert operations.post("/api/v1/stock/receive/", body, headers=headers).status_code == 201
    assert Inventory.objects.get().on_hand == 15


def test_a_read_answered_once_more_counts_once_against_the_rate_limit(
    reader, stocked_committed, settings
):
    settings.STOCKROOM_AVAILABILITY_CACHE = False
    settings.STOCKROOM_API_THROTTLE_RATE = "2/minute"
    with kill_connection_on("inventory_inventory") as killed:
        assert reader.get("/api/v1/availability/LAMP/").status_code == 200
    assert len(killed) == 1
    assert reader.get("/api/v1/availability/LAMP/").status_code == 200  # the 2nd of 2
    assert reader.get("/api/v1/availability/LAMP/").status_code == 429
