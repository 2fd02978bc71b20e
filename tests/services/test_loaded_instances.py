"""`reserve_sql._loaded` builds what Model.__init__ builds (issue #18).

The SQL engine answers with model instances built from the rows its functions
wrote; `_loaded` fills their fields without Model.__init__. Every shape it is
used with is compared here with `model(**values, **related)`: each concrete
field's value, the related instances cached under their names, and the saved
state. A field `_loaded` forgot would show here (and would cost a query on first
access, as a deferred field).
"""

import uuid
from datetime import UTC, datetime

import pytest

from inventory.models import InventoryTransaction, Product, Reservation, ReservationLine
from inventory.services.reserve_sql import _loaded
from warehouses.models import Warehouse

AT = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)


def fields(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def assert_same(model, values, related=None):
    built = _loaded(model, values, related or {})
    expected = model(**values, **(related or {}))
    assert type(built) is model
    assert fields(built) == fields(expected)
    assert set(built.__dict__) == set(expected.__dict__)
    for name, other in (related or {}).items():
        assert built._state.fields_cache[name] is other
        assert getattr(built, name) is other
    assert built._state.adding is False
    assert built._state.db == "default"
    return built


def test_reservation_as_created_and_as_closed():
    base = {
        "id": uuid.uuid4(),
        "order_id": "ORD-1",
        "status": "active",
        "expires_at": None,
        "request_fingerprint": "f" * 64,
        "created_by": "client:shop",
        "created_at": AT,
        "updated_at": AT,
    }
    assert_same(Reservation, base)
    assert_same(Reservation, {**base, "status": "released", "confirmed_at": AT, "expires_at": AT})


def test_ledger_row():
    assert_same(
        InventoryTransaction,
        {
            "id": uuid.uuid4(),
            "product_id": uuid.uuid4(),
            "warehouse_id": uuid.uuid4(),
            "type": "RESERVE",
            "on_hand_delta": 0,
            "reserved_delta": 2,
            "on_hand_after": 10,
            "reserved_after": 2,
            "reference_type": "order",
            "reference_id": "ORD-1",
            "reason": "",
            "created_at": AT,
            "created_by": "client:shop",
            "request_id": "",
        },
    )


@pytest.mark.parametrize("with_bundle", [False, True])
def test_line_with_its_related_instances(with_bundle):
    reservation = _loaded(Reservation, {"id": uuid.uuid4(), "order_id": "ORD-1"})
    product = assert_same(Product, {"id": uuid.uuid4(), "sku": "P-1"})
    warehouse = assert_same(Warehouse, {"id": uuid.uuid4(), "code": "BER"})
    bundle = (
        assert_same(Product, {"id": uuid.uuid4(), "sku": "B-1", "is_bundle": True})
        if with_bundle
        else None
    )
    line = assert_same(
        ReservationLine,
        {"id": uuid.uuid4(), "quantity": 3, "quantity_released": 1, "status": "active"},
        {"reservation": reservation, "product": product, "warehouse": warehouse, "bundle": bundle},
    )
    assert line.reservation_id == reservation.id
    assert line.bundle_id == (bundle.id if bundle else None)
