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
