"""Holds that a payment confirms: `reservation_confirm` and its batch.

Time moves with `inventory.clock.advance()`, never by sleeping. Both engines
(tests/services/conftest.py): the confirmation is the same ORM code, but the
closes that follow it (and the expiry of a lapsed hold) run on each engine.
"""

import threading
from datetime import timedelta

import pytest
from django.db import connections

from inventory import clock, errors, services
from inventory.actors import SYSTEM_SWEEPER
from inventory.models import Inventory, InventoryTransaction, Reservation, ReservationStatus
from inventory.services import ConfirmRequest, ReserveLine

from ..conftest import assert_invariants, receive

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _real_time_after():
    yield
    clock.reset()


@pytest.fixture
def stocked(product, warehouse):
    receive(product.sku, "BER", 10)


def hold(order_id, quantity=2, seconds=60, actor="client:shop"):
    expires_at = clock.now() + timedelta(seconds=seconds) if seconds else None
    return services.stock_reserve(
        order_id=order_id,
        lines=[ReserveLine("TSHIRT-M", "BER", quantity)],
        actor=actor,
        expires_at=expires_at,
    ).reservation


def balances():
    r = Inventory.objects.get(product__sku="TSHIRT-M", warehouse__code="BER")
    return r.on_hand, r.reserved


def sweep():
    return services.reservations_expire(now=clock.now())


def test_a_confirmed_hold_no_longer_lapses(stocked):
    hold("o-1", seconds=60)
    ledger = InventoryTransaction.objects.count()

    result = services.reservation_confirm(order_id="o-1", actor="client:psp")

    stored = Reservation.objects.get(order_id="o-1")
    assert result.reservation.expires_at is None and stored.expires_at is None
    assert stored.confirmed_by == "client:psp"
    assert stored.confirmed_at == result.reservation.confirmed_at
    assert InventoryTransaction.objects.count() == ledger  # no stock changed, no ledger row
    clock.advance(3600)
    assert sweep() == 0
    fulfilled = services.reservation_fulfill(order_id="o-1", actor="client:wms")
    assert fulfilled.reservation.status == ReservationStatus.FULFILLED
    assert balances() == (8, 0)


def test_expires_in_extends_the_hold_from_now(stocked):
    hold("o-1", seconds=60)
    clock.advance(30)
    before = clock.now()

    result = services.reservation_confirm(order_id="o-1", actor="client:psp", expires_in=600)

    stored = Reservation.objects.get()
    assert (
        result.reservation.expires_at
        == stored.expires_at
        == stored.confirmed_at + timedelta(seconds=600)
    )
    assert before <= stored.confirmed_at <= clock.now()
    clock.advance(599)  # long past the original 60 s
    assert sweep() == 0
    clock.advance(2)  # past the extension
    with pytest.raises(errors.OrderClosed) as refused:
        services.reservation_fulfill(order_id="o-1", actor="client:wms")
    assert refused.value.details["status"] == "expired"
    assert balances() == (10, 0)


def test_confirming_again_changes_nothing_and_answers_the_same(stocked):
    hold("o-1")
    first = services.reservation_confirm(order_id="o-1", actor="client:psp")
    clock.advance(5)
    again = services.reservation_confirm(order_id="o-1", actor="client:other-psp")
    stored = Reservation.objects.get()
    assert again.reservation.confirmed_at == first.reservation.confirmed_at == stored.confirmed_at
    assert stored.confirmed_by == "client:psp"
    assert stored.expires_at is None


def test_an_order_placed_without_a_hold_can_be_confirmed(stocked):
    hold("o-1", seconds=None)
    result = services.reservation_confirm(order_id="o-1", actor="client:psp")
    assert result.reservation.expires_at is None
    assert result.reservation.confirmed_at is not None


@pytest.mark.parametrize(
    "close, status",
    [
        (services.reservation_release, "released"),
        (services.reservation_fulfill, "fulfilled"),
    ],
)
def test_confirming_a_closed_order_is_order_closed(stocked, close, status):
    hold("o-1")
    close(order_id="o-1", actor="c")
    with pytest.raises(errors.OrderClosed) as refused:
        services.reservation_confirm(order_id="o-1", actor="client:psp")
    assert refused.value.details == {"order_id": "o-1", "status": status}
    assert Reservation.objects.get().confirmed_at is None


@pytest.mark.parametrize("expires_in", [None, 600])
def test_confirming_a_lapsed_hold_is_order_closed_and_expires_it(
    stocked, expires_in, django_capture_on_commit_callbacks
):
    hold("o-1", seconds=60)
    clock.advance(60)  # expires_at == now: lapsed
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(errors.OrderClosed) as refused,
    ):
        services.reservation_confirm(order_id="o-1", actor="client:psp", expires_in=expires_in)
    assert refused.value.details == {"order_id": "o-1", "status": "expired"}
    stored = Reservation.objects.get()
    assert (stored.status, stored.confirmed_at) == ("expired", None)
    assert list(
        InventoryTransaction.objects.filter(type="RELEASE").values_list("created_by", flat=True)
    ) == [SYSTEM_SWEEPER]
    assert balances() == (10, 0)


def test_an_expired_order_is_order_closed(stocked):
    hold("o-1", seconds=1)
    clock.advance(2)
    assert sweep() == 1
    with pytest.raises(errors.OrderClosed) as refused:
        services.reservation_confirm(order_id="o-1", actor="client:psp")
    assert refused.value.details["status"] == "expired"


def test_only_the_placing_actor_confirms_with_placed_by(stocked):
    hold("o-1", actor="client:shop")
    with pytest.raises(errors.ReservationNotFound):
        services.reservation_confirm(order_id="o-1", actor="client:b", placed_by="client:b")
    services.reservation_confirm(order_id="o-1", actor="client:shop", placed_by="client:shop")
    with pytest.raises(errors.ReservationNotFound):
        services.reservation_confirm(order_id="nope", actor="client:shop")


@pytest.mark.parametrize("expires_in", [0, -1, 30 * 24 * 3600 + 1, 1.5, True, "60"])
def test_a_bad_expires_in_is_refused(stocked, expires_in):
    hold("o-1")
    with pytest.raises(errors.InvalidInput):
        services.reservation_confirm(order_id="o-1", actor="c", expires_in=expires_in)
    assert Reservation.objects.get().confirmed_at is None


def test_a_confirmation_publishes_the_holds_new_expiry_after_commit(
    stocked, django_capture_on_commit_callbacks
):
    seen = []
    services.HOLD_CHANGE_LISTENERS.append(seen.extend)
    try:
        before = hold("o-1", quantity=3, seconds=60).expires_at
        with django_capture_on_commit_callbacks(execute=True):
            services.reservation_confirm(order_id="o-1", actor="client:psp")
            assert seen == []  # not before commit
        with django_capture_on_commit_callbacks(execute=True):
            services.reservation_confirm(order_id="o-1", actor="client:psp")  # unchanged
    finally:
        services.HOLD_CHANGE_LISTENERS.remove(seen.extend)
    assert seen == [services.HoldChange("o-1", None, before, (("TSHIRT-M", "BER", 3),))]


def test_a_batch_confirms_each_order_on_its_own(stocked):
    hold("a", seconds=60)
    hold("b", seconds=60)
    hold("gone", seconds=60)
    services.reservation_release(order_id="gone", actor="c")
    hold("late", seconds=5)
    hold("theirs", seconds=60, actor="client:other")
    clock.advance(10)
    before = clock.now()

    outcomes = services.reservations_confirm_batch(
        orders=[
            ConfirmRequest("a"),
            ConfirmRequest("b", expires_in=300),
            ConfirmRequest("gone"),
            ConfirmRequest("late"),
            ConfirmRequest("theirs"),
            ConfirmRequest("nope"),
        ],
        actor="client:shop",
        placed_by="client:shop",
    )

    summary = [
        (o.order_id, o.error.code if o.error else None, o.error.details if o.error else None)
        for o in outcomes
    ]
    assert summary == [
        ("a", None, None),
        ("b", None, None),
        ("gone", "order_closed", {"order_id": "gone", "status": "released"}),
        ("late", "order_closed", {"order_id": "late", "status": "expired"}),
        ("theirs", "not_found", {"order_id": "theirs"}),
        ("nope", "not_found", {"order_id": "nope"}),
    ]
    stored = {r.order_id: r for r in Reservation.objects.all()}
    assert stored["a"].expires_at is None
    assert before <= stored["a"].confirmed_at == stored["b"].confirmed_at <= clock.now()
    assert stored["b"].expires_at == stored["b"].confirmed_at + timedelta(seconds=300)
    assert stored["late"].status == "expired"
    assert stored["theirs"].confirmed_at is None
    assert balances() == (10, 6)  # a, b, theirs; late expired, gone released


@pytest.mark.parametrize(
    "orders",
    [
        [],
        [ConfirmRequest("a"), ConfirmRequest("a")],
        [ConfirmRequest("a"), ConfirmRequest("b", expires_in=0)],
        [ConfirmRequest("a/b")],
    ],
)
def test_a_bad_batch_changes_nothing(stocked, orders):
    hold("a")
    hold("b")
    with pytest.raises(errors.InvalidInput):
        services.reservations_confirm_batch(orders=orders, actor="c")
    assert not Reservation.objects.filter(confirmed_at__isnull=False).exists()


def test_the_batch_size_follows_the_setting(stocked, settings):
    settings.STOCKROOM_MAX_BATCH_ORDERS = 2
    with pytest.raises(errors.InvalidInput):
        services.reservations_confirm_batch(
            orders=[ConfirmRequest(str(i)) for i in range(3)], actor="c"
        )


@pytest.mark.django_db(transaction=True)
def test_confirm_racing_a_release_of_the_same_order_is_serialised(product, warehouse):
    """Each order's confirmation and cancellation start together (a barrier): the
    release always succeeds (a confirmed hold can still be cancelled); the
    confirmation either came first or answers order_closed `released`. The order
    ends released, its units back, every invariant intact."""
    receive(product.sku, "BER", 40)
    orders = [f"o-{i}" for i in range(12)]
    for order_id in orders:
        hold(order_id, quantity=2, seconds=600)
    results: dict[tuple[str, str], str] = {}
    failures = []

    def run(kind, order_id, barrier):
        try:
            barrier.wait(10)
            if kind == "confirm":
                services.reservation_confirm(order_id=order_id, actor="client:psp")
            else:
                services.reservation_release(order_id=order_id, actor="client:shop")
            results[(kind, order_id)] = "ok"
        except errors.InventoryError as exc:
            results[(kind, order_id)] = exc.details.get("status", exc.code)
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)
        finally:
            connections.close_all()

    for order_id in orders:
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=run, args=(kind, order_id, barrier))
            for kind in ("confirm", "release")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    assert failures == []
    stored = {r.order_id: r for r in Reservation.objects.all()}
    for order_id in orders:
        assert results[("release", order_id)] == "ok"
        assert results[("confirm", order_id)] in {"ok", "released"}
        assert stored[order_id].status == "released"
        confirmed = results[("confirm", order_id)] == "ok"
        assert (stored[order_id].confirmed_at is not None) == confirmed
    assert balances() == (40, 0)
    assert_invariants()


@pytest.mark.django_db(transaction=True)
def test_a_lapsed_hold_whose_rows_are_busy_is_still_answered_closed_in_a_batch(product, warehouse):
    """The batch's confirmations commit; a lapsed hold whose stock row stays locked
    past lock_timeout is left to the sweeper and answered order_closed `expired`
    (lapsed, it is closed either way), not a 503 for the whole batch."""
    from django.db import connection, transaction

    from ..factories import ProductFactory

    ProductFactory(sku="MUG")
    receive(product.sku, "BER", 10)
    receive("MUG", "BER", 10)
    hold("paid", seconds=600)
    services.stock_reserve(
        order_id="late",
        lines=[ReserveLine("MUG", "BER", 1)],
        actor="client:shop",
        expires_at=clock.now() + timedelta(seconds=5),
    )
    clock.advance(10)
    locked, done = threading.Event(), threading.Event()

    def hold_mug_row():
        try:
            with transaction.atomic():
                list(Inventory.objects.select_for_update().filter(product__sku="MUG").values("id"))
                locked.set()
                done.wait(30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_mug_row)
    holder.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        outcomes = services.reservations_confirm_batch(
            orders=[ConfirmRequest("paid"), ConfirmRequest("late")], actor="client:shop"
        )
    finally:
        done.set()
        holder.join(30)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")

    assert outcomes[0].error is None
    assert outcomes[1].error.details == {"order_id": "late", "status": "expired"}
    stored = {r.order_id: r for r in Reservation.objects.all()}
    assert stored["paid"].expires_at is None
    assert stored["late"].status == "active"  # the sweeper's, later
    assert services.reservations_expire(now=clock.now()) == 1
    assert_invariants()
