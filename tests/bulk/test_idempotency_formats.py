"""The idempotency key and fingerprint formats have one source (`services.idempotency`):
its SQL twins, which bulk receive uses, give exactly what the Python functions
give, so a file and a single receive under one reference never both apply."""

import pytest
from django.db import connection

from inventory.services import Reference, idempotency
from inventory.services.bulk import _RECEIVE_FINGERPRINT, _RECEIVE_FULL_KEY, _RECEIVE_KEY

pytestmark = pytest.mark.django_db

CASES = [
    ("po-1", "SKU-A", "BER", 7),
    ("po/2025.x", "a.b_c/d-e", "MUC", 1_000_000),
    ("r" * 100, "S" * 64, "W" * 16, 3),  # a key past 200 characters is stored as its hash
]


def in_sql(reference_id: str, sku: str, warehouse: str, quantity: int) -> tuple[str, str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT k.full_key, {_RECEIVE_KEY}, {_RECEIVE_FINGERPRINT}
            FROM (SELECT %(id)s::text AS reference_id, %(sku)s::text AS sku,
                         %(wh)s::text AS warehouse, %(qty)s::integer AS quantity) r
            CROSS JOIN LATERAL (SELECT {_RECEIVE_FULL_KEY} AS full_key) k
            """,
            {"ref_type": "purchase_order", "id": reference_id, "sku": sku, "wh": warehouse,
             "qty": quantity},
        )  # fmt: skip
        return cursor.fetchone()


@pytest.mark.parametrize(("reference_id", "sku", "warehouse", "quantity"), CASES)
def test_bulk_receive_keys_and_fingerprints_are_stock_receives(
    reference_id, sku, warehouse, quantity
):
    full_key, key, fingerprint = in_sql(reference_id, sku, warehouse, quantity)
    reference = Reference("purchase_order", reference_id)

    assert key == idempotency.derived_key("receive", None, reference, sku, warehouse)
    assert key == idempotency.fit_key("receive", full_key)
    assert fingerprint == idempotency.fingerprint(
        {"operation": "receive", "sku": sku, "warehouse": warehouse, "quantity": quantity}
    )
    assert len(key) <= idempotency.MAX_KEY_LENGTH
