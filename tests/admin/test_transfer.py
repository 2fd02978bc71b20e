"""The transfer page: several SKUs move together, or nothing moves and staff see why."""

import pytest
from django.urls import reverse

from inventory import services
from inventory.models import InventoryTransaction, ReferenceType, TransactionType
from inventory.services import ReserveLine

from ..factories import WarehouseFactory
from .conftest import message_texts, on_hand

URL = reverse("admin:backoffice_transfer")


def transfer_form(source="BER", destination="HAM", lines=(), paste="", reason=""):
    data = {
        "step": "preview",
        "source": source,
        "destination": destination,
        "reason": reason,
        "lines-TOTAL_FORMS": str(max(len(lines), 1)),
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        "paste": paste,
    }
    for i, (sku, quantity) in enumerate(lines):
        data[f"lines-{i}-sku"] = sku
        data[f"lines-{i}-quantity"] = str(quantity)
    return data


def preview(client, **kwargs):
    response = client.post(URL, transfer_form(**kwargs))
    assert response.status_code == 200
    return response


def confirm(client, preview_response):
    payload = preview_response.context["confirm_form"]["payload"].value()
    return client.post(URL, {"step": "confirm", "payload": payload})


def transfers():
    return InventoryTransaction.objects.filter(type=TransactionType.TRANSFER)


def test_preview_then_confirm_moves_every_line(staff_client, stocked):
    shown = preview(staff_client, lines=[("A-1", 4), ("B-2", 20)], reason="rebalance")
    rows = {row["sku"]: row for row in shown.context["preview"]}
    assert (rows["A-1"]["source_available"], rows["A-1"]["destination_after"]) == (10, 9)
    assert not transfers().exists()

    response = confirm(staff_client, shown)

    assert response.status_code == 302
    assert (on_hand("A-1", "BER"), on_hand("A-1", "HAM")) == (6, 9)
    assert (on_hand("B-2", "BER"), on_hand("B-2", "HAM")) == (0, 20)
    rows = list(transfers())
    assert len(rows) == 4  # out and in, per SKU
    assert {t.created_by for t in rows} == {"user:wanda"}
    assert {t.reference_type for t in rows} == {ReferenceType.TRANSFER}
    assert len({t.reference_id for t in rows}) == 1
    assert {t.reason for t in rows} == {"rebalance"}
    assert staff_client.get(response["Location"]).context["cl"].result_count == 4


def test_confirming_twice_moves_once(staff_client, stocked):
    shown = preview(staff_client, lines=[("A-1", 4)])
    confirm(staff_client, shown)
    again = confirm(staff_client, shown)

    assert transfers().count() == 2
    assert on_hand("A-1", "BER") == 6
    assert any("already saved" in m for m in message_texts(again))


def test_stock_reserved_between_preview_and_confirm_moves_nothing(staff_client, stocked):
    shown = preview(staff_client, lines=[("A-1", 2), ("C-3", 25)])
    services.stock_reserve(order_id="o-1", lines=[ReserveLine("C-3", "BER", 10)], actor="c")

    response = confirm(staff_client, shown)

    assert not transfers().exists()
    assert (on_hand("A-1", "BER"), on_hand("C-3", "BER")) == (10, 30)
    texts = message_texts(response)
    assert any("Not enough available stock in BER" in m for m in texts), texts
    assert any("C-3 needs 25, 20 available" in m for m in texts), texts


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"destination": "BER", "lines": [("A-1", 1)]}, "must differ"),
        (
            {"lines": [("A-1", 11)]},
            "Not enough available stock in BER: A-1 needs 11, 10 available.",
        ),
        ({"lines": [("NOPE", 1)]}, "Unknown SKU: NOPE."),
        ({"lines": [("A-1", 0)]}, "greater than or equal to 1"),
        ({"lines": [("A-1", -3)]}, "greater than or equal to 1"),
        ({"paste": "A-1,0"}, "must be at least 1"),
        (
            {"source": "HAM", "destination": "BER", "lines": [("B-2", 1)]},
            "B-2 needs 1, 0 available",
        ),
    ],
)
def test_bad_input_shows_an_error_and_moves_nothing(staff_client, stocked, kwargs, expected):
    response = preview(staff_client, **kwargs)

    assert "preview" not in response.context
    assert b"Confirm transfer" not in response.content
    assert any(expected in m for m in message_texts(response)), message_texts(response)
    assert not transfers().exists()
    assert (on_hand("A-1", "BER"), on_hand("A-1", "HAM")) == (10, 5)


def test_inactive_destination_is_not_offered(staff_client, stocked):
    WarehouseFactory(code="OLD", is_active=False)
    response = preview(staff_client, destination="OLD", lines=[("A-1", 1)])

    assert response.context["form"].errors["destination"]
    assert not transfers().exists()


def test_preview_offers_the_sellable_units_the_service_moves(staff_client, stocked):
    """Issue #15: the preview counts what `stock_transfer` lets leave (on hand less
    reserved, safety stock, damaged and quality control), not on hand less reserved."""
    services.inventory_set_reorder(sku="A-1", warehouse="BER", safety_stock=2)
    for to_state in ("damaged", "quality_control"):
        services.stock_move_state(
            sku="A-1", warehouse="BER", from_state="sellable", to_state=to_state,
            quantity=1, reason="found on the shelf", actor="user:wanda",
        )  # fmt: skip
    services.stock_reserve(order_id="o-1", lines=[ReserveLine("A-1", "BER", 1)], actor="c")
    # 10 on hand - 1 reserved - 2 safety stock - 1 damaged - 1 quality control = 5.

    refused = preview(staff_client, lines=[("A-1", 6)])
    assert "preview" not in refused.context
    texts = message_texts(refused)
    assert any("A-1 needs 6, 5 available" in m for m in texts), texts

    shown = preview(staff_client, lines=[("A-1", 5)])
    (row,) = shown.context["preview"]
    assert row["source_available"] == 5
    assert confirm(staff_client, shown).status_code == 302
    assert (on_hand("A-1", "BER"), on_hand("A-1", "HAM")) == (5, 10)
