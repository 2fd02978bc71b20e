"""The indexes a stock write pays for are the ones a query needs (migration 0024)."""

import pytest
from django.db import connection

from ..factories import WarehouseFactory

pytestmark = pytest.mark.django_db


def indexes(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        return dict(cursor.fetchall())


def test_idempotency_keys_have_no_prefix_search_index():
    found = indexes("inventory_appliedoperation")
    assert "inventory_appliedoperation_pkey" in found
    assert not [name for name, sql in found.items() if "pattern_ops" in sql]


def test_stock_rows_have_no_plain_warehouse_product_index():
    assert "inventory_warehouse_product" not in indexes("inventory_inventory")


def test_a_filter_by_warehouse_still_walks_an_index():
    site = WarehouseFactory()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT id FROM inventory_inventory WHERE warehouse_id = %s",
            [site.pk],
        )
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "inventory_count_due" in plan
