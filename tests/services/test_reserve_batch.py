import pytest

from inventory import errors, services
from inventory.models import Inventory, InventoryTransaction, Reservation
from inventory.services import OrderRequest, ReserveLine

from ..conftest import receive
from ..factories import BackorderProductFactory, ProductFactory

pytestmark = pytest.mark.django_db


def reserved(sku="TSHIRT-M", code="BER"):
    return Inventory.objects.get(product__sku=sku, warehouse__code=code).reserved


def order(order_id, *lines):
    return OrderRequest(order_id, [ReserveLine(*line) for line in lines])


def test_each_order_in_a_batch_is_all_or_nothing_on_its_own(product, warehouse):
    ProductFactory(sku="MUG")
    receive(product.sku, "BER", 5)
    receive("MUG", "BER", 1)

    outcomes = services.stock_reserve_batch(
        orders=[
            order("a", (product.sku, "BER", 2), ("MUG", "BER", 1)),
            order("b", (product.sku, "BER", 1), ("MUG", "BER", 1)),  # MUG is gone
            order("c", (product.sku, "BER", 3)),
            order("d", (product.sku, "BER", 1)),  # nothing left
        ],
        actor="client:oms",
    )

    assert [o.order_id for o in outcomes] == ["a", "b", "c", "d"]
    assert [o.result is not None for o in outcomes] == [True, False, True, False]
    assert isinstance(outcomes[1].error, errors.InsufficientStock)
    assert outcomes[1].error.lines == [
        {"sku": "MUG", "warehouse": "BER", "requested": 1, "available": 0}
    ]
    assert outcomes[3].error.lines[0]["available"] == 0
    assert reserved() == 5
    assert reserved("MUG") == 1
    assert set(Reservation.objects.values_list("order_id", flat=True)) == {"a", "c"}


def test_many_orders_of_one_hot_sku_record_running_balances(product, warehouse):
    receive(product.sku, "BER", 100)
    outcomes = services.stock_reserve_batch(
        orders=[order(f"o{i}", (product.sku, "BER", 1)) for i in range(50)], actor="c"
    )
    assert all(o.result and o.result.created for o in outcomes)
    assert reserved() == 50
    afters = sorted(
        InventoryTransaction.objects.filter(type="RESERVE").values_list("reserved_after", flat=True)
    )
    assert afters == list(range(1, 51))


def test_a_retried_batch_reserves_nothing_twice(product, warehouse):
    receive(product.sku, "BER", 10)
    batch = [order("a", (product.sku, "BER", 2)), order("b", (product.sku, "BER", 3))]
    services.stock_reserve_batch(orders=batch, actor="c")
    again = services.stock_reserve_batch(orders=batch, actor="c")
    assert [o.result.created for o in again] == [False, False]
    assert reserved() == 5


def test_an_order_id_reused_with_other_lines_conflicts_without_harming_the_batch(
    product, warehouse
):
    receive(product.sku, "BER", 10)
    services.stock_reserve_batch(orders=[order("a", (product.sku, "BER", 2))], actor="c")
    outcomes = services.stock_reserve_batch(
        orders=[order("a", (product.sku, "BER", 9)), order("b", (product.sku, "BER", 1))],
        actor="c",
    )
    assert isinstance(outcomes[0].error, errors.OrderConflict)
    assert outcomes[1].result.created
    assert reserved() == 3


def test_unknown_sku_fails_only_its_order(product, warehouse):
    receive(product.sku, "BER", 10)
    outcomes = services.stock_reserve_batch(
        orders=[order("a", ("NOPE", "BER", 1)), order("b", (product.sku, "BER", 1))], actor="c"
    )
    assert isinstance(outcomes[0].error, errors.UnknownSku)
    assert outcomes[1].result.created
    assert not Reservation.objects.filter(order_id="a").exists()


def test_backorder_sku_without_a_row_gets_one(warehouse):
    BackorderProductFactory(sku="PRE", stock_policy="preorder", backorder_limit=2)
    outcomes = services.stock_reserve_batch(
        orders=[order("a", ("PRE", "BER", 2)), order("b", ("PRE", "BER", 1))], actor="c"
    )
    assert outcomes[0].result.created
    assert isinstance(outcomes[1].error, errors.InsufficientStock)
    assert reserved("PRE") == 2


def test_an_earlier_order_needing_a_new_row_gets_the_stock_first(product, warehouse):
    """docs/API.md: "an earlier order in the batch gets the stock first", also
    when it needs a stock row that does not exist yet (a backorder SKU in a
    warehouse that never held it). Found by the reference model: the SQL engine
    reserved the later orders first and the earlier one after its rows were
    created, so it came up short."""
    BackorderProductFactory(sku="PRE", stock_policy="backorder", backorder_limit=3)
    receive(product.sku, "BER", 4)
    outcomes = services.stock_reserve_batch(
        orders=[
            order("first", (product.sku, "BER", 4), ("PRE", "BER", 1)),  # PRE@BER: no row yet
            order("second", (product.sku, "BER", 1)),
            order("third", ("NOPE", "BER", 1)),  # unknown: fails on its own
        ],
        actor="c",
    )
    assert outcomes[0].result is not None and outcomes[0].result.created, outcomes[0].error
    assert isinstance(outcomes[1].error, errors.InsufficientStock)
    assert outcomes[1].error.lines == [
        {"sku": product.sku, "warehouse": "BER", "requested": 1, "available": 0}
    ]
    assert isinstance(outcomes[2].error, errors.UnknownSku)
    assert (reserved(), reserved("PRE")) == (4, 1)
    assert set(Reservation.objects.values_list("order_id", flat=True)) == {"first"}


@pytest.mark.parametrize(
    "orders",
    [
        [],
        [order("a", ("TSHIRT-M", "BER", 1)), order("a", ("TSHIRT-M", "BER", 1))],
        [order("a", ("TSHIRT-M", "BER", 1)), order("b", ("TSHIRT-M", "BER", 0))],
        [order("a", ("TSHIRT-M", "BER", 1))] * 501,
    ],
)
def test_invalid_batches_are_refused_whole(product, warehouse, orders):
    receive(product.sku, "BER", 10)
    with pytest.raises(errors.InvalidInput):
        services.stock_reserve_batch(orders=orders, actor="c")
    assert not Reservation.objects.exists()
