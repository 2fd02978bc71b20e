"""Batch reservations over real HTTP: several clients send overlapping batches at once.

A live server thread, urllib threads, real commits (transaction=True); the
invariants are checked after.
"""

import random
from collections import Counter, defaultdict

import pytest

from inventory.models import Inventory, Reservation, ReservationLine

from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory
from .test_http_races import concurrently, key, post  # noqa: F401 - the key fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SKUS = ["A", "B", "C", "D", "E"]
STOCK = {"BER": 20, "HAM": 10}
CLIENTS = 8
BATCHES_PER_CLIENT = 3
ORDERS_PER_BATCH = 20
ORDER_IDS = 120  # clients draw from one pool, so the same order id arrives many times


def lines_of(k: int) -> list[dict]:
    """Order k always has the same lines (a resend is a retry, not a conflict)."""
    rng = random.Random(k)
    skus = rng.sample(SKUS, rng.choice([1, 2]))
    return [
        {"sku": sku, "quantity": rng.randint(1, 3), "warehouse": rng.choice(list(STOCK))}
        for sku in skus
    ]


def test_overlapping_batches_from_many_clients_keep_every_invariant(live_server, key):  # noqa: F811
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    for sku in SKUS:
        ProductFactory(sku=sku)
        for code, quantity in STOCK.items():
            receive(sku, code, quantity)

    def client(i):
        rng = random.Random(1000 + i)
        answers = []
        for _ in range(BATCHES_PER_CLIENT):
            ids = rng.sample(range(ORDER_IDS), ORDERS_PER_BATCH)
            body = {"orders": [{"order_id": f"o-{k}", "lines": lines_of(k)} for k in ids]}
            answers.append(post(live_server.url, "/api/v1/reservations/batch/", key, body))
        return answers

    answers = [answer for per_client in concurrently(CLIENTS, client) for answer in per_client]

    assert {status for status, _ in answers} == {200}
    results = [r for _, body in answers for r in body["results"]]
    assert len(results) == CLIENTS * BATCHES_PER_CLIENT * ORDERS_PER_BATCH
    created = Counter(r["order_id"] for r in results if r["outcome"] == "created")
    assert set(created.values()) == {1}  # never reserved twice
    errors = {r["error"]["code"] for r in results if r["outcome"] == "error"}
    assert errors <= {"insufficient_stock"}
    assert errors, "demand exceeds stock: some orders must have been refused"
    # Every order reserved is in the database exactly as asked, and nothing else is.
    assert set(Reservation.objects.values_list("order_id", flat=True)) == set(created)
    for r in results:
        if r["outcome"] == "exists":
            assert r["order_id"] in created
    held = defaultdict(int)
    for order_id in created:
        for line in lines_of(int(order_id.removeprefix("o-"))):
            held[(line["sku"], line["warehouse"])] += line["quantity"]
    rows = {(i.product.sku, i.warehouse.code): i for i in Inventory.objects.select_related()}
    for pair, row in rows.items():
        assert row.reserved == held[pair], pair
        assert row.available >= 0
    assert ReservationLine.objects.count() == sum(
        len(lines_of(int(o.removeprefix("o-")))) for o in created
    )
    assert_invariants()
