"""Shared fixtures. Tests run against the real PostgreSQL (see inventory_site/settings/test.py)."""

import pytest
from django.db import connection

from inventory import services

from .factories import ProductFactory, WarehouseFactory


def ledger_mismatches() -> list[tuple]:
    """Inventory rows whose balances (on hand, reserved, damaged, quality control)
    differ from the sum of their ledger rows, or whose reserved differs from the
    open quantity of their reservation lines."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.id, i.on_hand, i.reserved,
                   COALESCE(l.on_hand, 0), COALESCE(l.reserved, 0), COALESCE(r.open, 0),
                   i.damaged, COALESCE(l.damaged, 0),
                   i.quality_control, COALESCE(l.quality_control, 0)
            FROM inventory_inventory i
            LEFT JOIN (
                SELECT product_id, warehouse_id,
                       SUM(on_hand_delta) AS on_hand, SUM(reserved_delta) AS reserved,
                       SUM(damaged_delta) AS damaged,
                       SUM(quality_control_delta) AS quality_control
                FROM inventory_inventorytransaction GROUP BY product_id, warehouse_id
            ) l ON l.product_id = i.product_id AND l.warehouse_id = i.warehouse_id
            LEFT JOIN (
                SELECT inventory_id,
                       SUM(quantity - quantity_fulfilled - quantity_released) AS open
                FROM inventory_reservationline GROUP BY inventory_id
            ) r ON r.inventory_id = i.id
            WHERE i.on_hand <> COALESCE(l.on_hand, 0)
               OR i.reserved <> COALESCE(l.reserved, 0)
               OR i.reserved <> COALESCE(r.open, 0)
               OR i.damaged <> COALESCE(l.damaged, 0)
               OR i.quality_control <> COALESCE(l.quality_control, 0)
            """
        )
        return cursor.fetchall()


def invariant_violations(sku_like: str = "%") -> list:
    """Stock rows breaking an invariant, recomputed independently of the columns
    the CHECK constraints guard (chaos.checker.stock_row_problems: on hand from
    the ledger, reserved from the open lines, the allowance from the product's
    policy; plus stale allowances, negative balances and drift)."""
    from chaos.checker import stock_row_problems

    return stock_row_problems(sku_like)


def assert_invariants() -> None:
    from chaos.checker import transfer_problems

    assert ledger_mismatches() == []
    assert invariant_violations() == []
    assert transfer_problems() == []  # two-step transfers: the ledger accounts for each line


_FLUSH_CLIENTS: dict = {}


def _flush_client(app_client):
    """A client of the suite's Redis db with a patient socket timeout: the app's
    0.2 s (REDIS_SOCKET_TIMEOUT) is right for serving, but a FLUSHDB on a loaded
    machine can take longer, and a test must not fail in its set-up for that."""
    import redis

    kwargs = dict(app_client.connection_pool.connection_kwargs)
    key = tuple(sorted((k, str(v)) for k, v in kwargs.items()))
    if key not in _FLUSH_CLIENTS:
        kwargs.update(socket_timeout=60, socket_connect_timeout=10)
        pool = redis.ConnectionPool(
            connection_class=app_client.connection_pool.connection_class, **kwargs
        )
        _FLUSH_CLIENTS[key] = redis.Redis(connection_pool=pool)
    return _FLUSH_CLIENTS[key]


@pytest.fixture(autouse=True)
def _empty_availability_cache():
    """Every test starts with an empty cache: entries are keyed by SKU, and a
    previous test's SKUs must not leak into the next (the suite owns this Redis db)."""
    from django_redis import get_redis_connection

    from api.services import forget_authenticated_clients
    from inventory import availability_cache, clock
    from inventory.selectors import forget_active_warehouses
    from inventory.services.bundle_lines import forget_bundles

    clock.reset()  # a test that moved the stock clock never leaks its offset
    availability_cache.reset_store()
    _flush_client(get_redis_connection("default")).flushdb()
    availability_cache.STATS.clear()
    forget_active_warehouses()
    forget_authenticated_clients()
    forget_bundles()  # remembered compositions: a SKU names another product next test
    yield
    clock.reset()
    availability_cache.reset_store()
    forget_active_warehouses()
    forget_authenticated_clients()
    forget_bundles()


@pytest.fixture
def warehouse(db):
    return WarehouseFactory(code="BER", name="Berlin", latitude=52.52, longitude=13.405)


@pytest.fixture
def other_warehouse(db):
    return WarehouseFactory(code="HAM", name="Hamburg", latitude=53.55, longitude=9.993)


@pytest.fixture
def product(db):
    return ProductFactory(sku="TSHIRT-M")


def receive(sku: str, code: str, quantity: int):
    return services.stock_receive(sku=sku, warehouse=code, quantity=quantity, actor="user:test")
