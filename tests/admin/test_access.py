"""Who may do what: each role allowed and refused, by URL (403) and by what the page shows."""

import pytest
from django.test import Client
from django.urls import reverse

from inventory import services
from inventory.models import Inventory, InventoryTransaction, Product

ROLES = ["staff", "buyer", "manager", "no_role", "superuser"]


@pytest.fixture
def clients(staff_client, buyer_client, manager_client, no_role_client, superuser_client):
    return {
        "staff": staff_client,
        "buyer": buyer_client,
        "manager": manager_client,
        "no_role": no_role_client,
        "superuser": superuser_client,
    }


def status_by_role(clients, url, method="get", data=None):
    return {
        role: getattr(client, method)(url, data or {}).status_code
        for role, client in clients.items()
    }


@pytest.mark.parametrize(
    "url_name, staff",
    [
        ("admin:backoffice_cycle_count", 200),
        ("admin:backoffice_transfer", 200),
        ("admin:backoffice_receive", 200),
        # The CSV bulk receive needs backoffice.receive_stock too: Purchasing holds
        # inventory.change_inventory only for reorder settings and must not receive.
        # And it needs backoffice.act_in_all_warehouses (a file may name any
        # warehouse), which warehouse staff (working at BER and HAM) do not hold.
        ("admin-bulk-receive", 403),
    ],
)
def test_stock_pages_for_warehouse_staff_and_managers_only(clients, stocked, url_name, staff):
    url = reverse(url_name)
    assert status_by_role(clients, url) == {
        "staff": staff,
        "buyer": 403,
        "manager": 200,
        "no_role": 403,
        "superuser": 200,
    }
    # Posting is refused the same way, and changes nothing.
    assert status_by_role(clients, url, "post", {"step": "confirm"})["buyer"] == 403


def test_anonymous_users_are_sent_to_the_login_page(stocked):
    response = Client().get(reverse("admin:backoffice_cycle_count"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_start_page_shows_only_the_actions_a_role_may_take(clients, stocked):
    pages = {role: client.get(reverse("admin:index")) for role, client in clients.items()}
    cycle_count = reverse("admin:backoffice_cycle_count").encode()

    assert {role: cycle_count in page.content for role, page in pages.items()} == {
        "staff": True,
        "buyer": False,
        "manager": True,
        "no_role": False,
        "superuser": True,
    }
    assert b'id="below-threshold"' in pages["buyer"].content
    assert b'id="below-threshold"' not in pages["no_role"].content


@pytest.mark.parametrize(
    "url_name, expected",
    [
        (
            "admin:inventory_inventorytransaction_changelist",
            {"staff": 200, "buyer": 200, "manager": 200, "no_role": 403, "superuser": 200},
        ),
        (
            "admin:inventory_inventory_changelist",
            {"staff": 200, "buyer": 200, "manager": 200, "no_role": 403, "superuser": 200},
        ),
        (
            "admin:inventory_reservation_changelist",
            {"staff": 200, "buyer": 200, "manager": 200, "no_role": 403, "superuser": 200},
        ),
        (
            "admin:inventory_product_add",
            {"staff": 403, "buyer": 403, "manager": 200, "no_role": 403, "superuser": 200},
        ),
        (
            "admin:warehouses_warehouse_add",
            {"staff": 403, "buyer": 403, "manager": 200, "no_role": 403, "superuser": 200},
        ),
        # Nobody adds inventory rows or ledger rows by hand, superusers included.
        ("admin:inventory_inventory_add", dict.fromkeys(ROLES, 403)),
        ("admin:inventory_inventorytransaction_add", dict.fromkeys(ROLES, 403)),
        ("admin:inventory_reservation_add", dict.fromkeys(ROLES, 403)),
    ],
)
def test_admin_pages_by_role(clients, stocked, url_name, expected):
    assert status_by_role(clients, reverse(url_name)) == expected


def test_ledger_rows_cannot_be_changed_or_deleted_by_anyone(clients, stocked):
    txn = InventoryTransaction.objects.get(product__sku="A-1", warehouse__code="BER")
    change = reverse("admin:inventory_inventorytransaction_change", args=[txn.pk])
    delete = reverse("admin:inventory_inventorytransaction_delete", args=[txn.pk])

    page = clients["superuser"].get(change)
    assert page.status_code == 200  # viewing is fine
    assert b'name="_save"' not in page.content
    edit = {"on_hand_delta": "999", "reason": "fraud"}
    assert set(status_by_role(clients, change, "post", edit).values()) == {403}
    assert set(status_by_role(clients, delete).values()) == {403}
    assert set(status_by_role(clients, delete, "post", {"post": "yes"}).values()) == {403}
    txn.refresh_from_db()
    assert (txn.on_hand_delta, txn.reason) == (10, "")


def test_inventory_rows_cannot_be_deleted(clients, stocked):
    row = Inventory.objects.get(product__sku="A-1", warehouse__code="BER")
    delete = reverse("admin:inventory_inventory_delete", args=[row.pk])
    assert set(status_by_role(clients, delete, "post", {"post": "yes"}).values()) == {403}
    assert Inventory.objects.filter(pk=row.pk).exists()


def test_only_reorder_settings_are_editable_on_an_inventory_row(clients, stocked):
    row = Inventory.objects.get(product__sku="A-1", warehouse__code="BER")
    url = reverse("admin:inventory_inventory_change", args=[row.pk])
    form = clients["buyer"].get(url).context["adminform"].form
    # Safety stock is a setting beside the reorder threshold (issue 15), not a balance.
    assert set(form.fields) == {"reorder_threshold", "reorder_quantity", "safety_stock"}

    data = {
        "reorder_threshold": "7",
        "reorder_quantity": "40",
        "safety_stock": "0",
        "on_hand": "999",
        "reserved": "5",
    }
    assert clients["staff"].post(url, data).status_code == 403  # view only
    assert clients["buyer"].post(url, data).status_code == 302

    row.refresh_from_db()
    assert (row.reorder_threshold, row.reorder_quantity) == (7, 40)
    assert (row.on_hand, row.reserved) == (10, 0)


def test_saving_reorder_settings_keeps_a_stock_change_made_meanwhile(manager_client, stocked):
    """The form loaded on hand 10; a delivery arrives; saving must not write 10 back."""
    from ..conftest import receive

    row = Inventory.objects.get(product__sku="A-1", warehouse__code="BER")
    url = reverse("admin:inventory_inventory_change", args=[row.pk])
    manager_client.get(url)
    receive("A-1", "BER", 5)
    manager_client.post(
        url, {"reorder_threshold": "3", "reorder_quantity": "9", "safety_stock": "0"}
    )

    row.refresh_from_db()
    assert (row.on_hand, row.reorder_threshold) == (15, 3)


def test_managers_edit_products_and_policy_changes_go_through_the_service(manager_client, stocked):
    product = Product.objects.get(sku="A-1")
    url = reverse("admin:inventory_product_change", args=[product.pk])
    data = {
        "sku": "A-1",
        "name": "Renamed",
        "category": "general",
        "weight_g": "500",
        "stock_policy": "backorder",
        "backorder_limit": "4",
    }
    assert manager_client.post(url, data).status_code == 302

    product.refresh_from_db()
    assert (product.name, product.stock_policy, product.backorder_limit) == (
        "Renamed",
        "backorder",
        4,
    )
    # The service copied the new allowance to every stock row of the product.
    assert set(
        Inventory.objects.filter(product=product).values_list("backorder_allowance", flat=True)
    ) == {4}


def test_a_policy_change_that_would_oversell_is_refused_with_a_message(manager_client, warehouse):
    from ..factories import BackorderProductFactory

    product = BackorderProductFactory(sku="BO-1", backorder_limit=5)
    services.stock_reserve(
        order_id="o-bo", lines=[services.ReserveLine("BO-1", "BER", 3)], actor="client:shop"
    )
    url = reverse("admin:inventory_product_change", args=[product.pk])
    data = {
        "sku": "BO-1",
        "name": "Backordered",
        "category": "general",
        "weight_g": "500",
        "stock_policy": "normal",
        "backorder_limit": "0",
    }
    response = manager_client.post(url, data)

    assert response.status_code == 200
    assert b"further below zero" in response.content
    product.refresh_from_db()
    assert (product.stock_policy, product.backorder_limit) == ("backorder", 5)
    row = Inventory.objects.get(product=product)
    assert (row.available, row.backorder_allowance) == (-3, 5)


def test_a_policy_the_service_refuses_on_save_is_a_message_not_a_500(manager_client, warehouse):
    from ..factories import BackorderProductFactory

    product = BackorderProductFactory(sku="BO-2", backorder_limit=5)
    url = reverse("admin:inventory_product_change", args=[product.pk])
    data = {
        "sku": "BO-2",
        "name": "Renamed too",
        "category": "general",
        "weight_g": "500",
        "stock_policy": "backorder",
        "backorder_limit": "2000000",  # above STOCKROOM_MAX_QUANTITY: the service refuses
    }
    response = manager_client.post(url, data, follow=True)

    assert response.status_code == 200
    assert any("Stock policy not changed" in str(m) for m in response.context["messages"])
    product.refresh_from_db()
    assert (product.name, product.backorder_limit) == ("Renamed too", 5)
