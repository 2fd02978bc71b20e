"""Rough edges of issue 19: styled 403/404 with a way back, bulk upload with a preview
step and exact wording."""

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from .conftest import message_texts, on_hand

BULK = reverse("admin-bulk-receive")


def upload(text):
    return SimpleUploadedFile("delivery.csv", text.encode(), content_type="text/csv")


def test_403_and_404_are_styled_with_a_way_back(no_role_client, manager_client, settings):
    settings.DEBUG = False
    refused = no_role_client.get(reverse("admin:backoffice_cycle_count"))
    assert refused.status_code == 403
    for response in (
        refused,
        manager_client.get("/admin/purchasing/purchaseorder/999999/receive/"),
    ):
        text = response.content.decode()
        assert "admin/css/base.css" in text
        assert "Back to the start page" in text
    assert manager_client.get("/admin/purchasing/purchaseorder/999999/receive/").status_code == 404


def test_bulk_upload_previews_then_applies_exactly_that_file(superuser_client, stocked):
    data = {"step": "preview", "reference": "DN-1", "reference_type": "import"}
    preview = superuser_client.post(
        BULK, {**data, "file": upload("sku,warehouse,quantity\nA-1,BER,5\nB-2,BER,1\n")}
    )
    assert on_hand("A-1", "BER") == 10  # nothing applied by the preview
    assert any("2 rows would be applied" in text for text in message_texts(preview))
    token = preview.context["confirm_token"]
    assert token

    done = superuser_client.post(BULK, {"step": "confirm", "token": token})

    assert (on_hand("A-1", "BER"), on_hand("B-2", "BER")) == (15, 21)
    assert any("2 applied" in text for text in message_texts(done))
    stale = superuser_client.post(BULK, {"step": "confirm", "token": token})  # file gone
    assert stale.status_code == 302
    assert on_hand("A-1", "BER") == 15


def test_bulk_wording_says_how_many_rows_were_applied_never_good_rows(superuser_client, stocked):
    data = {"reference": "DN-2", "reference_type": "import", "skip_invalid": "on"}
    none = superuser_client.post(
        BULK, {**data, "file": upload("sku,warehouse,quantity\nNOPE,BER,1\n")}
    )
    texts = message_texts(none)
    assert any(text.startswith("No rows applied") for text in texts), texts
    assert not any("Good rows applied" in text for text in texts)
    some = superuser_client.post(
        BULK,
        {
            **data,
            "reference": "DN-3",
            "file": upload("sku,warehouse,quantity\nA-1,BER,1\nNOPE,BER,1\n"),
        },
    )
    assert any(text.startswith("1 rows applied") for text in message_texts(some))
