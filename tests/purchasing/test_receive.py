"""Receiving purchase orders: ledger rows referencing the PO, line and status updates,
over-receipt refused unless allowed, a repeated receipt applied once."""

import pytest

from inventory import errors as stock_errors
from inventory.models import Inventory, InventoryTransaction, TransactionType
from purchasing import errors, services
from purchasing.models import PurchaseOrderReceipt, PurchaseOrderStatus
from purchasing.services import ReceiptLine
from tests.conftest import assert_invariants

from .conftest import purchase_order

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _ledger_matches_balances(db):
    yield
    assert_invariants()


def on_hand(sku: str, code: str = "BER") -> int:
    row = Inventory.objects.filter(product__sku=sku, warehouse__code=code).first()
    return row.on_hand if row else 0


def lines_of(po) -> dict[str, tuple[int, int, bool]]:
    return {
        line.product.sku: (line.quantity_ordered, line.quantity_received, line.is_open)
        for line in po.lines.select_related("product")
    }


def test_full_receipt_books_every_outstanding_line_and_closes_the_po(supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10, "CUP": 4})

    result = services.purchase_order_receive(purchase_order=po.number, actor="user:clerk")

    assert result.replayed is False
    assert result.purchase_order.status == PurchaseOrderStatus.RECEIVED
    assert result.purchase_order.received_at is not None
    assert (on_hand("MUG"), on_hand("CUP")) == (10, 4)
    assert lines_of(po) == {"MUG": (10, 10, False), "CUP": (4, 4, False)}
    assert len(result.transactions) == 2


def test_ledger_rows_reference_the_purchase_order(supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10})

    services.purchase_order_receive(purchase_order=po, actor="user:clerk", reason="truck 4")

    [txn] = InventoryTransaction.objects.all()
    assert txn.type == TransactionType.RECEIVE
    assert (txn.reference_type, txn.reference_id) == ("purchase_order", po.number)
    assert (txn.on_hand_delta, txn.created_by, txn.reason) == (10, "user:clerk", "truck 4")


def test_partial_receipts_add_up_and_move_the_status(supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10, "CUP": 4})

    first = services.purchase_order_receive(
        purchase_order=po, actor="u", lines=[ReceiptLine("MUG", 6)], receipt_id="d1"
    )
    assert first.purchase_order.status == PurchaseOrderStatus.PARTIALLY_RECEIVED
    assert lines_of(po) == {"MUG": (10, 6, True), "CUP": (4, 0, True)}

    # A second delivery of the same SKU is a new receipt, not a replay.
    services.purchase_order_receive(
        purchase_order=po,
        actor="u",
        lines=[ReceiptLine("MUG", 4), ReceiptLine("CUP", 4)],
        receipt_id="d2",
    )
    po.refresh_from_db()
    assert po.status == PurchaseOrderStatus.RECEIVED
    assert (on_hand("MUG"), on_hand("CUP")) == (10, 4)
    assert InventoryTransaction.objects.filter(reference_id=po.number).count() == 3


def test_over_receipt_is_refused_and_changes_nothing(supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10, "CUP": 4})
    services.purchase_order_receive(
        purchase_order=po, actor="u", lines=[ReceiptLine("MUG", 8)], receipt_id="d1"
    )

    with pytest.raises(errors.OverReceipt) as exc:
        services.purchase_order_receive(
            purchase_order=po,
            actor="u",
            lines=[ReceiptLine("CUP", 4), ReceiptLine("MUG", 3)],
            receipt_id="d2",
        )

    assert exc.value.code == "over_receipt"
    assert exc.value.details["lines"] == [
        {"sku": "MUG", "ordered": 10, "received": 8, "requested": 3}
    ]
    assert (on_hand("MUG"), on_hand("CUP")) == (8, 0)  # CUP was not booked either
    assert lines_of(po) == {"MUG": (10, 8, True), "CUP": (4, 0, True)}
    assert PurchaseOrderReceipt.objects.count() == 1


def test_over_receipt_is_booked_when_explicitly_allowed(supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10})

    result = services.purchase_order_receive(
        purchase_order=po, actor="u", lines=[ReceiptLine("MUG", 12)], allow_over_receipt=True
    )

    assert result.purchase_order.status == PurchaseOrderStatus.RECEIVED
    assert on_hand("MUG") == 12
    assert lines_of(po) == {"MUG": (10, 12, False)}
    assert result.receipt.allow_over_receipt is True


def test_repeating_a_receipt_is_idempotent(supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10})
    kwargs = dict(purchase_order=po, actor="u", lines=[ReceiptLine("MUG", 6)], receipt_id="d1")

    first = services.purchase_order_receive(**kwargs)
    second = services.purchase_order_receive(**kwargs)

    assert second.replayed is True
    assert second.receipt.pk == first.receipt.pk
    assert [t.id for t in second.transactions] == [t.id for t in first.transactions]
    assert on_hand("MUG") == 6
    assert lines_of(po) == {"MUG": (10, 6, True)}
    assert InventoryTransaction.objects.count() == 1


def test_same_receipt_id_with_other_lines_is_a_conflict(supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10})
    services.purchase_order_receive(
        purchase_order=po, actor="u", lines=[ReceiptLine("MUG", 6)], receipt_id="d1"
    )

    with pytest.raises(stock_errors.IdempotencyConflict):
        services.purchase_order_receive(
            purchase_order=po, actor="u", lines=[ReceiptLine("MUG", 2)], receipt_id="d1"
        )
    assert on_hand("MUG") == 6


def test_repeating_a_full_receipt_does_not_over_receive(supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10})
    services.purchase_order_receive(purchase_order=po, actor="u", receipt_id="all")

    again = services.purchase_order_receive(purchase_order=po, actor="u", receipt_id="all")

    assert again.replayed is True
    assert on_hand("MUG") == 10


def test_sku_not_on_the_po_is_refused(supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10})

    with pytest.raises(errors.NotOnPurchaseOrder) as exc:
        services.purchase_order_receive(
            purchase_order=po, actor="u", lines=[ReceiptLine("MUG", 1), ReceiptLine("LAMP", 1)]
        )
    assert exc.value.details["skus"] == ["LAMP"]
    assert on_hand("MUG") == 0


@pytest.mark.parametrize("quantity", [0, -1, 1.5, True, "3"])
def test_invalid_quantities_are_refused(supplier, quantity):
    po = purchase_order(supplier, "BER", {"MUG": 10})
    with pytest.raises(stock_errors.InvalidQuantity):
        services.purchase_order_receive(
            purchase_order=po, actor="u", lines=[ReceiptLine("MUG", quantity)]
        )


def test_cancelled_po_cannot_be_received(supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10})
    services.purchase_order_cancel(purchase_order=po, actor="u")

    with pytest.raises(errors.PurchaseOrderClosed):
        services.purchase_order_receive(purchase_order=po, actor="u")
    assert on_hand("MUG") == 0


def test_receiving_everything_of_a_received_po_is_refused(supplier):
    po = purchase_order(supplier, "BER", {"MUG": 10})
    services.purchase_order_receive(purchase_order=po, actor="u")

    with pytest.raises(errors.PurchaseOrderClosed):
        services.purchase_order_receive(purchase_order=po, actor="u")


def test_unknown_po_number(db):
    with pytest.raises(errors.PurchaseOrderNotFound):
        services.purchase_order_receive(purchase_order="PO-NOPE", actor="u")


def test_a_user_limited_to_other_warehouses_cannot_book_the_delivery(supplier):
    po = purchase_order(supplier, "HAM", {"MUG": 10})

    with pytest.raises(errors.WarehouseNotAllowed) as refused:
        services.purchase_order_receive(purchase_order=po, actor="user:wanda", warehouses={"BER"})

    assert refused.value.http_status == 403
    assert refused.value.details == {"number": po.number, "warehouse": "HAM"}
    assert on_hand("MUG", "HAM") == 0
    assert not PurchaseOrderReceipt.objects.exists()
    # The same call for someone who works there books it.
    services.purchase_order_receive(purchase_order=po, actor="user:hans", warehouses={"HAM"})
    assert on_hand("MUG", "HAM") == 10
