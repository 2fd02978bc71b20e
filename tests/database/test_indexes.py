"""The indexes a stock write pays for are the ones a query needs (migration 0024)."""

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def indexes(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        return dict(cursor.fetchall())


def test_idempotency_keys_have_no_prefix_search_index():
    found = indexes("inventory_appliedoperation")
    assert "inventory_appliedoperation_pkey" in found
    assert not [name for name, sql in found.items() if "pattern_ops" in sql]
