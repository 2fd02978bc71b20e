"""The admin's bulk receive page: same service, staff only, with permission."""

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile

from .conftest import on_hand, stock_snapshot

pytestmark = pytest.mark.django_db
URL = "/admin/bulk-receive/"


def upload(text: str, name: str = "container.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


@pytest.fixture
def staff(client):
    user = User.objects.create_user("clerk", password="pw", is_staff=True)
    # A file may name any warehouse: the page needs "act in all warehouses" too.
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="backoffice",
            codename__in=["receive_stock", "act_in_all_warehouses"],
        )
    )
    client.force_login(user)
    return user


def test_anonymous_users_are_sent_to_the_login(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_without_the_permission_are_refused(client, db):
    client.force_login(User.objects.create_user("nobody", password="pw", is_staff=True))
    assert client.get(URL).status_code == 403


def test_upload_receives_stock_as_the_signed_in_user(client, staff, catalogue):
    assert client.get(URL).status_code == 200
    response = client.post(
        URL,
        {"file": upload("sku,warehouse,quantity\nSKU-A,BER,5\n"), "reference": "DN-7",
         "reference_type": "import"},
    )  # fmt: skip
    assert response.status_code == 200
    assert b"Received." in response.content
    assert on_hand("SKU-A", "BER") == 5
    from inventory.models import InventoryTransaction

    assert InventoryTransaction.objects.get().created_by == "user:clerk"


def test_bad_rows_are_listed_and_nothing_is_applied(client, staff, catalogue):
    before = stock_snapshot()
    response = client.post(
        URL,
        {"file": upload("sku,warehouse,quantity\nSKU-A,BER,5\nNOPE,BER,1\n"),
         "reference": "DN-7", "reference_type": "import"},
    )  # fmt: skip
    content = response.content.decode()
    assert "Nothing applied" in content and "unknown SKU NOPE" in content
    assert stock_snapshot() == before


def test_a_file_without_header_is_refused_with_a_message(client, staff, catalogue):
    response = client.post(
        URL, {"file": upload("SKU-A,BER,5\n"), "reference": "R", "reference_type": "import"}
    )
    assert "must be a header" in response.content.decode()
    assert on_hand("SKU-A", "BER") is None
