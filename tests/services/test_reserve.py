import pytest

from inventory import errors, services
from inventory.models import (
    Inventory,
    InventoryTransaction,
    Reservation,
    ReservationStatus,
    TransactionType,
)
from inventory.services import ReserveLine

from ..conftest import receive
from ..factories import BackorderProductFactory, ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db


def row(sku, code):
    return Inventory.objects.get(product__sku=sku, warehouse__code=code)


def test_reserve_moves_available_to_reserved_and_records_lines(product, warehouse):
    receive(product.sku, warehouse.code, 10)

    result = services.stock_reserve(
        order_id="o-1", lines=[ReserveLine(product.sku, warehouse.code, 4)], actor="client:shop"
    )

    assert result.created is True
    r = row(product.sku, warehouse.code)
    assert (r.on_hand, r.reserved, r.available) == (10, 4, 6)
    [line] = result.reservation.lines.all()
    assert (line.quantity, line.status) == (4, ReservationStatus.ACTIVE)
    [txn] = result.transactions
    assert txn.type == TransactionType.RESERVE
    assert (txn.on_hand_delta, txn.reserved_delta, txn.reserved_after) == (0, 4, 4)
    assert (txn.reference_type, txn.reference_id) == ("order", "o-1")


def test_multi_line_order_is_all_or_nothing(product, warehouse):
    other = ProductFactory(sku="MUG")
    receive(product.sku, warehouse.code, 10)
    receive(other.sku, warehouse.code, 1)

    with pytest.raises(errors.InsufficientStock) as exc:
        services.stock_reserve(
            order_id="o-2",
            lines=[ReserveLine(product.sku, warehouse.code, 3), ReserveLine("MUG", "BER", 2)],
            actor="client:shop",
        )

    assert exc.value.lines == [{"sku": "MUG", "warehouse": "BER", "requested": 2, "available": 1}]
    assert row(product.sku, "BER").reserved == 0
    assert row("MUG", "BER").reserved == 0
    assert not Reservation.objects.exists()
    assert InventoryTransaction.objects.filter(type=TransactionType.RESERVE).count() == 0


def test_lines_for_the_same_row_are_merged(product, warehouse):
    receive(product.sku, warehouse.code, 10)
    result = services.stock_reserve(
        order_id="o-3",
        lines=[ReserveLine(product.sku, "BER", 2), ReserveLine(product.sku, "BER", 3)],
        actor="c",
    )
    assert [line.quantity for line in result.reservation.lines.all()] == [5]
    assert row(product.sku, "BER").reserved == 5


def test_same_order_again_returns_existing_reservation_without_reserving_twice(product, warehouse):
    receive(product.sku, warehouse.code, 10)
    lines = [ReserveLine(product.sku, "BER", 2)]
    first = services.stock_reserve(order_id="o-4", lines=lines, actor="c")
    second = services.stock_reserve(order_id="o-4", lines=lines, actor="c")

    assert second.created is False
    assert second.reservation.pk == first.reservation.pk
    assert row(product.sku, "BER").reserved == 2


def test_same_order_with_different_lines_is_a_conflict(product, warehouse):
    receive(product.sku, warehouse.code, 10)
    services.stock_reserve(order_id="o-5", lines=[ReserveLine(product.sku, "BER", 2)], actor="c")
    with pytest.raises(errors.OrderConflict):
        services.stock_reserve(
            order_id="o-5", lines=[ReserveLine(product.sku, "BER", 3)], actor="c"
        )
    assert row(product.sku, "BER").reserved == 2


def test_failed_order_id_can_be_retried_once_stock_arrives(product, warehouse):
    lines = [ReserveLine(product.sku, "BER", 2)]
    with pytest.raises(errors.InsufficientStock):
        services.stock_reserve(order_id="o-6", lines=lines, actor="c")
    receive(product.sku, "BER", 2)
    assert services.stock_reserve(order_id="o-6", lines=lines, actor="c").created


def test_normal_sku_without_row_in_that_warehouse_is_insufficient(product, warehouse):
    with pytest.raises(errors.InsufficientStock) as exc:
        services.stock_reserve(
            order_id="o-7", lines=[ReserveLine(product.sku, "BER", 1)], actor="c"
        )
    assert exc.value.lines[0]["available"] == 0


def test_backorder_sku_goes_below_zero_down_to_its_allowance_and_no_further(warehouse):
    product = BackorderProductFactory(sku="BACK", backorder_limit=5)
    receive("BACK", "BER", 2)

    services.stock_reserve(order_id="b-1", lines=[ReserveLine("BACK", "BER", 6)], actor="c")
    r = row("BACK", "BER")
    assert (r.on_hand, r.reserved, r.available) == (2, 6, -4)

    services.stock_reserve(order_id="b-2", lines=[ReserveLine("BACK", "BER", 1)], actor="c")
    assert row("BACK", "BER").available == -5
    with pytest.raises(errors.InsufficientStock) as exc:
        services.stock_reserve(order_id="b-3", lines=[ReserveLine("BACK", "BER", 1)], actor="c")
    assert exc.value.lines[0]["available"] == 0
    assert row("BACK", "BER").available == -5
    assert product.allowance == 5


def test_preorder_sku_can_reserve_in_a_warehouse_with_no_stock_row(warehouse):
    BackorderProductFactory(sku="PRE", stock_policy="preorder", backorder_limit=3)
    services.stock_reserve(order_id="p-1", lines=[ReserveLine("PRE", "BER", 3)], actor="c")
    r = row("PRE", "BER")
    assert (r.on_hand, r.reserved, r.available) == (0, 3, -3)


@pytest.mark.parametrize(
    "lines, error",
    [
        ([], errors.InvalidInput),
        ([ReserveLine("TSHIRT-M", "BER", 0)], errors.InvalidQuantity),
        ([ReserveLine("TSHIRT-M", "BER", -2)], errors.InvalidQuantity),
        ([ReserveLine("TSHIRT-M", "BER", 2.0)], errors.InvalidQuantity),
        ([ReserveLine("NOPE", "BER", 1)], errors.UnknownSku),
        ([ReserveLine("TSHIRT-M", "XXX", 1)], errors.UnknownWarehouse),
        ([ReserveLine("TSHIRT-M", "BER", 1)] * 101, errors.InvalidInput),
    ],
)
def test_bad_orders_are_refused_and_change_nothing(product, warehouse, lines, error):
    receive(product.sku, warehouse.code, 10)
    with pytest.raises(error):
        services.stock_reserve(order_id="bad", lines=lines, actor="c")
    assert not Reservation.objects.exists()
    assert row(product.sku, "BER").reserved == 0


def test_inactive_warehouse_refuses_reservations(product, warehouse):
    receive(product.sku, warehouse.code, 10)
    warehouse.is_active = False
    warehouse.save()
    with pytest.raises(errors.WarehouseInactive):
        services.stock_reserve(order_id="x", lines=[ReserveLine(product.sku, "BER", 1)], actor="c")
    assert not Reservation.objects.exists()


def test_an_inactive_warehouse_is_named_once_however_many_lines_it_has(product, warehouse):
    ProductFactory(sku="MUG")
    receive(product.sku, warehouse.code, 10)
    receive("MUG", warehouse.code, 10)
    warehouse.is_active = False
    warehouse.save()
    lines = [ReserveLine(product.sku, "BER", 1), ReserveLine("MUG", "BER", 1)]
    with pytest.raises(errors.WarehouseInactive) as refused:
        services.stock_reserve(order_id="x", lines=lines, actor="c")
    assert refused.value.details == {"warehouses": ["BER"]}
    assert refused.value.message == "Warehouse inactive: BER."


def test_reports_every_short_line(warehouse):
    for sku in ("A", "B", "C"):
        ProductFactory(sku=sku)
        receive(sku, "BER", 1)
    WarehouseFactory(code="HAM")
    with pytest.raises(errors.InsufficientStock) as exc:
        services.stock_reserve(
            order_id="o",
            lines=[
                ReserveLine("C", "BER", 2),
                ReserveLine("A", "BER", 1),
                ReserveLine("B", "BER", 5),
            ],
            actor="c",
        )
    assert [(line["sku"], line["available"]) for line in exc.value.lines] == [("B", 1), ("C", 1)]
