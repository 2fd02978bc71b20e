"""A real Redis server stopped and flushed under the API: answers stay correct.

The test starts a private redis-server on a free port (the shared one on 6379
is never touched), points the cache at it, and stops or flushes it mid-run; it
always stops its server, even when the test fails.
"""

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from django.db import transaction

from inventory import availability_cache, services
from inventory.models import Inventory
from inventory.services import ReserveLine

from ..api.conftest import make_caller
from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    def __init__(self):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="stockroom-redis-"))

    def start(self):
        subprocess.run(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "yes", "--dir", str(self.dir),
             "--pidfile", str(self.dir / "redis.pid"), "--logfile", str(self.dir / "redis.log")],
            check=True,
        )  # fmt: skip
        for _ in range(100):
            if self.cli("ping").stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("private redis did not start")

    def cli(self, *args):
        return subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True
        )

    def stop(self):
        self.cli("shutdown", "nosave")
        for _ in range(100):
            if self.cli("ping").returncode != 0:
                return
            time.sleep(0.05)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_redis(settings):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    server = PrivateRedis()
    server.start()
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{server.port}/0",
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": 0.2,
                "SOCKET_TIMEOUT": 0.2,
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
    settings.STOCKROOM_API_THROTTLE_RATE = "1000000/min"
    availability_cache.reset_store()
    try:
        yield server
    finally:
        server.cleanup()
        availability_cache.reset_store()


def reserve(caller, order_id, quantity=1):
    return caller.post(
        "/api/v1/reservations/",
        {"order_id": order_id, "lines": [{"sku": "HOT", "quantity": quantity, "warehouse": "BER"}]},
    )


def test_redis_stopped_mid_sale_then_back(private_redis):
    ProductFactory(sku="HOT")
    WarehouseFactory(code="BER")
    receive("HOT", "BER", 6)
    caller = make_caller("shop", "storefront")
    assert caller.get("/api/v1/availability/HOT/").json()["available"] == 6
    assert reserve(caller, "a").status_code == 201

    private_redis.stop()
    assert caller.get("/api/v1/availability/HOT/").json()["available"] == 5  # from PostgreSQL
    statuses = [reserve(caller, f"down-{i}").status_code for i in range(8)]
    assert statuses.count(201) == 5 and statuses.count(409) == 3
    assert caller.get("/api/v1/availability/HOT/").status_code == 200
    assert availability_cache.STATS["errors"] > 0

    private_redis.start()  # back, empty: entries refill from the database
    availability_cache.reset_store()
    assert caller.get("/api/v1/availability/HOT/").json()["available"] == 0
    assert availability_cache.read_cached(["HOT"])["HOT"].warehouses == {"BER": 0}
    assert reserve(caller, "late").status_code == 409
    assert Inventory.objects.get().reserved == 6
    assert_invariants()


def test_flushall_repeatedly_during_traffic_never_oversells(private_redis):
    ProductFactory(sku="HOT")
    WarehouseFactory(code="BER")
    receive("HOT", "BER", 20)
    caller = make_caller("shop", "storefront")
    granted = 0
    for i in range(40):
        if i % 5 == 0:
            private_redis.cli("flushall")
        if i % 3 == 0:
            body = caller.get("/api/v1/availability/HOT/").json()
            assert body["available"] == 20 - granted  # never stale after a flush
        response = reserve(caller, f"o-{i}")
        assert response.status_code in (201, 409)
        granted += response.status_code == 201
    assert granted == 20
    assert Inventory.objects.get().reserved == 20
    assert availability_cache.get_many(["HOT"])["HOT"].warehouses == {"BER": 0}
    assert_invariants()


def test_service_layer_keeps_working_with_redis_down(private_redis):
    ProductFactory(sku="HOT")
    WarehouseFactory(code="BER")
    receive("HOT", "BER", 2)
    private_redis.stop()
    with transaction.atomic():
        services.stock_reserve(order_id="x", lines=[ReserveLine("HOT", "BER", 2)], actor="c")
    with pytest.raises(services.stock.errors.InsufficientStock):
        services.stock_reserve(order_id="y", lines=[ReserveLine("HOT", "BER", 1)], actor="c")
    assert_invariants()
