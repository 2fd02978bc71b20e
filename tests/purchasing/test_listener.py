"""The reorder trigger: committed FULFILL, ADJUST and TRANSFER changes queue a check
for their rows.

Celery runs tasks inline here (the test settings), so a queued check runs at once.
"""

import logging

import pytest
from django.db import transaction

from inventory import services as stock
from inventory.services import COMMITTED_CHANGE_LISTENERS, ReserveLine
from purchasing.listeners import enqueue_reorder_checks
from purchasing.models import PurchaseOrderLine

from .conftest import stocked_row

pytestmark = pytest.mark.django_db


def test_listener_is_registered_once():
    assert COMMITTED_CHANGE_LISTENERS.count(enqueue_reorder_checks) == 1


def test_fulfilment_below_threshold_orders_after_commit(
    supplier, django_capture_on_commit_callbacks
):
    stocked_row("MUG", "BER", on_hand=12, threshold=10, supplier=supplier)
    stock.stock_reserve(order_id="o-1", lines=[ReserveLine("MUG", "BER", 5)], actor="c")
    assert not PurchaseOrderLine.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        stock.reservation_fulfill(order_id="o-1", actor="c")

    [line] = PurchaseOrderLine.objects.all()
    assert (line.product.sku, line.warehouse.code, line.quantity_ordered) == ("MUG", "BER", 50)


def test_adjustment_below_threshold_orders(supplier, django_capture_on_commit_callbacks):
    stocked_row("MUG", "BER", on_hand=12, threshold=10, supplier=supplier)

    with django_capture_on_commit_callbacks(execute=True):
        stock.stock_adjust(sku="MUG", warehouse="BER", counted=3, reason="count", actor="u")

    assert PurchaseOrderLine.objects.count() == 1


def test_transfer_out_below_threshold_orders_for_the_source_only(
    supplier, django_capture_on_commit_callbacks
):
    stocked_row("MUG", "BER", on_hand=12, threshold=10, supplier=supplier)
    stocked_row("MUG", "HAM", on_hand=0, threshold=10, supplier=supplier)

    with django_capture_on_commit_callbacks(execute=True):
        stock.stock_transfer(
            source="BER",
            destination="HAM",
            lines=[stock.TransferLine("MUG", 11)],
            actor="u",
        )

    # BER fell to 1 (below 10): ordered. HAM rose to 11: nothing to order.
    [line] = PurchaseOrderLine.objects.all()
    assert (line.warehouse.code, line.quantity_ordered) == ("BER", 50)


def test_receive_and_reserve_do_not_trigger_checks(supplier, django_capture_on_commit_callbacks):
    row = stocked_row("MUG", "BER", on_hand=0, threshold=10, supplier=supplier)

    with django_capture_on_commit_callbacks(execute=True):
        stock.stock_receive(sku="MUG", warehouse="BER", quantity=2, actor="u")
        stock.stock_reserve(order_id="o-1", lines=[ReserveLine("MUG", "BER", 1)], actor="c")

    row.refresh_from_db()
    assert row.on_hand == 2  # below threshold, but neither change is a trigger
    assert not PurchaseOrderLine.objects.exists()


def test_rolled_back_change_queues_nothing(supplier, django_capture_on_commit_callbacks):
    stocked_row("MUG", "BER", on_hand=12, threshold=10, supplier=supplier)

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        stock.stock_adjust(sku="MUG", warehouse="BER", counted=3, reason="count", actor="u")
        raise RuntimeError("abort")

    assert callbacks == []
    assert not PurchaseOrderLine.objects.exists()


def test_a_failing_check_never_reaches_the_stock_caller(
    supplier, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    stocked_row("MUG", "BER", on_hand=12, threshold=10, supplier=supplier)

    def broken(**kwargs):
        raise ConnectionError("broker gone")

    from purchasing.tasks import reorder_check_task

    monkeypatch.setattr(reorder_check_task, "apply_async", broken)
    with (
        caplog.at_level(logging.WARNING, logger="purchasing.listeners"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        result = stock.stock_adjust(
            sku="MUG", warehouse="BER", counted=3, reason="count", actor="u"
        )

    assert result.transactions[0].on_hand_after == 3
    assert "daily reorder batch will catch it" in caplog.text
