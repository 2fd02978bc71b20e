import pytest

from inventory import errors, services
from inventory.models import Inventory, InventoryTransaction, Product, TransactionType
from inventory.services import Reference, ReserveLine, TransferLine

from ..conftest import receive
from ..factories import BackorderProductFactory, ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db


def balances(sku="TSHIRT-M", code="BER"):
    r = Inventory.objects.get(product__sku=sku, warehouse__code=code)
    return r.on_hand, r.reserved, r.available


# --- adjust ---------------------------------------------------------------


def test_cycle_count_sets_on_hand_and_records_the_difference(product, warehouse):
    receive(product.sku, "BER", 10)
    result = services.stock_adjust(
        sku=product.sku, warehouse="BER", counted=7, reason="cycle count", actor="user:bob"
    )
    assert balances() == (7, 0, 7)
    [txn] = result.transactions
    assert (txn.type, txn.on_hand_delta, txn.on_hand_after) == (TransactionType.ADJUST, -3, 7)
    assert txn.reason == "cycle count"


def test_delta_adjustment(product, warehouse):
    receive(product.sku, "BER", 10)
    services.stock_adjust(sku=product.sku, warehouse="BER", delta=-2, reason="damaged", actor="u")
    services.stock_adjust(sku=product.sku, warehouse="BER", delta=5, reason="found", actor="u")
    assert balances() == (13, 0, 13)


def test_count_equal_to_on_hand_writes_nothing(product, warehouse):
    receive(product.sku, "BER", 10)
    result = services.stock_adjust(
        sku=product.sku, warehouse="BER", counted=10, reason="count", actor="u"
    )
    assert result.transactions == []


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"counted": 5, "reason": ""}, errors.ReasonRequired),
        ({"counted": 5, "reason": "   "}, errors.ReasonRequired),
        ({"counted": -1, "reason": "x"}, errors.InvalidQuantity),
        ({"delta": 0, "reason": "x"}, errors.InvalidInput),
        ({"delta": -11, "reason": "x"}, errors.InvalidQuantity),
        ({"counted": 1, "delta": 1, "reason": "x"}, errors.InvalidInput),
        ({"reason": "x"}, errors.InvalidInput),
    ],
)
def test_bad_adjustments_are_refused(product, warehouse, kwargs, error):
    receive(product.sku, "BER", 10)
    with pytest.raises(error):
        services.stock_adjust(sku=product.sku, warehouse="BER", actor="u", **kwargs)
    assert balances() == (10, 0, 10)


def test_cannot_count_below_what_open_orders_reserve(product, warehouse):
    receive(product.sku, "BER", 10)
    services.stock_reserve(order_id="o", lines=[ReserveLine(product.sku, "BER", 6)], actor="c")
    with pytest.raises(errors.BelowReserved) as exc:
        services.stock_adjust(sku=product.sku, warehouse="BER", counted=5, reason="c", actor="u")
    assert exc.value.details["reserved"] == 6
    assert balances() == (10, 6, 4)


def test_compare_and_set_refuses_a_count_when_stock_moved(product, warehouse):
    receive(product.sku, "BER", 10)
    receive(product.sku, "BER", 2)  # arrives between preview and confirm
    with pytest.raises(errors.StockChanged) as exc:
        services.stock_adjust(
            sku=product.sku,
            warehouse="BER",
            counted=9,
            expected_on_hand=10,
            reason="cycle count",
            actor="u",
        )
    assert exc.value.details["on_hand"] == 12
    assert balances() == (12, 0, 12)


def test_adjust_with_reference_is_idempotent(product, warehouse):
    receive(product.sku, "BER", 10)
    ref = Reference("cycle_count", "CC-1")
    for _ in range(2):
        services.stock_adjust(
            sku=product.sku, warehouse="BER", delta=-1, reason="c", actor="u", reference=ref
        )
    assert balances() == (9, 0, 9)


# --- transfer -------------------------------------------------------------


def test_transfer_moves_stock_with_two_ledger_rows_sharing_one_reference(
    product, warehouse, other_warehouse
):
    receive(product.sku, "BER", 10)
    result = services.stock_transfer(
        source="BER", destination="HAM", lines=[TransferLine(product.sku, 4)], actor="user:x"
    )
    assert balances(code="BER") == (6, 0, 6)
    assert balances(code="HAM") == (4, 0, 4)
    out, into = result.transactions
    assert {out.on_hand_delta, into.on_hand_delta} == {-4, 4}
    assert out.type == into.type == TransactionType.TRANSFER
    assert out.reference_id == into.reference_id == result.reference.id
    assert out.reference_type == "transfer"


def test_transfer_of_several_skus(product, warehouse, other_warehouse):
    ProductFactory(sku="MUG")
    receive(product.sku, "BER", 3)
    receive("MUG", "BER", 3)
    services.stock_transfer(
        source="BER",
        destination="HAM",
        lines=[TransferLine("MUG", 1), TransferLine(product.sku, 2)],
        actor="u",
    )
    assert balances("MUG", "HAM") == (1, 0, 1)
    assert balances(product.sku, "HAM") == (2, 0, 2)


def test_transfer_refuses_more_than_available_and_changes_nothing(
    product, warehouse, other_warehouse
):
    receive(product.sku, "BER", 5)
    services.stock_reserve(order_id="o", lines=[ReserveLine(product.sku, "BER", 3)], actor="c")
    with pytest.raises(errors.InsufficientStock) as exc:
        services.stock_transfer(
            source="BER", destination="HAM", lines=[TransferLine(product.sku, 3)], actor="u"
        )
    assert exc.value.lines[0]["available"] == 2
    assert balances(code="BER") == (5, 3, 2)
    assert not Inventory.objects.filter(warehouse__code="HAM", on_hand__gt=0).exists()


def test_transfer_does_not_move_backorder_allowance(warehouse, other_warehouse):
    BackorderProductFactory(sku="BACK", backorder_limit=5)
    receive("BACK", "BER", 1)
    with pytest.raises(errors.InsufficientStock):
        services.stock_transfer(
            source="BER", destination="HAM", lines=[TransferLine("BACK", 2)], actor="u"
        )


def test_transfer_to_same_or_inactive_warehouse_is_refused(product, warehouse):
    receive(product.sku, "BER", 5)
    WarehouseFactory(code="OLD", is_active=False)
    with pytest.raises(errors.SameWarehouse):
        services.stock_transfer(
            source="BER", destination="BER", lines=[TransferLine(product.sku, 1)], actor="u"
        )
    with pytest.raises(errors.WarehouseInactive):
        services.stock_transfer(
            source="BER", destination="OLD", lines=[TransferLine(product.sku, 1)], actor="u"
        )
    assert InventoryTransaction.objects.filter(type="TRANSFER").count() == 0


def test_transfer_with_idempotency_key_applies_once(product, warehouse, other_warehouse):
    receive(product.sku, "BER", 5)
    results = [
        services.stock_transfer(
            source="BER",
            destination="HAM",
            lines=[TransferLine(product.sku, 2)],
            actor="u",
            idempotency_key="t-1",
        )
        for _ in range(2)
    ]
    assert results[1].replayed
    assert results[0].reference == results[1].reference
    assert balances(code="BER") == (3, 0, 3)


# --- stock policy ---------------------------------------------------------


def test_changing_stock_policy_updates_every_row_allowance(warehouse, other_warehouse):
    product = BackorderProductFactory(sku="BACK", backorder_limit=5)
    receive("BACK", "BER", 1)
    receive("BACK", "HAM", 1)
    services.product_set_stock_policy(product=product, stock_policy="backorder", backorder_limit=9)
    assert set(Inventory.objects.values_list("backorder_allowance", flat=True)) == {9}


def test_lowering_allowance_below_current_backorders_is_refused(warehouse):
    product = BackorderProductFactory(sku="BACK", backorder_limit=5)
    services.stock_reserve(order_id="o", lines=[ReserveLine("BACK", "BER", 4)], actor="c")
    with pytest.raises(errors.AllowanceBelowBackorders):
        services.product_set_stock_policy(product=product, stock_policy="normal", backorder_limit=0)
    product = Product.objects.get(sku="BACK")
    assert (product.stock_policy, product.backorder_limit) == ("backorder", 5)
    assert Inventory.objects.get().backorder_allowance == 5
