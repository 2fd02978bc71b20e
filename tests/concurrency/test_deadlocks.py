"""No deadlock reaches a user.

1. A real deadlock, forced deterministically, is retried by the service that
   owns the transaction (a purchase-order receipt) and the retry succeeds.
2. When retries run out, the service raises StockBusy ("nothing was applied"),
   the API answers 503 `stock_busy` with Retry-After, and the admin page shows a
   message (never a 500).

How the deadlock is forced, with three sessions and no timing assumptions:
T0 holds the PO row; the receipt S queues behind it; T locks S's second
inventory row and then queues for the PO row behind S; T0 commits. S now holds
the PO row and, after its first inventory row, waits for T's row, while T waits
for S's PO row: a cycle that S closes. T's `deadlock_timeout` is long, so S's
deadlock check (1 s after S starts waiting) is the one that finds it: S gets
40P01, every time.
"""

from __future__ import annotations

import logging
import threading

import pytest
from django.contrib.messages import get_messages
from django.db import connection, transaction
from django.urls import reverse

from inventory import errors
from inventory.models import Inventory, InventoryTransaction
from purchasing import services as purchasing
from purchasing.models import PurchaseOrder, PurchaseOrderReceipt
from tests.api.conftest import make_caller
from tests.conftest import assert_invariants, receive
from tests.purchasing.conftest import purchase_order
from tests.purchasing.factories import SupplierFactory

from .helpers import Session, blocked_by, wait_event, wait_until, waiting_for_a_lock

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reserve_engine(settings):
    """Overrides the package's two-engine parametrisation (no reservations here)."""
    return settings.STOCKROOM_RESERVE_ENGINE


@pytest.fixture
def po():
    order = purchase_order(SupplierFactory(name="Acme"), "BER", {"X": 5, "Y": 7})
    receive("X", "BER", 1)
    receive("Y", "BER", 1)
    return order


def force_one_deadlock(po: PurchaseOrder, call) -> Session:
    """Run `call` (a receipt of `po`) so that its first attempt deadlocks; returns its session."""
    second = Inventory.objects.filter(product__sku__in=["X", "Y"]).order_by("-pk").first()
    t0_locked, release_t0 = threading.Event(), threading.Event()
    t_locked, t_go, t_got_po, release_t = (threading.Event() for _ in range(4))

    def hold_po():
        with transaction.atomic():
            PurchaseOrder.objects.select_for_update().get(pk=po.pk)
            t0_locked.set()
            assert release_t0.wait(120)

    def hold_row_then_want_po():
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL deadlock_timeout = '10min'")  # S detects it, not T
            Inventory.objects.select_for_update().get(pk=second.pk)
            t_locked.set()
            assert t_go.wait(120)
            PurchaseOrder.objects.select_for_update().get(pk=po.pk)
            t_got_po.set()  # only once S's attempt was rolled back
            assert release_t.wait(120)

    t0 = Session(hold_po, "T0").begin()
    wait_event(t0_locked, t0, "T0 holds the PO row")
    s = Session(call, "receipt").begin()
    wait_until(lambda: blocked_by(s.pid, t0.pid), "the receipt queues for the PO row")
    t = Session(hold_row_then_want_po, "T").begin()
    wait_event(t_locked, t, "T holds the receipt's second inventory row")
    t_go.set()
    wait_until(lambda: waiting_for_a_lock(t.pid), "T queues for the PO row behind the receipt")
    release_t0.set()
    t0.finish()
    wait_event(t_got_po, t, "the receipt's deadlocked attempt is rolled back")
    release_t.set()
    t.finish()
    s.finish()
    assert t0.error is None and t.error is None, (t0.error, t.error)
    return s


def test_a_deadlocked_receipt_is_retried_and_succeeds(po, caplog):
    caplog.set_level(logging.INFO, logger="inventory.services.stock")

    s = force_one_deadlock(
        po, lambda: purchasing.purchase_order_receive(purchase_order=po.number, actor="u")
    )

    assert s.error is None, s.error
    assert not s.result.replayed
    assert any("deadlock, retry 1 of 3" in r.getMessage() for r in caplog.records)
    on_hand = dict(Inventory.objects.values_list("product__sku", "on_hand"))
    assert on_hand == {"X": 6, "Y": 8}
    assert InventoryTransaction.objects.filter(reference_id=po.number).count() == 2
    assert PurchaseOrderReceipt.objects.count() == 1
    assert_invariants()


def test_retries_run_out_stock_busy_and_nothing_applied(po, settings):
    settings.STOCKROOM_BUSY_RETRIES = 0

    s = force_one_deadlock(
        po, lambda: purchasing.purchase_order_receive(purchase_order=po.number, actor="u")
    )

    assert isinstance(s.error, errors.StockBusy), s.error
    assert s.error.details == {"reason": "deadlock", "applied": False}
    assert "nothing was applied" in s.error.message
    assert dict(Inventory.objects.values_list("product__sku", "on_hand")) == {"X": 1, "Y": 1}
    assert PurchaseOrderReceipt.objects.count() == 0
    assert_invariants()


def test_retries_run_out_api_answers_503_stock_busy_with_retry_after(po, settings):
    settings.STOCKROOM_BUSY_RETRIES = 0
    client = make_caller("wms", "operations")

    s = force_one_deadlock(
        po,
        lambda: client.post(
            f"/api/v1/purchase-orders/{po.number}/receive/", {"receipt_id": "DN-1"}
        ),
    )

    assert s.error is None, s.error
    response = s.result
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    error = response.json()["error"]
    assert error["code"] == "stock_busy"
    assert "nothing was applied" in error["message"]
    assert error["details"] == {"reason": "deadlock", "applied": False}
    assert PurchaseOrderReceipt.objects.count() == 0
    # The client's retry, as told, books it.
    again = client.post(f"/api/v1/purchase-orders/{po.number}/receive/", {"receipt_id": "DN-1"})
    assert again.status_code == 201
    assert_invariants()


def test_retries_run_out_admin_receive_page_shows_a_message(po, settings, admin_client):
    settings.STOCKROOM_BUSY_RETRIES = 0
    x, y = po.lines.order_by("id")
    url = reverse("admin:purchasing_purchaseorder_receive", args=[po.pk])
    data = {"receipt_id": "admin-1", f"line_{x.pk}": "5", f"line_{y.pk}": "7", "reason": ""}

    s = force_one_deadlock(po, lambda: admin_client.post(url, data))

    assert s.error is None, s.error
    response = s.result
    assert response.status_code == 200  # the form again, with the message
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("nothing was applied" in t for t in texts), texts
    assert PurchaseOrderReceipt.objects.count() == 0
    assert dict(Inventory.objects.values_list("product__sku", "on_hand")) == {"X": 1, "Y": 1}
