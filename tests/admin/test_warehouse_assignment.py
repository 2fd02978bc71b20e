"""Staff limited to the warehouses they work at (`backoffice.StaffWarehouse`).

A user assigned to some warehouses counts, receives, transfers out of and books
deliveries into only those; a user assigned to none, and every superuser, acts
everywhere. Every refusal changes nothing.
"""

import uuid

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from backoffice.models import StaffWarehouse
from backoffice.roles import INVENTORY_MANAGER
from inventory.models import InventoryTransaction, Product
from purchasing.models import PurchaseOrderStatus
from tests.purchasing.conftest import purchase_order
from tests.purchasing.factories import SupplierFactory

from ..factories import StaffUserFactory, WarehouseFactory
from .conftest import message_texts, on_hand
from .test_cycle_count import URL as COUNT_URL
from .test_cycle_count import count_form
from .test_receive import URL as RECEIVE_URL
from .test_receive import receive_form
from .test_transfer import URL as TRANSFER_URL
from .test_transfer import transfer_form


@pytest.fixture
def at_berlin(staff_user, warehouse):
    """Wanda (warehouse staff) works at BER only."""
    StaffWarehouse.objects.create(user=staff_user, warehouse=warehouse)
    return staff_user


def offered(response, field: str) -> list[str]:
    return [w.code for w in response.context["form"].fields[field].queryset]


def ledger_size() -> int:
    return InventoryTransaction.objects.count()


def test_forms_offer_only_the_users_warehouses(staff_client, at_berlin, stocked):
    WarehouseFactory(code="MUC")
    assert offered(staff_client.get(COUNT_URL), "warehouse") == ["BER"]
    assert offered(staff_client.get(RECEIVE_URL), "warehouse") == ["BER"]
    transfer = staff_client.get(TRANSFER_URL)
    assert offered(transfer, "source") == ["BER"]
    assert offered(transfer, "destination") == ["BER", "HAM", "MUC"]  # any active one


def test_an_unassigned_user_acts_in_every_warehouse(staff_client, stocked):
    WarehouseFactory(code="MUC")
    assert offered(staff_client.get(COUNT_URL), "warehouse") == ["BER", "HAM", "MUC"]
    shown = staff_client.post(COUNT_URL, count_form(warehouse="HAM", lines=[("A-1", 4)]))
    assert shown.context["preview"][0]["counted"] == 4


def test_counting_receiving_or_transferring_out_of_another_warehouse_is_refused(
    staff_client, at_berlin, stocked
):
    before = ledger_size()
    count = staff_client.post(COUNT_URL, count_form(warehouse="HAM", lines=[("A-1", 0)]))
    assert "warehouse" in count.context["form"].errors
    receipt = staff_client.post(
        RECEIVE_URL, receive_form(Product.objects.get(sku="A-1"), warehouse="HAM")
    )
    assert "warehouse" in receipt.context["form"].errors
    transfer = staff_client.post(
        TRANSFER_URL, transfer_form(source="HAM", destination="BER", lines=[("A-1", 1)])
    )
    assert "source" in transfer.context["form"].errors
    assert ledger_size() == before
    assert on_hand("A-1", "HAM") == 5


def test_a_transfer_out_of_the_users_warehouse_into_another_is_allowed(
    staff_client, at_berlin, stocked
):
    shown = staff_client.post(
        TRANSFER_URL, transfer_form(source="BER", destination="HAM", lines=[("A-1", 3)])
    )
    payload = shown.context["confirm_form"]["payload"].value()
    response = staff_client.post(TRANSFER_URL, {"step": "confirm", "payload": payload})
    assert response.status_code == 302
    assert (on_hand("A-1", "BER"), on_hand("A-1", "HAM")) == (7, 8)


def test_a_preview_confirmed_after_the_user_was_moved_is_refused(
    staff_client, staff_user, at_berlin, stocked, other_warehouse
):
    shown = staff_client.post(COUNT_URL, count_form(warehouse="BER", lines=[("A-1", 2)]))
    payload = shown.context["confirm_form"]["payload"].value()
    # Meanwhile a manager moves Wanda to Hamburg.
    StaffWarehouse.objects.filter(user=staff_user).update(warehouse=other_warehouse)
    before = ledger_size()

    response = staff_client.post(
        COUNT_URL, {"step": "confirm", "payload": payload, "reason": "weekly count"}
    )

    assert response.status_code == 403
    assert ledger_size() == before
    assert on_hand("A-1", "BER") == 10


def test_superusers_are_never_limited(superuser_client, stocked):
    root = User.objects.get(username="root")
    StaffWarehouse.objects.create(user=root, warehouse=WarehouseFactory(code="MUC"))
    assert offered(superuser_client.get(COUNT_URL), "warehouse") == ["BER", "HAM", "MUC"]


@pytest.fixture
def manager_at_berlin(roles, warehouse):
    milo = StaffUserFactory(username="milo", groups=[INVENTORY_MANAGER])
    StaffWarehouse.objects.create(user=milo, warehouse=warehouse)
    client = Client()
    client.force_login(milo)
    return client


def test_purchase_order_deliveries_only_into_the_users_warehouses(manager_at_berlin, warehouse):
    supplier = SupplierFactory(name="Acme")
    to_hamburg = purchase_order(supplier, "HAM", {"MUG": 10})
    to_berlin = purchase_order(supplier, "BER", {"CUP": 4})
    [line] = to_hamburg.lines.all()

    page = reverse("admin:purchasing_purchaseorder_receive", args=[to_hamburg.pk])
    assert manager_at_berlin.get(page).status_code == 403
    refused = manager_at_berlin.post(page, {"receipt_id": "admin-x", f"line_{line.pk}": "10"})
    assert refused.status_code == 403
    assert on_hand("MUG", "HAM") == 0

    changelist = reverse("admin:purchasing_purchaseorder_changelist")
    response = manager_at_berlin.post(
        changelist,
        {"action": "receive_outstanding", "_selected_action": [to_hamburg.pk, to_berlin.pk]},
        follow=True,
    )
    texts = message_texts(response)
    assert any(f"{to_hamburg.number}: " in t and "HAM" in t for t in texts), texts
    to_hamburg.refresh_from_db()
    to_berlin.refresh_from_db()
    assert to_hamburg.status != PurchaseOrderStatus.RECEIVED
    assert on_hand("MUG", "HAM") == 0
    assert to_berlin.status == PurchaseOrderStatus.RECEIVED
    assert on_hand("CUP", "BER") == 4


def test_bulk_receive_is_refused_to_a_limited_user(manager_at_berlin, manager_client):
    url = reverse("admin-bulk-receive")
    assert manager_at_berlin.get(url).status_code == 403
    assert manager_client.get(url).status_code == 200  # mia, a manager assigned to none


def test_managers_assign_warehouses_on_the_user_page(superuser_client, staff_user, warehouse):
    url = reverse("admin:auth_user_change", args=[staff_user.pk])
    page = superuser_client.get(url)
    assert page.status_code == 200
    assert "Works at" in page.content.decode()
    form = page.context["adminform"].form
    data = {
        key: value
        for key, value in form.initial.items()
        if key in ("username", "first_name", "last_name", "email", "is_active", "is_staff")
        and value is not None
    }
    data.update(
        {
            "date_joined_0": "2026-11-01",
            "date_joined_1": "10:00:00",
            "groups": [g.pk for g in staff_user.groups.all()],
            "staff_warehouses-TOTAL_FORMS": "1",
            "staff_warehouses-INITIAL_FORMS": "0",
            "staff_warehouses-MIN_NUM_FORMS": "0",
            "staff_warehouses-MAX_NUM_FORMS": "1000",
            "staff_warehouses-0-warehouse": str(warehouse.pk),
            "_save": "Save",
        }
    )
    response = superuser_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert list(StaffWarehouse.objects.values_list("user__username", "warehouse__code")) == [
        ("wanda", "BER")
    ]


def test_a_limited_user_receives_into_their_own_warehouse(staff_client, at_berlin, stocked):
    """A limited user's receipt into their own warehouse works as before."""
    data = receive_form(Product.objects.get(sku="A-1"), token=str(uuid.uuid4()))
    assert staff_client.post(RECEIVE_URL, data).status_code == 302
    assert on_hand("A-1", "BER") == 22


def test_the_bulk_receive_button_shows_only_to_users_who_may_open_it(
    staff_client, buyer_client, staff_user, warehouse
):
    index = reverse("admin:index")
    bulk = reverse("admin-bulk-receive")
    assert bulk in staff_client.get(index).content.decode()
    assert bulk not in buyer_client.get(index).content.decode()  # no receive_stock
    StaffWarehouse.objects.create(user=staff_user, warehouse=warehouse)
    page = staff_client.get(index).content.decode()
    assert bulk not in page  # limited to BER: the page would refuse them
    assert reverse("admin:backoffice_receive") in page
