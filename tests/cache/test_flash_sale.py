"""Flash sale through the API: many concurrent clients, one SKU, a little stock.

Each client thread has its own database connection; a query counter wrapped
around each thread's connection tells how many database round trips the
requests that were refused cost. Real PostgreSQL, real Redis, committed data.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections

from inventory.models import Inventory, Reservation

from ..api.conftest import make_caller
from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 12
ATTEMPTS_PER_CLIENT = 25
STOCK = 10


def is_order_lookup(sql: str) -> bool:
    return sql.startswith('SELECT %s AS "a" FROM "inventory_reservation" WHERE')


def run_flash_sale(caller, warehouse: str | None):
    barrier = threading.Barrier(CLIENTS)
    results = []
    lock = threading.Lock()

    def client(n):
        queries = {"count": 0}

        def count(execute, sql, params, many, context):
            # Stock work only: a refusal's one look-up of its own order id (is this a
            # retry of a placed order? services.reservation_exists) takes no lock.
            if not is_order_lookup(sql):
                queries["count"] += 1
            return execute(sql, params, many, context)

        try:
            barrier.wait(timeout=30)
            with connection.execute_wrapper(count):
                for attempt in range(ATTEMPTS_PER_CLIENT):
                    line = {"sku": "HOT", "quantity": 1}
                    if warehouse:
                        line["warehouse"] = warehouse
                    before = queries["count"]
                    response = caller.post(
                        "/api/v1/reservations/", {"order_id": f"o-{n}-{attempt}", "lines": [line]}
                    )
                    with lock:
                        results.append((response.status_code, queries["count"] - before))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        list(pool.map(client, range(CLIENTS)))
    return results


@pytest.mark.parametrize("warehouse", ["BER", None], ids=["named-warehouse", "routed"])
def test_flash_sale_grants_exactly_the_stock_and_refuses_at_redis_speed(settings, warehouse):
    settings.STOCKROOM_API_THROTTLE_RATE = "1000000/min"
    ProductFactory(sku="HOT")
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    receive("HOT", "BER", STOCK)
    caller = make_caller("shop", "storefront")
    assert caller.get("/api/v1/availability/HOT/").json()["available"] == STOCK  # warm

    results = run_flash_sale(caller, warehouse)

    granted = [q for status, q in results if status == 201]
    refused = [q for status, q in results if status == 409]
    assert len(granted) == STOCK
    assert len(refused) == CLIENTS * ATTEMPTS_PER_CLIENT - STOCK
    assert Inventory.objects.get(warehouse__code="BER").reserved == STOCK
    assert Reservation.objects.count() == STOCK
    assert_invariants()
    # Once the cache has heard the last unit go, refusals cost no database work:
    # only the requests racing that moment reach PostgreSQL.
    refused_with_queries = sum(1 for q in refused if q > 0)
    assert refused_with_queries <= len(refused) * 0.2, (refused_with_queries, len(refused))
    print(
        f"flash sale ({warehouse or 'routed'}): {len(granted)} granted, {len(refused)} refused, "
        f"{refused_with_queries} refusals touched the database "
        f"({sum(refused)} queries in all, {sum(granted)} for the grants)"
    )


def test_without_the_gate_every_refusal_costs_database_work(settings):
    settings.STOCKROOM_API_THROTTLE_RATE = "1000000/min"
    settings.STOCKROOM_SOLD_OUT_GATE = False
    ProductFactory(sku="HOT")
    WarehouseFactory(code="BER")
    receive("HOT", "BER", STOCK)
    caller = make_caller("shop", "storefront")
    caller.get("/api/v1/availability/HOT/")

    results = run_flash_sale(caller, "BER")

    refused = [q for status, q in results if status == 409]
    assert len([s for s, _ in results if s == 201]) == STOCK
    assert all(q > 0 for q in refused)
    assert_invariants()
