"""Stock states (issue #15): sellable vs physical stock, moves between states,
write-offs, safety stock, and what the reserve paths (both engines, the
services conftest runs each test on `sql` and `python`) may take."""

import pytest

from inventory import errors, services
from inventory.models import Inventory, InventoryTransaction, TransactionType
from inventory.services import Reference, ReserveLine, TransferLine

from ..conftest import receive
from ..factories import BackorderProductFactory

pytestmark = pytest.mark.django_db


def row(sku="TSHIRT-M", code="BER") -> Inventory:
    return Inventory.objects.get(product__sku=sku, warehouse__code=code)


def states(sku="TSHIRT-M", code="BER"):
    r = row(sku, code)
    return {
        "on_hand": r.on_hand,
        "reserved": r.reserved,
        "damaged": r.damaged,
        "quality_control": r.quality_control,
        "safety_stock": r.safety_stock,
        "available": r.available,
    }


def move(from_state, to_state, quantity, sku="TSHIRT-M", code="BER", **kwargs):
    return services.stock_move_state(
        sku=sku,
        warehouse=code,
        from_state=from_state,
        to_state=to_state,
        quantity=quantity,
        reason=kwargs.pop("reason", "dropped by forklift"),
        actor="user:dock",
        **kwargs,
    )


def reserve(order_id, quantity, sku="TSHIRT-M", code="BER"):
    return services.stock_reserve(
        order_id=order_id, lines=[ReserveLine(sku, code, quantity)], actor="client:shop"
    )


def test_move_to_damaged_is_a_ledger_row_and_leaves_sellable(product, warehouse):
    receive(product.sku, "BER", 10)
    result = move("sellable", "damaged", 3)
    [txn] = result.transactions
    assert (txn.type, txn.on_hand_delta, txn.reserved_delta) == (TransactionType.MOVE, 0, 0)
    assert (txn.damaged_delta, txn.quality_control_delta) == (3, 0)
    assert (txn.reason, txn.created_by) == ("dropped by forklift", "user:dock")
    assert states() == {
        "on_hand": 10,
        "reserved": 0,
        "damaged": 3,
        "quality_control": 0,
        "safety_stock": 0,
        "available": 7,
    }


def test_quality_control_hold_release_and_reject(product, warehouse):
    receive(product.sku, "BER", 10)
    move("sellable", "quality_control", 4)
    assert states()["available"] == 6
    move("quality_control", "sellable", 1)
    move("quality_control", "damaged", 2)
    s = states()
    assert (s["quality_control"], s["damaged"], s["available"]) == (1, 2, 7)
    types = list(
        InventoryTransaction.objects.filter(type=TransactionType.MOVE).values_list(
            "damaged_delta", "quality_control_delta"
        )
    )
    assert sorted(types) == sorted([(0, 4), (0, -1), (2, -2)])


def test_write_off_takes_units_out_of_on_hand_and_the_state(product, warehouse):
    receive(product.sku, "BER", 10)
    move("sellable", "damaged", 3)
    [txn] = move("damaged", "written_off", 2, reason="scrapped").transactions
    assert (txn.type, txn.on_hand_delta, txn.damaged_delta) == (TransactionType.WRITE_OFF, -2, -2)
    s = states()
    assert (s["on_hand"], s["damaged"], s["available"]) == (8, 1, 7)
    move("sellable", "written_off", 7, reason="lost")
    assert states()["on_hand"] == 1


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"from_state": "sellable", "to_state": "sellable"}, errors.InvalidInput),
        ({"from_state": "broken", "to_state": "damaged"}, errors.InvalidInput),
        ({"from_state": "sellable", "to_state": "lost"}, errors.InvalidInput),
        ({"from_state": "damaged", "to_state": "sellable"}, errors.InsufficientState),
        ({"from_state": "sellable", "to_state": "damaged", "quantity": 0}, errors.InvalidQuantity),
        ({"from_state": "sellable", "to_state": "damaged", "reason": " "}, errors.ReasonRequired),
    ],
)
def test_bad_moves_are_refused_and_change_nothing(product, warehouse, kwargs, error):
    receive(product.sku, "BER", 10)
    kwargs = {"quantity": 1, **kwargs}
    with pytest.raises(error):
        move(kwargs.pop("from_state"), kwargs.pop("to_state"), kwargs.pop("quantity"), **kwargs)
    assert states()["available"] == 10
    assert not InventoryTransaction.objects.exclude(type=TransactionType.RECEIVE).exists()


def test_a_reserved_unit_cannot_be_moved_to_damaged(product, warehouse):
    receive(product.sku, "BER", 2)
    reserve("o-1", 2)
    with pytest.raises(errors.InsufficientStock) as caught:
        move("sellable", "damaged", 1)
    assert caught.value.code == "insufficient_stock"
    assert caught.value.lines[0]["available"] == 0


def test_reservations_take_only_sellable_stock(product, warehouse):
    receive(product.sku, "BER", 10)
    move("sellable", "damaged", 3)
    move("sellable", "quality_control", 2)
    services.inventory_set_reorder(sku=product.sku, warehouse="BER", safety_stock=1)
    assert states()["available"] == 4
    with pytest.raises(errors.InsufficientStock) as caught:
        reserve("o-big", 5)
    assert caught.value.lines[0]["available"] == 4
    reserve("o-fits", 4)
    s = states()
    assert (s["reserved"], s["available"]) == (4, 0)


def test_safety_stock_is_never_eaten_by_backorders(warehouse):
    BackorderProductFactory(sku="PRE-1", backorder_limit=5)
    receive("PRE-1", "BER", 3)
    services.inventory_set_reorder(sku="PRE-1", warehouse="BER", safety_stock=2)
    # sellable 1, allowance 5: at most 6 may be reserved, the 2 kept back stay kept.
    with pytest.raises(errors.InsufficientStock):
        reserve("o-7", 7, sku="PRE-1")
    reserve("o-6", 6, sku="PRE-1")
    assert states("PRE-1")["available"] == -5


def test_safety_stock_may_exceed_on_hand_and_bumps_the_version(product, warehouse):
    receive(product.sku, "BER", 2)
    before = row().version
    services.inventory_set_reorder(sku=product.sku, warehouse="BER", safety_stock=5)
    after = row()
    assert (after.safety_stock, after.available, after.version) == (5, -3, before + 1)
    with pytest.raises(errors.InsufficientStock):
        reserve("o-1", 1)


def test_fulfilment_ships_only_good_units(warehouse):
    BackorderProductFactory(sku="BO-1", backorder_limit=5)
    receive("BO-1", "BER", 3)
    reserve("o-1", 3, sku="BO-1")
    # A reserved unit breaks: the backorder allowance takes it (good 2, reserved 3).
    move("sellable", "damaged", 1, sku="BO-1")
    with pytest.raises(errors.InsufficientOnHand) as caught:
        services.reservation_fulfill(order_id="o-1", actor="client:shop")
    assert caught.value.lines[0]["on_hand"] == 2
    s = states("BO-1")
    assert (s["on_hand"], s["reserved"], s["damaged"]) == (3, 3, 1)


def test_adjust_cannot_count_below_unsellable_states(product, warehouse):
    receive(product.sku, "BER", 10)
    move("sellable", "damaged", 4)
    with pytest.raises(errors.BelowReserved):
        services.stock_adjust(
            sku=product.sku, warehouse="BER", counted=3, reason="count", actor="u"
        )
    services.stock_adjust(sku=product.sku, warehouse="BER", counted=4, reason="count", actor="u")
    assert states()["available"] == 0


def test_transfer_moves_only_sellable_units(product, warehouse, other_warehouse):
    receive(product.sku, "BER", 10)
    move("sellable", "quality_control", 6)
    with pytest.raises(errors.InsufficientStock):
        services.stock_transfer(
            source="BER", destination="HAM", lines=[TransferLine(product.sku, 5)], actor="u"
        )
    services.stock_transfer(
        source="BER", destination="HAM", lines=[TransferLine(product.sku, 4)], actor="u"
    )
    assert states()["on_hand"] == 6


def test_move_is_idempotent_by_key_and_by_reference(product, warehouse):
    receive(product.sku, "BER", 10)
    first = move("sellable", "damaged", 2, idempotency_key="k-1")
    again = move("sellable", "damaged", 2, idempotency_key="k-1")
    assert again.replayed and [t.id for t in again.transactions] == [
        t.id for t in first.transactions
    ]
    ref = Reference("manual", "QC-9")
    move("sellable", "quality_control", 1, reference=ref)
    assert move("sellable", "quality_control", 1, reference=ref).replayed
    with pytest.raises(errors.IdempotencyConflict):
        move("sellable", "damaged", 3, idempotency_key="k-1")
    s = states()
    assert (s["damaged"], s["quality_control"]) == (2, 1)


def test_moves_publish_the_sellable_figure_after_commit(
    product, warehouse, django_capture_on_commit_callbacks
):
    from inventory.services import COMMITTED_CHANGE_LISTENERS

    seen = []
    COMMITTED_CHANGE_LISTENERS.append(seen.extend)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            receive(product.sku, "BER", 10)
        with django_capture_on_commit_callbacks(execute=True):
            move("sellable", "damaged", 3)
        with django_capture_on_commit_callbacks(execute=True):
            reserve("o-1", 2)
    finally:
        COMMITTED_CHANGE_LISTENERS.remove(seen.extend)
    assert [(c.type, c.available) for c in seen] == [
        ("RECEIVE", 10),
        ("MOVE", 7),
        ("RESERVE", 5),
    ]
