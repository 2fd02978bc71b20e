"""The database itself refuses oversold rows and changes to the ledger."""

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from inventory import services
from inventory.models import AppendOnlyError, Inventory, InventoryTransaction
from inventory.services import ReserveLine

from ..conftest import receive
from ..factories import BackorderProductFactory

pytestmark = pytest.mark.django_db


def raw(sql, params=()):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE inventory_inventory SET reserved = on_hand + 1",
        "UPDATE inventory_inventory SET on_hand = -1, reserved = 0",
        "UPDATE inventory_inventory SET reserved = -1",
    ],
)
def test_raw_sql_cannot_oversell_a_normal_sku(product, warehouse, sql):
    receive(product.sku, warehouse.code, 3)
    with pytest.raises(IntegrityError, match="inventory_"):
        raw(sql)
    row = Inventory.objects.get()
    assert (row.on_hand, row.reserved) == (3, 0)


def test_raw_sql_cannot_push_a_backorder_sku_past_its_allowance(warehouse):
    BackorderProductFactory(sku="BACK", backorder_limit=5)
    receive("BACK", warehouse.code, 1)
    raw("UPDATE inventory_inventory SET reserved = 6")  # exactly the allowance: allowed
    with pytest.raises(IntegrityError, match="inventory_available_within_allowance"):
        raw("UPDATE inventory_inventory SET reserved = 7")
    assert Inventory.objects.get().reserved == 6


def test_available_is_generated_and_cannot_be_written(product, warehouse):
    receive(product.sku, warehouse.code, 3)
    with pytest.raises(DatabaseError, match="generated"):
        raw("UPDATE inventory_inventory SET available = 100")


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE inventory_inventorytransaction SET on_hand_delta = 100",
        "DELETE FROM inventory_inventorytransaction",
    ],
)
def test_ledger_update_and_delete_refused_by_postgres(product, warehouse, sql):
    receive(product.sku, warehouse.code, 3)
    with pytest.raises(DatabaseError, match="append-only"):
        raw(sql)
    assert InventoryTransaction.objects.get().on_hand_delta == 3


def test_ledger_update_and_delete_refused_by_the_orm(product, warehouse):
    [txn] = receive(product.sku, warehouse.code, 3).transactions
    txn.reason = "tampered"
    with pytest.raises(AppendOnlyError):
        txn.save()
    with pytest.raises(AppendOnlyError):
        txn.delete()
    with pytest.raises(AppendOnlyError):
        InventoryTransaction.objects.filter(pk=txn.pk).update(reason="x")
    with pytest.raises(AppendOnlyError):
        InventoryTransaction.objects.all().delete()
    assert InventoryTransaction.objects.get().reason == ""


def test_reservation_line_cannot_close_more_than_it_held(product, warehouse):
    receive(product.sku, warehouse.code, 3)
    services.stock_reserve(order_id="o", lines=[ReserveLine(product.sku, "BER", 2)], actor="c")
    with pytest.raises(IntegrityError, match="reservation_line_not_overclosed"):
        raw("UPDATE inventory_reservationline SET quantity_released = 3")


# --- Stock states (issue #15) ----------------------------------------------


@pytest.mark.parametrize(
    "sql, constraint",
    [
        ("UPDATE inventory_inventory SET damaged = -1", "inventory_damaged_gte_0"),
        ("UPDATE inventory_inventory SET quality_control = -1", "inventory_quality_control_gte_0"),
        # (a PositiveIntegerField: Django's own CHECK)
        ("UPDATE inventory_inventory SET safety_stock = -1", "safety_stock"),
        (
            # good units 1 (3 - 2 damaged), reserved 2: oversold by one
            "UPDATE inventory_inventory SET damaged = 2, reserved = 2",
            "inventory_available_within_allowance",
        ),
        (
            "UPDATE inventory_inventory SET quality_control = 1, reserved = 3",
            "inventory_available_within_allowance",
        ),
    ],
)
def test_raw_sql_cannot_break_a_stock_state_guard(product, warehouse, sql, constraint):
    receive(product.sku, warehouse.code, 3)
    with pytest.raises(IntegrityError, match=constraint):
        raw(sql)
    row = Inventory.objects.get()
    assert (row.on_hand, row.reserved, row.damaged, row.quality_control) == (3, 0, 0, 0)


def test_states_at_the_limits_are_allowed_and_available_is_sellable(product, warehouse):
    receive(product.sku, warehouse.code, 10)
    raw("UPDATE inventory_inventory SET damaged = 2, quality_control = 3, reserved = 5")
    raw("UPDATE inventory_inventory SET safety_stock = 50")  # a setting: may exceed on hand
    row = Inventory.objects.get()
    assert row.available == 10 - 5 - 50 - 2 - 3


def test_unsellable_states_never_exceed_on_hand(warehouse):
    # A backorder SKU, so that only this guard (not the allowance's) is broken.
    BackorderProductFactory(sku="BACK", backorder_limit=5)
    receive("BACK", warehouse.code, 3)
    raw("UPDATE inventory_inventory SET damaged = 2, quality_control = 1")  # all of it: allowed
    with pytest.raises(IntegrityError, match="inventory_unsellable_within_on_hand"):
        raw("UPDATE inventory_inventory SET damaged = 2, quality_control = 2")
    with pytest.raises(IntegrityError, match="inventory_unsellable_within_on_hand"):
        raw("UPDATE inventory_inventory SET on_hand = 2, damaged = 3, quality_control = 0")


def test_the_backorder_allowance_covers_units_moved_to_damaged(warehouse):
    BackorderProductFactory(sku="BACK", backorder_limit=2)
    receive("BACK", warehouse.code, 3)
    raw("UPDATE inventory_inventory SET reserved = 3, damaged = 2")  # good 1 - 3 = -2: allowed
    with pytest.raises(IntegrityError, match="inventory_available_within_allowance"):
        raw("UPDATE inventory_inventory SET damaged = 3")


def test_a_ledger_row_may_change_only_a_state_but_must_change_something(product, warehouse):
    receive(product.sku, warehouse.code, 3)
    insert = (
        "INSERT INTO inventory_inventorytransaction (id, product_id, warehouse_id, type, "
        "on_hand_delta, reserved_delta, damaged_delta, quality_control_delta, on_hand_after, "
        "reserved_after, reference_type, reference_id, reason, created_at, created_by, "
        "request_id) SELECT gen_random_uuid(), product_id, warehouse_id, 'MOVE', 0, 0, %s, "
        "%s, 3, 0, '', '', 'test', now(), 'test', '' FROM inventory_inventory"
    )
    with pytest.raises(IntegrityError, match="ledger_changes_something"):
        raw(insert, [0, 0])
    with pytest.raises(IntegrityError, match="ledger_type_valid"):
        raw(insert.replace("'MOVE'", "'BROKEN'"), [1, 0])
    raw(insert, [0, 1])
    assert InventoryTransaction.objects.filter(type="MOVE", quality_control_delta=1).exists()
