"""Closing an order that holds nothing is an error (409 order_closed), never a
silent success; a hold past its expires_at counts as lapsed at close time.

Every test runs on both engines (tests/services/conftest.py): the one-statement
`stockroom_close_order` and the ORM path.
"""

from datetime import timedelta

import pytest

from inventory import clock, errors, services
from inventory.actors import SYSTEM_SWEEPER
from inventory.models import (
    Inventory,
    InventoryTransaction,
    Reservation,
    ReservationStatus,
    TransactionType,
)
from inventory.services import OrderLine, ReserveLine

from ..conftest import receive

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _real_time_after():
    yield
    clock.reset()


def balances(sku="TSHIRT-M", code="BER"):
    r = Inventory.objects.get(product__sku=sku, warehouse__code=code)
    return r.on_hand, r.reserved


def hold(order_id, quantity, seconds=None, sku="TSHIRT-M"):
    expires_at = clock.now() + timedelta(seconds=seconds) if seconds else None
    return services.stock_reserve(
        order_id=order_id,
        lines=[ReserveLine(sku, "BER", quantity)],
        actor="client:shop",
        expires_at=expires_at,
    ).reservation


def ledger(order_id, *types):
    return list(
        InventoryTransaction.objects.filter(reference_id=order_id, type__in=types).values_list(
            "type", "on_hand_delta", "reserved_delta", "created_by"
        )
    )


CLOSE = {"release": services.reservation_release, "fulfill": services.reservation_fulfill}


@pytest.mark.parametrize(
    "first, then, status",
    [
        ("release", "release", "released"),
        ("release", "fulfill", "released"),
        ("fulfill", "release", "fulfilled"),
        ("fulfill", "fulfill", "fulfilled"),
    ],
)
def test_a_whole_order_close_of_a_closed_order_is_order_closed(
    product, warehouse, first, then, status
):
    receive(product.sku, "BER", 10)
    hold("o-1", 4)
    CLOSE[first](order_id="o-1", actor="c")
    before = (balances(), InventoryTransaction.objects.count())

    with pytest.raises(errors.OrderClosed) as refused:
        CLOSE[then](order_id="o-1", actor="c")

    assert refused.value.details == {"order_id": "o-1", "status": status}
    assert (balances(), InventoryTransaction.objects.count()) == before
    assert Reservation.objects.get().status == status


@pytest.mark.parametrize("then", ["release", "fulfill"])
def test_a_partial_close_of_a_closed_order_is_order_closed_too(product, warehouse, then):
    receive(product.sku, "BER", 10)
    hold("o-1", 4)
    services.reservation_release(order_id="o-1", actor="c")
    with pytest.raises(errors.OrderClosed) as refused:
        CLOSE[then](order_id="o-1", actor="c", lines=[OrderLine(product.sku, 1)])
    assert refused.value.details["status"] == "released"
    assert isinstance(refused.value, errors.ExceedsReservation)


def test_the_reported_scenario_a_lapsed_hold_sold_to_another_order_ships_nothing(
    product, warehouse
):
    """L1 holds 2 with a 1-second hold; it lapses and is swept; L2 takes the 2
    units; fulfilling L1 used to answer 200 `expired` shipping nothing."""
    receive(product.sku, "BER", 2)
    hold("L1", 2, seconds=1)
    clock.advance(2)
    assert services.reservations_expire(now=clock.now()) == 1
    hold("L2", 2)

    with pytest.raises(errors.OrderClosed) as refused:
        services.reservation_fulfill(order_id="L1", actor="client:wms")

    assert refused.value.details == {"order_id": "L1", "status": "expired"}
    assert ledger("L1", "FULFILL") == []
    assert balances() == (2, 2)  # on hand stays 2, all of it L2's


@pytest.mark.parametrize("close", ["release", "fulfill"])
@pytest.mark.parametrize("partial", [False, True], ids=["whole", "partial"])
def test_a_lapsed_hold_not_yet_swept_is_expired_by_the_close_and_refused(
    product, warehouse, close, partial, django_capture_on_commit_callbacks
):
    receive(product.sku, "BER", 5)
    hold("L1", 2, seconds=60)
    clock.advance(61)  # lapsed; the sweeper has not run
    lines = [OrderLine(product.sku, 1)] if partial else None

    published = []
    services.COMMITTED_CHANGE_LISTENERS.append(published.extend)
    try:
        with (
            django_capture_on_commit_callbacks(execute=True),
            pytest.raises(errors.OrderClosed) as refused,
        ):
            CLOSE[close](order_id="L1", actor="client:wms", lines=lines)
    finally:
        services.COMMITTED_CHANGE_LISTENERS.remove(published.extend)

    assert refused.value.details == {"order_id": "L1", "status": "expired"}
    # Expired as the sweeper would have: released by the sweeper, nothing shipped.
    assert ledger("L1", "FULFILL", "RELEASE") == [("RELEASE", 0, -2, SYSTEM_SWEEPER)]
    assert balances() == (5, 0)
    stored = Reservation.objects.get(order_id="L1")
    assert stored.status == ReservationStatus.EXPIRED
    assert {line.status for line in stored.lines.all()} == {ReservationStatus.EXPIRED}
    # The released units are published after commit (caches hear of them).
    assert [(c.type, c.on_hand, c.reserved) for c in published] == [("RELEASE", 5, 0)]
    # And it stays closed.
    with pytest.raises(errors.OrderClosed):
        CLOSE[close](order_id="L1", actor="client:wms")


def test_a_hold_that_has_not_lapsed_yet_closes_normally(product, warehouse):
    receive(product.sku, "BER", 5)
    hold("L1", 2, seconds=60)
    clock.advance(59)
    result = services.reservation_fulfill(order_id="L1", actor="client:wms")
    assert result.reservation.status == ReservationStatus.FULFILLED
    assert balances() == (3, 0)


def test_a_retry_with_the_same_key_replays_the_first_success(product, warehouse):
    receive(product.sku, "BER", 10)
    hold("o-1", 4)
    first = services.reservation_fulfill(order_id="o-1", actor="c", idempotency_key="k1")
    again = services.reservation_fulfill(order_id="o-1", actor="c", idempotency_key="k1")
    assert again.reservation.status == first.reservation.status == ReservationStatus.FULFILLED
    assert [t.id for t in again.transactions] == [t.id for t in first.transactions]
    with pytest.raises(errors.OrderClosed):
        services.reservation_fulfill(order_id="o-1", actor="c", idempotency_key="k2")
    with pytest.raises(errors.OrderClosed):
        services.reservation_fulfill(order_id="o-1", actor="c")
    assert balances() == (6, 0)
    assert len(ledger("o-1", TransactionType.FULFILL)) == 1


def test_a_keyed_close_of_a_lapsed_hold_does_not_store_its_key(product, warehouse):
    """The refusal is not a result to replay: the key stays free, a retry gets
    the same 409 (the order is expired now)."""
    receive(product.sku, "BER", 10)
    hold("o-1", 4, seconds=5)
    clock.advance(10)
    for _ in range(2):
        with pytest.raises(errors.OrderClosed) as refused:
            services.reservation_fulfill(order_id="o-1", actor="c", idempotency_key="k1")
        assert refused.value.details["status"] == "expired"
    assert balances() == (10, 0)


def test_a_storefront_cannot_learn_about_another_actors_order(product, warehouse):
    receive(product.sku, "BER", 10)
    hold("o-1", 4, seconds=5)
    clock.advance(10)
    with pytest.raises(errors.ReservationNotFound):
        services.reservation_release(order_id="o-1", actor="c", placed_by="client:other")
    assert Reservation.objects.get().status == ReservationStatus.ACTIVE  # not expired by it


def test_a_lapsed_hold_part_of_which_shipped_ends_fulfilled_as_the_sweeper_leaves_it(
    product, warehouse
):
    receive(product.sku, "BER", 10)
    hold("L1", 4, seconds=60)
    services.reservation_fulfill(order_id="L1", actor="c", lines=[OrderLine(product.sku, 1)])
    clock.advance(60)
    with pytest.raises(errors.OrderClosed) as refused:
        services.reservation_fulfill(order_id="L1", actor="c")
    assert refused.value.details["status"] == "fulfilled"
    assert balances() == (9, 0)
    assert ledger("L1", "RELEASE") == [("RELEASE", 0, -3, SYSTEM_SWEEPER)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("second", ["fulfill", "release"])
def test_two_closes_racing_on_one_order_one_wins_the_other_is_order_closed(
    product, warehouse, second
):
    """A warehouse system's fulfil and a second close of the same order start
    together (a barrier, per order): exactly one applies; the other answers
    order_closed naming the winner's status. Never two ledger closes."""
    import threading

    from django.db import connections

    orders = [f"o-{i}" for i in range(10)]
    receive(product.sku, "BER", 30)
    for order_id in orders:
        hold(order_id, 2)
    outcome: dict[str, list[str]] = {order_id: [] for order_id in orders}
    failures = []

    def run(kind, order_id, barrier):
        try:
            barrier.wait(10)
            CLOSE[kind](order_id=order_id, actor=f"client:{kind}")
            outcome[order_id].append("ok")
        except errors.OrderClosed as exc:
            outcome[order_id].append(exc.details["status"])
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)
        finally:
            connections.close_all()

    for order_id in orders:
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=run, args=(kind, order_id, barrier))
            for kind in ("fulfill", second)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    assert failures == []
    shipped = 0
    for order_id in orders:
        status = Reservation.objects.get(order_id=order_id).status
        assert sorted(outcome[order_id]) == sorted(["ok", status])
        closes = ledger(order_id, "FULFILL", "RELEASE")
        assert len(closes) == 1
        shipped += closes[0][0] == "FULFILL"
    assert balances() == (30 - 2 * shipped, 0)
