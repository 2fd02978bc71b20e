"""The cycle count page: preview, confirm, and every way it refuses without changing stock."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from inventory import services
from inventory.models import InventoryTransaction, ReferenceType, TransactionType
from inventory.services import ReserveLine

from ..conftest import receive
from .conftest import message_texts, on_hand

URL = reverse("admin:backoffice_cycle_count")


def count_form(warehouse="BER", lines=(), paste="", **extra):
    data = {
        "step": "preview",
        "warehouse": warehouse,
        "lines-TOTAL_FORMS": str(max(len(lines), 1)),
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        "paste": paste,
        **extra,
    }
    for i, (sku, counted) in enumerate(lines):
        data[f"lines-{i}-sku"] = sku
        data[f"lines-{i}-quantity"] = str(counted)
    return data


def preview(client, **kwargs):
    response = client.post(URL, count_form(**kwargs))
    assert response.status_code == 200
    return response


def confirm(client, preview_response, reason="weekly count"):
    payload = preview_response.context["confirm_form"]["payload"].value()
    return client.post(URL, {"step": "confirm", "payload": payload, "reason": reason})


def adjustments():
    return InventoryTransaction.objects.filter(type=TransactionType.ADJUST)


def test_preview_shows_on_hand_counted_and_difference(staff_client, stocked):
    response = preview(staff_client, lines=[("A-1", 7), ("B-2", 20)], paste="C-3,35")

    rows = {row["sku"]: row for row in response.context["preview"]}
    assert (rows["A-1"]["on_hand"], rows["A-1"]["counted"], rows["A-1"]["difference"]) == (
        10,
        7,
        -3,
    )
    assert rows["B-2"]["difference"] == 0
    assert rows["C-3"]["difference"] == 5
    assert response.context["changes"] == 2
    assert b"Confirm count" in response.content
    assert not adjustments().exists()  # a preview changes nothing


def test_confirm_writes_one_adjust_per_difference_by_the_staff_user(staff_client, stocked):
    response = confirm(
        staff_client, preview(staff_client, lines=[("A-1", 7), ("B-2", 20), ("C-3", 35)])
    )

    assert response.status_code == 302
    rows = list(adjustments().order_by("product__sku"))
    assert [(t.product.sku, t.on_hand_delta, t.on_hand_after) for t in rows] == [
        ("A-1", -3, 7),
        ("C-3", 5, 35),
    ]
    assert {t.created_by for t in rows} == {"user:wanda"}
    assert {t.reason for t in rows} == {"weekly count"}
    assert {t.reference_type for t in rows} == {ReferenceType.CYCLE_COUNT}
    assert len({t.reference_id for t in rows}) == 1
    assert (on_hand("A-1", "BER"), on_hand("B-2", "BER"), on_hand("C-3", "BER")) == (7, 20, 35)
    # The redirect goes to the ledger, filtered to this count.
    assert f"reference_id={rows[0].reference_id}" in response["Location"]
    ledger = staff_client.get(response["Location"])
    assert ledger.status_code == 200
    assert ledger.context["cl"].result_count == 2


def test_confirming_the_same_preview_twice_adjusts_once(staff_client, stocked):
    shown = preview(staff_client, lines=[("A-1", 4)])
    confirm(staff_client, shown)
    again = confirm(staff_client, shown)

    assert again.status_code == 302
    assert adjustments().count() == 1
    assert on_hand("A-1", "BER") == 4
    assert any("already saved" in m for m in message_texts(again))


def test_stock_moved_between_preview_and_confirm_changes_nothing(staff_client, stocked):
    shown = preview(staff_client, lines=[("A-1", 7), ("B-2", 18)])
    receive("B-2", "BER", 4)  # a delivery lands while the counter is at the screen

    response = confirm(staff_client, shown)

    assert response.status_code == 200
    assert not adjustments().exists()  # all or nothing: A-1 was not adjusted either
    assert (on_hand("A-1", "BER"), on_hand("B-2", "BER")) == (10, 24)
    texts = message_texts(response)
    assert any("now 24" in m and "B-2" in m for m in texts)
    assert any("nothing was saved" in m for m in texts)
    # The fresh preview shows the new on hand, ready to confirm again.
    rows = {row["sku"]: row for row in response.context["preview"]}
    assert (rows["B-2"]["on_hand"], rows["B-2"]["difference"]) == (24, -6)
    confirm(staff_client, response)
    assert (on_hand("A-1", "BER"), on_hand("B-2", "BER")) == (7, 18)


def test_a_refused_line_rolls_back_the_whole_count(staff_client, stocked):
    shown = preview(staff_client, lines=[("A-1", 2), ("C-3", 25)])
    # Orders reserve 28 of C-3 after the preview: 25 is now below what orders hold.
    services.stock_reserve(order_id="o-1", lines=[ReserveLine("C-3", "BER", 28)], actor="c")

    response = confirm(staff_client, shown)

    assert not adjustments().exists()
    assert (on_hand("A-1", "BER"), on_hand("C-3", "BER")) == (10, 30)
    assert any("reserved by open orders" in m for m in message_texts(response))


def test_csv_upload_and_header_line(staff_client, stocked):
    upload = SimpleUploadedFile("count.csv", b"sku,counted\nA-1,9\nB-2,21\n", "text/csv")
    response = staff_client.post(URL, {**count_form(), "upload": upload})

    assert [(r["sku"], r["difference"]) for r in response.context["preview"]] == [
        ("A-1", -1),
        ("B-2", 1),
    ]


def test_counting_a_sku_with_no_row_in_the_warehouse_creates_it(staff_client, stocked):
    confirm(staff_client, preview(staff_client, warehouse="HAM", lines=[("B-2", 3)]))
    assert on_hand("B-2", "HAM") == 3


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"lines": [("NOPE-1", 3)]}, "Unknown SKU: NOPE-1."),
        ({"lines": [("A-1", -1)]}, "greater than or equal to 0"),
        ({"paste": "A-1,-4"}, "must be at least 0"),
        ({"paste": "A-1,lots\nB-2,3"}, "is not a whole number"),
        ({"lines": [("A-1", 3)], "paste": "A-1,4"}, "A-1 is listed twice"),
        ({"lines": []}, "Enter at least one SKU."),
        ({"lines": [("A-1", 10_000_001)]}, "more than the maximum"),
        ({"lines": [("A-1", 3)], "warehouse": "NOWHERE"}, None),
    ],
)
def test_bad_input_shows_an_error_and_changes_nothing(staff_client, stocked, kwargs, expected):
    response = preview(staff_client, **kwargs)

    assert "preview" not in response.context  # no preview, no confirm button
    assert b"Confirm count" not in response.content
    if expected is None:
        assert response.context["form"].errors["warehouse"]
    else:
        assert any(expected in m for m in message_texts(response)), message_texts(response)
    assert not adjustments().exists()
    assert on_hand("A-1", "BER") == 10


def test_count_below_reserved_is_refused_at_preview(staff_client, stocked):
    services.stock_reserve(order_id="o-2", lines=[ReserveLine("A-1", "BER", 6)], actor="c")
    response = preview(staff_client, lines=[("A-1", 5)])

    assert any("6 units are reserved" in m for m in message_texts(response))
    assert "preview" not in response.context


def test_confirm_needs_a_reason(staff_client, stocked):
    shown = preview(staff_client, lines=[("A-1", 4)])
    response = confirm(staff_client, shown, reason="  ")

    assert response.status_code == 200
    assert any("reason" in m for m in message_texts(response))
    assert response.context["preview"][0]["on_hand"] == 10
    assert not adjustments().exists()


def test_a_tampered_preview_is_refused(staff_client, stocked):
    response = staff_client.post(
        URL, {"step": "confirm", "payload": "forged:payload", "reason": "x"}
    )
    assert response.status_code == 302
    assert not adjustments().exists()
