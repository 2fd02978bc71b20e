"""Each event type, emitted by the database triggers through the real services
(both reservation engines), in the same transaction as the change."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import override_settings

from events.models import Event
from inventory import clock, services
from inventory.models import Inventory, InventoryTransaction
from inventory.services import OrderLine, OrderRequest, ReserveLine
from purchasing import services as purchasing
from purchasing.models import PurchaseOrderLine
from tests.conftest import receive
from tests.factories import ProductFactory, WarehouseFactory
from tests.purchasing.factories import PurchaseOrderFactory

from .conftest import events_of

ENGINES = ["sql", "python"]

# Every test here also runs the 0004 emitters beside the live ones and checks that the
# payloads rendered from the typed columns equal the jsonb those built (conftest).
pytestmark = pytest.mark.usefixtures("twin_0004")


@pytest.fixture(params=ENGINES)
def engine(request):
    with override_settings(STOCKROOM_RESERVE_ENGINE=request.param):
        yield request.param


@pytest.fixture
def stocked(db):
    ProductFactory(sku="EV-1")
    ProductFactory(sku="EV-2")
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    receive("EV-1", "BER", 10)
    receive("EV-1", "HAM", 4)
    receive("EV-2", "BER", 3)
    Event.objects.all().delete()  # only the events of the test's own changes


def reserve(order_id, *lines, expires_at=None):
    return services.stock_reserve(
        order_id=order_id,
        lines=[ReserveLine(sku=s, warehouse=w, quantity=q) for s, w, q in lines],
        actor="client:shop",
        expires_at=expires_at,
    )


def test_receive_emits_stock_changed_with_balances_version_and_ledger_id(db):
    ProductFactory(sku="EV-R")
    WarehouseFactory(code="BER")
    result = receive("EV-R", "BER", 7)
    (changed,) = events_of("stock.changed")
    ledger = result.transactions[0]
    row = Inventory.objects.get(product__sku="EV-R")
    assert changed.sku == "EV-R" and changed.warehouse == "BER"
    assert changed.data == {
        "sku": "EV-R",
        "warehouse": "BER",
        "on_hand": 7,
        "reserved": 0,
        "available": 7,
        "backorder_allowance": 0,
        "version": row.version,
        "on_hand_delta": 7,
        "reserved_delta": 0,
        "ledger_ids": [str(ledger.id)],
        "ledger_types": ["RECEIVE"],
        "references": [],
    }
    # First stock: back in stock (from nothing) and availability for the SKU.
    assert [e.type for e in events_of("sku.back_in_stock", "availability.changed")] == [
        "sku.back_in_stock",
        "availability.changed",
    ]
    assert events_of("availability.changed")[0].data["available"] == 7


def test_reserve_emits_created_stock_changed_and_coalesced_availability(stocked, engine):
    reserve("ord-1", ("EV-1", "BER", 2), ("EV-1", "HAM", 1), ("EV-2", "BER", 1))
    created = events_of("reservation.created")
    assert len(created) == 1
    assert created[0].data["order_id"] == "ord-1"
    assert created[0].stream == "order:ord-1"
    assert sorted((x["sku"], x["warehouse"], x["quantity"]) for x in created[0].data["lines"]) == [
        ("EV-1", "BER", 2),
        ("EV-1", "HAM", 1),
        ("EV-2", "BER", 1),
    ]
    changed = events_of("stock.changed")
    assert sorted((e.sku, e.warehouse, e.data["reserved"]) for e in changed) == [
        ("EV-1", "BER", 2),
        ("EV-1", "HAM", 1),
        ("EV-2", "BER", 1),
    ]
    # One per SKU, with the total over warehouses and each warehouse.
    availability = {e.sku: e.data for e in events_of("availability.changed")}
    assert availability["EV-1"]["available"] == 11
    assert {w["warehouse"]: w["available"] for w in availability["EV-1"]["warehouses"]} == {
        "BER": 8,
        "HAM": 3,
    }
    assert availability["EV-2"]["available"] == 2
    # Every ledger row of the reservation is in exactly one stock.changed event.
    ids = [i for e in changed for i in e.data["ledger_ids"]]
    assert sorted(ids) == sorted(
        str(t.id) for t in InventoryTransaction.objects.filter(reference_id="ord-1")
    )


def test_availability_changed_is_one_per_sku_and_transaction(stocked):
    with transaction.atomic():
        receive("EV-1", "BER", 1)
        receive("EV-1", "HAM", 1)
        receive("EV-1", "BER", 1)
    (availability,) = events_of("availability.changed")
    assert availability.data["available"] == 17  # the last state of the transaction
    assert len(events_of("stock.changed")) == 3


def test_out_of_stock_and_back_in_stock_only_on_the_transition(stocked, engine):
    reserve("ord-a", ("EV-2", "BER", 2))
    assert events_of("sku.out_of_stock") == []
    reserve("ord-b", ("EV-2", "BER", 1))  # 3 of 3 reserved: out of stock in BER
    (out,) = events_of("sku.out_of_stock")
    assert (out.sku, out.warehouse, out.data["available"]) == ("EV-2", "BER", 0)
    services.reservation_release(order_id="ord-b", actor="client:shop")
    (back,) = events_of("sku.back_in_stock")
    assert (back.sku, back.warehouse, back.data["available"]) == ("EV-2", "BER", 1)
    receive("EV-2", "BER", 5)  # in stock already: no second back_in_stock
    assert len(events_of("sku.back_in_stock")) == 1


def test_low_stock_on_crossing_the_threshold(stocked, engine):
    row = Inventory.objects.get(product__sku="EV-1", warehouse__code="BER")
    row.reorder_threshold = 6
    row.save(update_fields=["reorder_threshold"])
    reserve("ord-l1", ("EV-1", "BER", 3))  # 10 -> 7: above 6
    assert events_of("sku.low_stock") == []
    reserve("ord-l2", ("EV-1", "BER", 2))  # 7 -> 5: crosses
    (low,) = events_of("sku.low_stock")
    assert low.data == {
        "sku": "EV-1",
        "warehouse": "BER",
        "available": 5,
        "threshold": 6,
        "version": low.data["version"],
    }
    reserve("ord-l3", ("EV-1", "BER", 1))  # 5 -> 4: already low
    assert len(events_of("sku.low_stock")) == 1


def test_release_fulfil_confirm_expire(stocked, engine):
    reserve("ord-r", ("EV-1", "BER", 2))
    services.reservation_release(order_id="ord-r", actor="client:shop")
    reserve("ord-f", ("EV-1", "BER", 2))
    services.reservation_fulfill(
        order_id="ord-f", actor="client:shop", lines=[OrderLine(sku="EV-1", quantity=1)]
    )
    assert events_of("reservation.fulfilled") == []  # partial: still active
    services.reservation_fulfill(order_id="ord-f", actor="client:shop")
    reserve(
        "ord-c",
        ("EV-1", "BER", 1),
        expires_at=clock.now() + timedelta(seconds=60),
    )
    services.reservation_confirm(order_id="ord-c", actor="client:shop")
    reserve(
        "ord-x",
        ("EV-1", "HAM", 1),
        expires_at=clock.now() + timedelta(seconds=30),
    )
    try:
        clock.advance(120)
        assert services.reservations_expire(now=clock.now()) == 1
    finally:
        clock.reset()
    by_type = {e.type: e.data for e in events_of()}
    assert by_type["reservation.released"]["order_id"] == "ord-r"
    assert by_type["reservation.released"]["status"] == "released"
    assert by_type["reservation.fulfilled"]["order_id"] == "ord-f"
    assert by_type["reservation.fulfilled"]["lines"][0]["quantity_fulfilled"] == 2
    assert by_type["reservation.confirmed"]["order_id"] == "ord-c"
    assert by_type["reservation.confirmed"]["confirmed_by"] == "client:shop"
    assert by_type["reservation.expired"]["order_id"] == "ord-x"
    # The release and fulfilment also changed stock: their stock.changed events
    # reference the order.
    refs = [r["id"] for e in events_of("stock.changed") for r in e.data["references"]]
    assert {"ord-r", "ord-f", "ord-x"} <= set(refs)


def test_batch_emits_created_only_for_created_orders(stocked):
    outcomes = services.stock_reserve_batch(
        orders=[
            OrderRequest(order_id="b-1", lines=[ReserveLine("EV-2", "BER", 2)]),
            OrderRequest(order_id="b-2", lines=[ReserveLine("EV-2", "BER", 2)]),  # short
            OrderRequest(order_id="b-3", lines=[ReserveLine("EV-1", "BER", 1)]),
        ],
        actor="client:shop",
    )
    assert [o.error is None for o in outcomes] == [True, False, True]
    assert [e.data["order_id"] for e in events_of("reservation.created")] == ["b-1", "b-3"]
    # One statement for the batch: one stock.changed per stock row.
    assert sorted((e.sku, e.data["reserved_delta"]) for e in events_of("stock.changed")) == [
        ("EV-1", 1),
        ("EV-2", 2),
    ]


def test_purchase_order_created_and_received(db):
    ProductFactory(sku="EV-P")
    warehouse = WarehouseFactory(code="BER")
    po = PurchaseOrderFactory(warehouse=warehouse, number="PO-EV-1")
    PurchaseOrderLine.objects.create(
        purchase_order=po,
        product=ProductFactory(sku="EV-P"),
        warehouse=warehouse,
        quantity_ordered=5,
    )
    PurchaseOrderLine.objects.create(
        purchase_order=po,
        product=ProductFactory(sku="EV-P2"),
        warehouse=warehouse,
        quantity_ordered=2,
    )
    (created,) = events_of("purchase_order.created")
    assert created.data["number"] == "PO-EV-1"
    # Its lines (each line statement of the creating transaction fills them in).
    assert created.data["lines"] == [
        {"sku": "EV-P", "quantity": 5},
        {"sku": "EV-P2", "quantity": 2},
    ]
    assert created.warehouse == "BER"
    purchasing.purchase_order_receive(
        purchase_order="PO-EV-1",
        actor="user:wms",
        receipt_id="r-1",
        lines=[
            purchasing.ReceiptLine(sku="EV-P", quantity=5),
            purchasing.ReceiptLine(sku="EV-P2", quantity=2),
        ],
    )
    (received,) = events_of("purchase_order.received")
    assert received.data["number"] == "PO-EV-1"
    assert received.data["receipt_id"] == "po-receipt:PO-EV-1:r-1"  # the stored key
    assert received.data["lines"] == {"EV-P": 5, "EV-P2": 2}
    assert received.data["status"] == "received"
    assert len(received.data["ledger_ids"]) == 2


def test_request_id_travels_from_the_ledger_to_later_events(stocked):
    from inventory.context import reset_request_id, set_request_id

    token = set_request_id("req-abc")
    try:
        reserve("ord-q", ("EV-1", "BER", 1))
    finally:
        reset_request_id(token)
    assert {e.request_id for e in events_of()} == {"req-abc"}


@pytest.mark.parametrize("batch", [False, True])
def test_confirmed_carries_the_request_id(stocked, batch):
    """A confirm writes no ledger row: the service hands the request id to the
    trigger itself (inventory.context.request_id_to_database)."""
    from inventory.context import reset_request_id, set_request_id

    reserve("ord-rc", ("EV-1", "BER", 1), expires_at=clock.now() + timedelta(seconds=60))
    token = set_request_id("req-confirm")
    try:
        if batch:
            services.reservations_confirm_batch(
                orders=[services.ConfirmRequest(order_id="ord-rc")], actor="client:shop"
            )
        else:
            services.reservation_confirm(order_id="ord-rc", actor="client:shop")
    finally:
        reset_request_id(token)
    (confirmed,) = events_of("reservation.confirmed")
    assert confirmed.request_id == "req-confirm"


@pytest.mark.django_db(transaction=True)
def test_no_event_without_a_committed_change():
    ProductFactory(sku="EV-RB")
    WarehouseFactory(code="BER")
    with pytest.raises(RuntimeError), transaction.atomic():
        receive("EV-RB", "BER", 3)
        assert len(events_of("stock.changed")) == 1  # written with the change...
        raise RuntimeError("roll back")
    assert events_of() == []  # ...and gone with it
    receive("EV-RB", "BER", 3)
    assert len(events_of("stock.changed")) == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM events_event WHERE txid IS NULL")
        assert cursor.fetchone()[0] == 0


def test_a_move_to_damaged_speaks_the_sellable_figure(stocked):
    """Issue 15 meets 14: damaging the last sellable units is an out-of-stock
    transition, and the events carry the sellable `available`, not on hand -
    reserved (events migration 0003)."""
    services.stock_move_state(
        sku="EV-2",
        warehouse="BER",
        from_state="sellable",
        to_state="damaged",
        quantity=3,
        reason="crushed on the shelf",
        actor="user:test",
    )
    (changed,) = events_of("stock.changed")
    assert (changed.data["on_hand"], changed.data["available"]) == (3, 0)
    (out,) = events_of("sku.out_of_stock")
    assert (out.sku, out.warehouse, out.data["available"]) == ("EV-2", "BER", 0)
    (availability,) = events_of("availability.changed")
    assert availability.data["available"] == 0
