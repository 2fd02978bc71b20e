import pytest

from inventory import errors, services
from inventory.models import Inventory, InventoryTransaction, TransactionType
from inventory.services import Reference

from ..factories import ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db


def test_receive_adds_to_on_hand_and_writes_one_ledger_row(product, warehouse):
    result = services.stock_receive(
        sku=product.sku,
        warehouse=warehouse.code,
        quantity=12,
        actor="user:alice",
        reference=Reference("purchase_order", "PO-1"),
        reason="container 7",
    )

    row = Inventory.objects.get(product=product, warehouse=warehouse)
    assert (row.on_hand, row.reserved, row.available) == (12, 0, 12)
    [txn] = result.transactions
    assert txn.type == TransactionType.RECEIVE
    assert (txn.on_hand_delta, txn.reserved_delta) == (12, 0)
    assert (txn.on_hand_after, txn.reserved_after) == (12, 0)
    assert (txn.reference_type, txn.reference_id) == ("purchase_order", "PO-1")
    assert txn.created_by == "user:alice"
    assert txn.reason == "container 7"
    assert row.version == 1


def test_receive_twice_without_reference_adds_twice(product, warehouse):
    for _ in range(2):
        services.stock_receive(sku=product.sku, warehouse=warehouse.code, quantity=3, actor="u")
    assert Inventory.objects.get().on_hand == 6


def test_same_receipt_reference_applies_once_and_returns_first_result(product, warehouse):
    kwargs = dict(
        sku=product.sku,
        warehouse=warehouse.code,
        quantity=5,
        actor="user:a",
        reference=Reference("purchase_order", "PO-9"),
    )
    first = services.stock_receive(**kwargs)
    second = services.stock_receive(**kwargs)

    assert second.replayed is True
    assert [t.id for t in second.transactions] == [t.id for t in first.transactions]
    assert Inventory.objects.get().on_hand == 5
    assert InventoryTransaction.objects.count() == 1


def test_same_idempotency_key_with_other_quantity_is_a_conflict(product, warehouse):
    services.stock_receive(
        sku=product.sku, warehouse=warehouse.code, quantity=5, actor="u", idempotency_key="k1"
    )
    with pytest.raises(errors.IdempotencyConflict):
        services.stock_receive(
            sku=product.sku, warehouse=warehouse.code, quantity=6, actor="u", idempotency_key="k1"
        )
    assert Inventory.objects.get().on_hand == 5


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "3", True, None, 10**12])
def test_bad_quantity_is_refused_and_changes_nothing(product, warehouse, quantity):
    with pytest.raises(errors.InvalidQuantity):
        services.stock_receive(
            sku=product.sku, warehouse=warehouse.code, quantity=quantity, actor="u"
        )
    assert not Inventory.objects.exists()
    assert not InventoryTransaction.objects.exists()


def test_unknown_sku_and_unknown_warehouse_are_refused(product, warehouse):
    with pytest.raises(errors.UnknownSku) as exc:
        services.stock_receive(sku="NOPE", warehouse=warehouse.code, quantity=1, actor="u")
    assert exc.value.details == {"skus": ["NOPE"]}
    with pytest.raises(errors.UnknownWarehouse):
        services.stock_receive(sku=product.sku, warehouse="NOWHERE", quantity=1, actor="u")
    assert not InventoryTransaction.objects.exists()


def test_inactive_warehouse_takes_no_stock(product):
    closed = WarehouseFactory(code="OLD", is_active=False)
    with pytest.raises(errors.WarehouseInactive):
        services.stock_receive(sku=product.sku, warehouse=closed.code, quantity=1, actor="u")
    assert not InventoryTransaction.objects.exists()


def test_new_row_of_backorder_product_copies_allowance(warehouse):
    product = ProductFactory(sku="PRE-1", stock_policy="preorder", backorder_limit=7)
    services.stock_receive(sku=product.sku, warehouse=warehouse.code, quantity=1, actor="u")
    assert Inventory.objects.get().backorder_allowance == 7


def test_long_references_and_keys_still_apply_once(product, warehouse):
    reference = Reference("purchase_order", "P" * 100)
    for _ in range(2):
        services.stock_receive(
            sku=product.sku, warehouse=warehouse.code, quantity=2, actor="u", reference=reference
        )
        services.stock_receive(
            sku=product.sku,
            warehouse=warehouse.code,
            quantity=3,
            actor="u",
            idempotency_key="k" * 300,
        )
    assert Inventory.objects.get().on_hand == 5
