import pytest

from inventory import errors, services
from inventory.models import (
    Inventory,
    InventoryTransaction,
    Reservation,
    ReservationStatus,
    TransactionType,
)
from inventory.services import OrderLine, ReserveLine

from ..conftest import receive
from ..factories import BackorderProductFactory, ProductFactory

pytestmark = pytest.mark.django_db


def balances(sku="TSHIRT-M", code="BER"):
    r = Inventory.objects.get(product__sku=sku, warehouse__code=code)
    return r.on_hand, r.reserved, r.available


@pytest.fixture
def order(product, warehouse):
    receive(product.sku, warehouse.code, 10)
    return services.stock_reserve(
        order_id="o-1", lines=[ReserveLine(product.sku, "BER", 4)], actor="client:shop"
    ).reservation


def test_release_whole_order_returns_stock_to_available(order):
    result = services.reservation_release(order_id="o-1", actor="client:shop", reason="cancelled")

    assert balances() == (10, 0, 10)
    assert result.reservation.status == ReservationStatus.RELEASED
    [txn] = result.transactions
    assert (txn.type, txn.reserved_delta, txn.reason) == (TransactionType.RELEASE, -4, "cancelled")
    [line] = result.reservation.lines.all()
    assert (line.quantity_released, line.status) == (4, ReservationStatus.RELEASED)


def test_releasing_again_is_order_closed_and_changes_nothing(order):
    services.reservation_release(order_id="o-1", actor="c")
    ledger = InventoryTransaction.objects.count()
    with pytest.raises(errors.OrderClosed) as refused:
        services.reservation_release(order_id="o-1", actor="c")
    assert refused.value.code == "order_closed"
    assert refused.value.http_status == 409
    assert refused.value.details == {"order_id": "o-1", "status": "released"}
    assert InventoryTransaction.objects.count() == ledger
    assert balances() == (10, 0, 10)


def test_partial_release_then_fulfil_the_rest(order):
    services.reservation_release(order_id="o-1", actor="c", lines=[OrderLine("TSHIRT-M", 1)])
    assert balances() == (10, 3, 7)
    result = services.reservation_fulfill(order_id="o-1", actor="c")
    assert balances() == (7, 0, 7)
    assert result.reservation.status == ReservationStatus.FULFILLED
    [txn] = result.transactions
    assert (txn.type, txn.on_hand_delta, txn.reserved_delta) == ("FULFILL", -3, -3)


def test_partial_fulfilment_keeps_the_rest_reserved(order):
    services.reservation_fulfill(order_id="o-1", actor="c", lines=[OrderLine("TSHIRT-M", 1)])
    assert balances() == (9, 3, 6)
    assert Reservation.objects.get().status == ReservationStatus.ACTIVE


def test_partial_release_with_idempotency_key_applies_once(order):
    for _ in range(2):
        services.reservation_release(
            order_id="o-1", actor="c", lines=[OrderLine("TSHIRT-M", 1)], idempotency_key="r1"
        )
    assert balances() == (10, 3, 7)


def test_cannot_release_or_fulfil_more_than_the_order_holds(order):
    with pytest.raises(errors.ExceedsReservation):
        services.reservation_release(order_id="o-1", actor="c", lines=[OrderLine("TSHIRT-M", 5)])
    with pytest.raises(errors.ExceedsReservation):
        services.reservation_fulfill(order_id="o-1", actor="c", lines=[OrderLine("MUG", 1)])
    assert balances() == (10, 4, 6)
    assert InventoryTransaction.objects.filter(type__in=["RELEASE", "FULFILL"]).count() == 0


def test_release_acts_only_on_what_that_order_holds(product, warehouse):
    receive(product.sku, "BER", 10)
    services.stock_reserve(order_id="a", lines=[ReserveLine(product.sku, "BER", 2)], actor="c")
    services.stock_reserve(order_id="b", lines=[ReserveLine(product.sku, "BER", 3)], actor="c")
    services.reservation_release(order_id="a", actor="c")
    assert balances() == (10, 3, 7)
    with pytest.raises(errors.OrderClosed):  # a kind of ExceedsReservation: holds nothing
        services.reservation_release(order_id="a", actor="c", lines=[OrderLine(product.sku, 1)])


def test_unknown_order_is_not_found(db):
    with pytest.raises(errors.ReservationNotFound):
        services.reservation_release(order_id="nope", actor="c")
    with pytest.raises(errors.ReservationNotFound):
        services.reservation_fulfill(order_id="nope", actor="c")


def test_cannot_ship_a_backordered_line_before_stock_arrives(warehouse):
    BackorderProductFactory(sku="BACK", backorder_limit=5)
    receive("BACK", "BER", 1)
    services.stock_reserve(order_id="b", lines=[ReserveLine("BACK", "BER", 3)], actor="c")

    with pytest.raises(errors.InsufficientOnHand):
        services.reservation_fulfill(order_id="b", actor="c")
    assert balances("BACK") == (1, 3, -2)

    services.reservation_fulfill(order_id="b", actor="c", lines=[OrderLine("BACK", 1)])
    assert balances("BACK") == (0, 2, -2)
    receive("BACK", "BER", 2)
    services.reservation_fulfill(order_id="b", actor="c")
    assert balances("BACK") == (0, 0, 0)


def test_a_partial_fulfilment_ships_from_the_line_whose_stock_has_arrived(
    warehouse, other_warehouse
):
    BackorderProductFactory(sku="BACK", backorder_limit=5)
    receive("BACK", "HAM", 5)
    # The backordered BER line comes first in the order.
    services.stock_reserve(
        order_id="b2",
        lines=[ReserveLine("BACK", "BER", 2), ReserveLine("BACK", "HAM", 2)],
        actor="c",
    )

    result = services.reservation_fulfill(order_id="b2", actor="c", lines=[OrderLine("BACK", 2)])

    [shipped] = result.transactions
    assert (shipped.warehouse.code, shipped.on_hand_delta) == ("HAM", -2)
    assert balances("BACK", "HAM") == (3, 0, 3)
    assert balances("BACK", "BER") == (0, 2, -2)


def test_a_partial_fulfilment_by_sku_after_one_line_was_closed(warehouse, other_warehouse):
    BackorderProductFactory(sku="BACK", backorder_limit=5)
    receive("BACK", "BER", 5)
    receive("BACK", "HAM", 5)
    services.stock_reserve(
        order_id="b3",
        lines=[ReserveLine("BACK", "BER", 2), ReserveLine("BACK", "HAM", 2)],
        actor="c",
    )
    services.reservation_fulfill(
        order_id="b3", actor="c", lines=[OrderLine("BACK", 2, "BER")]
    )  # the BER line is closed now

    result = services.reservation_fulfill(order_id="b3", actor="c", lines=[OrderLine("BACK", 1)])

    [shipped] = result.transactions
    assert (shipped.warehouse.code, shipped.on_hand_delta) == ("HAM", -1)
    assert balances("BACK", "HAM") == (4, 1, 3)


def test_multi_warehouse_order_release_by_sku_spans_lines(product, warehouse, other_warehouse):
    receive(product.sku, "BER", 2)
    receive(product.sku, "HAM", 2)
    ProductFactory(sku="MUG")
    services.stock_reserve(
        order_id="m",
        lines=[ReserveLine(product.sku, "BER", 2), ReserveLine(product.sku, "HAM", 2)],
        actor="c",
    )
    services.reservation_release(
        order_id="m", actor="c", lines=[OrderLine(product.sku, 1, warehouse="HAM")]
    )
    assert balances(code="HAM")[1] == 1
    services.reservation_release(order_id="m", actor="c", lines=[OrderLine(product.sku, 3)])
    assert balances(code="BER")[1] == balances(code="HAM")[1] == 0
    assert Reservation.objects.get(order_id="m").status == ReservationStatus.RELEASED


def test_expired_holds_are_released_by_the_sweeper(product, warehouse):
    from datetime import timedelta

    from django.utils import timezone

    receive(product.sku, "BER", 5)
    past = timezone.now() - timedelta(seconds=1)
    future = timezone.now() + timedelta(hours=1)
    services.stock_reserve(
        order_id="old", lines=[ReserveLine(product.sku, "BER", 2)], actor="c", expires_at=past
    )
    services.stock_reserve(
        order_id="new", lines=[ReserveLine(product.sku, "BER", 1)], actor="c", expires_at=future
    )

    assert services.reservations_expire() == 1
    assert services.reservations_expire() == 0
    assert balances() == (5, 1, 4)
    assert Reservation.objects.get(order_id="old").status == ReservationStatus.EXPIRED
    assert Reservation.objects.get(order_id="new").status == ReservationStatus.ACTIVE


@pytest.mark.parametrize("close", ["release", "fulfill"])
def test_a_whole_order_closes_in_one_statement_and_answers_what_it_wrote(
    order, reserve_engine, close, django_assert_max_num_queries
):
    """On PostgreSQL a whole-order release or fulfilment is one statement
    (`stockroom_close_order`); both engines answer with the same lines, status
    and ledger rows as the database then holds."""
    service = getattr(services, f"reservation_{close}")
    with django_assert_max_num_queries(1 if reserve_engine == "sql" else 20):
        result = service(order_id="o-1", actor="client:shop", reason="done")
    stored = Reservation.objects.get(order_id="o-1")
    assert result.reservation.status == stored.status
    assert [
        (line.product.sku, line.warehouse.code, line.quantity_released, line.quantity_fulfilled,
         line.status)
        for line in result.reservation.lines.all()
    ] == [
        (line.product.sku, line.warehouse.code, line.quantity_released, line.quantity_fulfilled,
         line.status)
        for line in stored.lines.select_related("product", "warehouse").order_by("id")
    ]  # fmt: skip
    written = InventoryTransaction.objects.filter(reference_id="o-1").exclude(type="RESERVE")
    assert sorted(str(t.id) for t in result.transactions) == sorted(str(t.id) for t in written)
    assert [(t.on_hand_after, t.reserved_after, t.created_by, t.reason) for t in written] == [
        (t.on_hand_after, t.reserved_after, t.created_by, t.reason) for t in result.transactions
    ]


def test_closing_an_order_with_nothing_open_leaves_its_status_alone(order):
    """A late fulfilment of a cancelled order is refused (it used to answer the
    order as it was, shipping nothing: a warehouse checking the status code
    shipped goods never deducted); a sweep racing the cancel is a no-op."""
    from inventory.actors import SYSTEM_SWEEPER
    from inventory.services.reservation_close import close_order_lines

    services.reservation_release(order_id="o-1", actor="client:shop", reason="cancelled")
    ledger = InventoryTransaction.objects.count()

    with pytest.raises(errors.OrderClosed) as late:
        services.reservation_fulfill(order_id="o-1", actor="system:wms")
    assert late.value.details["status"] == ReservationStatus.RELEASED
    swept = close_order_lines(
        order_id="o-1",
        lines=None,
        actor=SYSTEM_SWEEPER,
        reason="reservation hold expired",
        txn_type=TransactionType.RELEASE,
        closing_status=ReservationStatus.EXPIRED,
        idempotency_key=None,
        placed_by=None,
    )
    assert swept.transactions == []

    assert Reservation.objects.get(order_id="o-1").status == ReservationStatus.RELEASED
    assert InventoryTransaction.objects.count() == ledger
    assert balances() == (10, 0, 10)


@pytest.mark.django_db(transaction=True)
def test_one_busy_order_does_not_stop_the_sweep(product, warehouse):
    import threading
    from datetime import timedelta

    from django.db import connection, connections, transaction
    from django.utils import timezone

    ProductFactory(sku="MUG")
    receive(product.sku, "BER", 10)
    receive("MUG", "BER", 10)
    past = timezone.now() - timedelta(seconds=1)
    for order_id, sku in (("busy", product.sku), ("free", "MUG")):
        services.stock_reserve(
            order_id=order_id, lines=[ReserveLine(sku, "BER", 2)], actor="c", expires_at=past
        )
    Reservation.objects.filter(order_id="busy").update(expires_at=past - timedelta(seconds=5))
    locked, done = threading.Event(), threading.Event()

    def hold_busy_row():
        try:
            with transaction.atomic():
                list(
                    Inventory.objects.select_for_update()
                    .filter(product__sku=product.sku)
                    .values_list("id")
                )
                locked.set()
                done.wait(30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_busy_row)
    holder.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        assert services.reservations_expire() == 1  # "busy" first, skipped; "free" expired
    finally:
        done.set()
        holder.join(30)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")

    statuses = dict(Reservation.objects.values_list("order_id", "status"))
    assert statuses == {"busy": "active", "free": "expired"}
    assert services.reservations_expire() == 1  # the next sweep gets it
