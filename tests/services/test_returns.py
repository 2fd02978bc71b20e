"""Customer returns with a disposition (issue #15): RETURN ledger rows into the
chosen state, idempotent by return id, bounded by what the order shipped."""

import threading

import pytest

from inventory import errors, services
from inventory.models import Inventory, InventoryTransaction, Return, ReturnLine, TransactionType
from inventory.services import ReserveLine, ReturnLineRequest

from ..conftest import receive

pytestmark = pytest.mark.django_db


def row(sku="TSHIRT-M", code="BER") -> Inventory:
    return Inventory.objects.get(product__sku=sku, warehouse__code=code)


def ship(order_id, quantity, sku="TSHIRT-M", code="BER"):
    services.stock_reserve(
        order_id=order_id, lines=[ReserveLine(sku, code, quantity)], actor="client:shop"
    )
    services.reservation_fulfill(order_id=order_id, actor="client:shop")


def give_back(return_id, *lines, **kwargs):
    return services.stock_return(
        return_id=return_id,
        lines=[ReturnLineRequest(*line) for line in lines],
        actor="user:dock",
        **kwargs,
    )


def test_each_disposition_goes_to_its_state(product, warehouse):
    receive(product.sku, "BER", 10)
    ship("o-1", 8)
    result = give_back(
        "R-1",
        ("TSHIRT-M", "BER", 3, "restock", "o-1"),
        ("TSHIRT-M", "BER", 2, "damaged", "o-1"),
        ("TSHIRT-M", "BER", 1, "quality_control", "o-1"),
        ("TSHIRT-M", "BER", 1, "dispose", "o-1"),
    )
    assert not result.replayed
    [txn] = result.transactions
    assert (txn.type, txn.on_hand_delta, txn.damaged_delta, txn.quality_control_delta) == (
        TransactionType.RETURN,
        6,
        2,
        1,
    )
    assert (txn.reference_type, txn.reference_id) == ("return", "R-1")
    r = row()
    assert (r.on_hand, r.damaged, r.quality_control, r.available) == (8, 2, 1, 5)
    assert sorted((x.disposition, x.quantity) for x in result.lines) == [
        ("damaged", 2),
        ("dispose", 1),
        ("quality_control", 1),
        ("restock", 3),
    ]


def test_a_return_is_idempotent_by_return_id(product, warehouse):
    receive(product.sku, "BER", 5)
    ship("o-1", 5)
    first = give_back("R-1", ("TSHIRT-M", "BER", 2, "restock", "o-1"))
    again = give_back("R-1", ("TSHIRT-M", "BER", 2, "restock", "o-1"))
    assert again.replayed
    assert [t.id for t in again.transactions] == [t.id for t in first.transactions]
    assert row().on_hand == 2
    with pytest.raises(errors.ReturnConflict):
        give_back("R-1", ("TSHIRT-M", "BER", 1, "restock", "o-1"))
    assert Return.objects.count() == 1


def test_a_return_cannot_exceed_what_the_order_shipped_counting_earlier_returns(product, warehouse):
    receive(product.sku, "BER", 10)
    ship("o-1", 3)
    with pytest.raises(errors.ExceedsFulfilled) as caught:
        give_back("R-1", ("TSHIRT-M", "BER", 4, "restock", "o-1"))
    assert caught.value.details["lines"][0]["returnable"] == 3
    give_back("R-2", ("TSHIRT-M", "BER", 2, "restock", "o-1"))
    with pytest.raises(errors.ExceedsFulfilled):
        give_back(
            "R-3",
            ("TSHIRT-M", "BER", 1, "restock", "o-1"),
            ("TSHIRT-M", "BER", 1, "damaged", "o-1"),
        )
    give_back("R-4", ("TSHIRT-M", "BER", 1, "dispose", "o-1"))
    with pytest.raises(errors.ExceedsFulfilled):
        give_back("R-5", ("TSHIRT-M", "BER", 1, "restock", "o-1"))
    # Reserved but never shipped counts nothing; an unknown order neither.
    services.stock_reserve(
        order_id="o-2", lines=[ReserveLine("TSHIRT-M", "BER", 2)], actor="client:shop"
    )
    for order in ("o-2", "no-such-order"):
        with pytest.raises(errors.ExceedsFulfilled):
            give_back(f"R-{order}", ("TSHIRT-M", "BER", 1, "restock", order))
    assert not Return.objects.filter(return_id__in=["R-1", "R-3", "R-5"]).exists()
    assert row().on_hand == 10 - 3 + 2


def test_a_return_without_an_order_is_not_bounded(product, warehouse):
    give_back("R-1", ("TSHIRT-M", "BER", 4, "quality_control"))
    r = row()
    assert (r.on_hand, r.quality_control, r.available) == (4, 4, 0)


@pytest.mark.parametrize(
    "line, error",
    [
        (("TSHIRT-M", "BER", 0, "restock"), errors.InvalidQuantity),
        (("TSHIRT-M", "BER", 1, "lost"), errors.InvalidInput),
        (("NOPE", "BER", 1, "restock"), errors.UnknownSku),
        (("TSHIRT-M", "NOPE", 1, "restock"), errors.UnknownWarehouse),
    ],
)
def test_bad_return_lines_are_refused_and_change_nothing(product, warehouse, line, error):
    with pytest.raises(error):
        give_back("R-1", line)
    assert not Return.objects.exists()
    assert not InventoryTransaction.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_returns_racing_for_the_last_shipped_unit_take_it_once(product, warehouse):
    """Two different return ids bring back the one unit an order shipped, at the
    same time: the order's reservation row lock serialises them; one wins."""
    receive(product.sku, "BER", 1)
    ship("o-1", 1)
    barrier = threading.Barrier(2)
    outcomes = []

    def attempt(return_id):
        from django.db import connection

        try:
            barrier.wait()
            give_back(return_id, ("TSHIRT-M", "BER", 1, "restock", "o-1"))
            outcomes.append("ok")
        except errors.ExceedsFulfilled:
            outcomes.append("exceeds")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(f"R-{n}",)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["exceeds", "ok"]
    assert ReturnLine.objects.count() == 1
    assert row().on_hand == 1
