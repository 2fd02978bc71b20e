"""Staff limited to the warehouses they work at (`backoffice.access`): the rule fails closed.

A user assigned to some warehouses counts, receives, transfers out of and books
deliveries into only those. A user assigned to none acts in **no** warehouse,
unless they hold `backoffice.act_in_all_warehouses` (Inventory managers through
`setup_roles`, or granted individually) or are a superuser: then every
warehouse, whatever the assignments. Removing the last assignment or deleting
the warehouse therefore never widens anyone's access. Every refusal is a form
error, a message or a 403 with a message (never a 500) and changes nothing.
"""

import importlib
import io
import types
import uuid

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test import Client
from django.urls import reverse

from backoffice.access import NO_WAREHOUSE_MESSAGE, warehouse_codes_for
from backoffice.models import StaffWarehouse
from backoffice.roles import INVENTORY_MANAGER, PURCHASING, ROLES, WAREHOUSE_STAFF
from inventory.models import InventoryTransaction, Product
from purchasing.models import PurchaseOrderStatus
from tests.purchasing.conftest import purchase_order
from tests.purchasing.factories import SupplierFactory
from warehouses.models import Warehouse

from ..factories import StaffUserFactory, WarehouseFactory
from .conftest import message_texts, on_hand
from .test_cycle_count import URL as COUNT_URL
from .test_cycle_count import count_form
from .test_receive import URL as RECEIVE_URL
from .test_receive import receive_form
from .test_transfer import URL as TRANSFER_URL
from .test_transfer import transfer_form

BULK_URL = reverse("admin-bulk-receive")
ALL_WAREHOUSES = ("backoffice", "act_in_all_warehouses")


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def at_berlin(staff_user, warehouse):
    """Wanda (warehouse staff) works at BER only."""
    StaffWarehouse.objects.filter(user=staff_user).exclude(warehouse=warehouse).delete()
    return staff_user


@pytest.fixture
def clerk(roles, warehouse):
    """Carl holds every stock permission (warehouse staff and purchasing) but not
    `act_in_all_warehouses`, and works at BER: only the warehouse rule can refuse him."""
    carl = StaffUserFactory(username="carl", groups=[WAREHOUSE_STAFF, PURCHASING])
    StaffWarehouse.objects.create(user=carl, warehouse=warehouse)
    return carl


@pytest.fixture
def purchase_orders(stocked):
    """An open purchase order into each of BER and HAM."""
    supplier = SupplierFactory(name="Acme")
    return {
        "BER": purchase_order(supplier, "BER", {"CUP": 4}),
        "HAM": purchase_order(supplier, "HAM", {"MUG": 10}),
    }


def offered(response, field: str) -> list[str]:
    return [w.code for w in response.context["form"].fields[field].queryset]


def ledger_size() -> int:
    return InventoryTransaction.objects.count()


def bulk_upload(client, text: str):
    upload = SimpleUploadedFile("in.csv", text.encode(), content_type="text/csv")
    return client.post(BULK_URL, {"file": upload, "reference_type": "import", "reference": "X"})


def assert_acts_nowhere(client, purchase_orders) -> None:
    """Every stock-changing path is refused for every warehouse, with a message, and
    nothing changes: cycle count, receive, transfer out, PO receive (page and
    action), CSV bulk receive."""
    before = ledger_size()
    stock = {(sku, code): on_hand(sku, code) for sku in ("A-1", "CUP", "MUG") for code in "BER HAM"}

    for url, field in ((COUNT_URL, "warehouse"), (RECEIVE_URL, "warehouse")):
        page = client.get(url)
        assert page.status_code == 200
        assert offered(page, field) == []
        assert NO_WAREHOUSE_MESSAGE in message_texts(page)
    page = client.get(TRANSFER_URL)
    assert offered(page, "source") == []
    assert NO_WAREHOUSE_MESSAGE in message_texts(page)

    product = Product.objects.get(sku="A-1")
    for code, other in (("BER", "HAM"), ("HAM", "BER")):
        count = client.post(COUNT_URL, count_form(warehouse=code, lines=[("A-1", 0)]))
        assert count.status_code == 200
        assert count.context["form"].errors["warehouse"] == [
            "Select one of the warehouses you work at."
        ]
        receipt = client.post(RECEIVE_URL, receive_form(product, warehouse=code))
        assert receipt.status_code == 200
        assert "warehouse" in receipt.context["form"].errors
        transfer = client.post(
            TRANSFER_URL, transfer_form(source=code, destination=other, lines=[("A-1", 1)])
        )
        assert transfer.status_code == 200
        assert "source" in transfer.context["form"].errors

        po = purchase_orders[code]
        [line] = po.lines.all()
        receive_page = reverse("admin:purchasing_purchaseorder_receive", args=[po.pk])
        refused = client.get(receive_page)
        assert refused.status_code == 403
        assert NO_WAREHOUSE_MESSAGE in refused.content.decode()
        assert (
            client.post(
                receive_page, {"receipt_id": f"x-{code}", f"line_{line.pk}": "1"}
            ).status_code
            == 403
        )
    changelist = reverse("admin:purchasing_purchaseorder_changelist")
    action = client.post(
        changelist,
        {
            "action": "receive_outstanding",
            "_selected_action": [po.pk for po in purchase_orders.values()],
        },
        follow=True,
    )
    texts = message_texts(action)
    for code, po in purchase_orders.items():
        assert any(t.startswith(f"{po.number}: ") and code in t for t in texts), texts
        po.refresh_from_db()
        assert po.status != PurchaseOrderStatus.RECEIVED

    bulk = client.get(BULK_URL)
    assert bulk.status_code == 403
    assert "all warehouses" in bulk.content.decode()
    assert bulk_upload(client, "sku,warehouse,quantity\nA-1,BER,5\n").status_code == 403

    assert ledger_size() == before
    assert {key: on_hand(*key) for key in stock} == stock


def assert_acts_everywhere(client, purchase_orders) -> None:
    """The user counts, receives, transfers and books deliveries in both BER and HAM."""
    WarehouseFactory(code="MUC")
    assert offered(client.get(COUNT_URL), "warehouse") == ["BER", "HAM", "MUC"]
    for code in ("BER", "HAM"):
        shown = client.post(COUNT_URL, count_form(warehouse=code, lines=[("A-1", 4)]))
        assert shown.context["preview"][0]["counted"] == 4
        before = on_hand("A-1", code)
        data = receive_form(Product.objects.get(sku="A-1"), warehouse=code, quantity="2")
        assert client.post(RECEIVE_URL, data).status_code == 302
        assert on_hand("A-1", code) == before + 2
    shown = client.post(
        TRANSFER_URL, transfer_form(source="HAM", destination="BER", lines=[("A-1", 1)])
    )
    assert "confirm_form" in shown.context, message_texts(shown)
    po = purchase_orders["HAM"]
    [line] = po.lines.all()
    page = reverse("admin:purchasing_purchaseorder_receive", args=[po.pk])
    assert client.post(page, {"receipt_id": "ok-1", f"line_{line.pk}": "10"}).status_code == 302
    assert on_hand("MUG", "HAM") == 10
    assert client.get(BULK_URL).status_code == 200


# --- assigned to some warehouses ----------------------------------------------------


def test_forms_offer_only_the_users_warehouses(staff_client, at_berlin, stocked):
    WarehouseFactory(code="MUC")
    assert offered(staff_client.get(COUNT_URL), "warehouse") == ["BER"]
    assert offered(staff_client.get(RECEIVE_URL), "warehouse") == ["BER"]
    transfer = staff_client.get(TRANSFER_URL)
    assert offered(transfer, "source") == ["BER"]
    assert offered(transfer, "destination") == ["BER", "HAM", "MUC"]  # any active one
    assert message_texts(transfer) == []  # no "you work at no warehouse" for her


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


def test_a_limited_user_receives_into_their_own_warehouse(staff_client, at_berlin, stocked):
    data = receive_form(Product.objects.get(sku="A-1"), token=str(uuid.uuid4()))
    assert staff_client.post(RECEIVE_URL, data).status_code == 302
    assert on_hand("A-1", "BER") == 22


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


def test_purchase_order_deliveries_only_into_the_users_warehouses(clerk, purchase_orders):
    client = _client(clerk)
    to_berlin, to_hamburg = purchase_orders["BER"], purchase_orders["HAM"]
    [line] = to_hamburg.lines.all()

    page = reverse("admin:purchasing_purchaseorder_receive", args=[to_hamburg.pk])
    assert client.get(page).status_code == 403
    refused = client.post(page, {"receipt_id": "admin-x", f"line_{line.pk}": "10"})
    assert refused.status_code == 403
    assert on_hand("MUG", "HAM") == 0

    changelist = reverse("admin:purchasing_purchaseorder_changelist")
    response = client.post(
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


def test_bulk_receive_is_refused_to_a_limited_user(clerk, manager_client, stocked):
    refused = _client(clerk).get(BULK_URL)
    assert refused.status_code == 403
    assert "all warehouses" in refused.content.decode()
    assert manager_client.get(BULK_URL).status_code == 200  # mia: act_in_all_warehouses


def test_the_bulk_receive_button_shows_only_to_users_who_may_open_it(
    staff_client, buyer_client, staff_user, warehouse
):
    index = reverse("admin:index")
    page = staff_client.get(index).content.decode()
    assert BULK_URL not in page  # works at BER and HAM, not everywhere: the page would refuse
    assert reverse("admin:backoffice_receive") in page
    assert BULK_URL not in buyer_client.get(index).content.decode()  # no receive_stock
    staff_user.user_permissions.add(
        Permission.objects.get(
            content_type__app_label=ALL_WAREHOUSES[0], codename=ALL_WAREHOUSES[1]
        )
    )
    assert BULK_URL in _client(User.objects.get(pk=staff_user.pk)).get(index).content.decode()


# --- assigned to none: fails closed ---------------------------------------------------


def test_a_new_user_with_no_assignment_and_no_permission_acts_nowhere(roles, purchase_orders):
    newcomer = StaffUserFactory(username="nils", groups=[WAREHOUSE_STAFF, PURCHASING])
    assert warehouse_codes_for(newcomer) == frozenset()
    assert_acts_nowhere(_client(newcomer), purchase_orders)


def user_page_data(page, user) -> dict:
    """The user admin page's form as a browser would post it back."""
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
            "groups": [g.pk for g in user.groups.all()],
            "user_permissions": [p.pk for p in user.user_permissions.all()],
            "staff_warehouses-MIN_NUM_FORMS": "0",
            "staff_warehouses-MAX_NUM_FORMS": "1000",
            "_save": "Save",
        }
    )
    return data


def test_managers_assign_warehouses_on_the_user_page(superuser_client, roles, warehouse):
    nils = StaffUserFactory(username="nils", groups=[WAREHOUSE_STAFF])
    url = reverse("admin:auth_user_change", args=[nils.pk])
    page = superuser_client.get(url)
    assert page.status_code == 200
    content = page.content.decode()
    assert "Works at" in content and "none = no warehouse" in content
    data = user_page_data(page, nils)
    data.update(
        {
            "staff_warehouses-TOTAL_FORMS": "1",
            "staff_warehouses-INITIAL_FORMS": "0",
            "staff_warehouses-0-warehouse": str(warehouse.pk),
        }
    )
    response = superuser_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert list(StaffWarehouse.objects.values_list("user__username", "warehouse__code")) == [
        ("nils", "BER")
    ]


def test_removing_the_last_assignment_leaves_the_user_acting_nowhere(
    clerk, purchase_orders, superuser_client, warehouse
):
    client = _client(clerk)
    # A count previewed while Carl still works at BER...
    shown = client.post(COUNT_URL, count_form(warehouse="BER", lines=[("A-1", 2)]))
    payload = shown.context["confirm_form"]["payload"].value()

    # ...then a manager removes his only assignment on his user page.
    url = reverse("admin:auth_user_change", args=[clerk.pk])
    data = user_page_data(superuser_client.get(url), clerk)
    [assignment] = StaffWarehouse.objects.filter(user=clerk)
    data.update(
        {
            "staff_warehouses-TOTAL_FORMS": "1",
            "staff_warehouses-INITIAL_FORMS": "1",
            "staff_warehouses-0-id": str(assignment.pk),
            "staff_warehouses-0-user": str(clerk.pk),
            "staff_warehouses-0-warehouse": str(warehouse.pk),
            "staff_warehouses-0-DELETE": "on",
        }
    )
    response = superuser_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert not StaffWarehouse.objects.filter(user=clerk).exists()

    confirm = client.post(
        COUNT_URL, {"step": "confirm", "payload": payload, "reason": "weekly count"}
    )
    assert confirm.status_code == 403
    assert NO_WAREHOUSE_MESSAGE in confirm.content.decode()
    assert on_hand("A-1", "BER") == 10
    assert_acts_nowhere(client, purchase_orders)


def test_deleting_the_users_warehouse_leaves_them_acting_nowhere(
    roles, purchase_orders, superuser_client
):
    munich = WarehouseFactory(code="MUC")  # no stock: a superuser may delete it
    carl = StaffUserFactory(username="carl", groups=[WAREHOUSE_STAFF, PURCHASING])
    StaffWarehouse.objects.create(user=carl, warehouse=munich)
    assert warehouse_codes_for(carl) == frozenset({"MUC"})

    delete = reverse("admin:warehouses_warehouse_delete", args=[munich.pk])
    assert superuser_client.post(delete, {"post": "yes"}).status_code == 302
    assert not Warehouse.objects.filter(code="MUC").exists()
    assert not StaffWarehouse.objects.filter(user=carl).exists()  # CASCADE

    assert_acts_nowhere(_client(User.objects.get(pk=carl.pk)), purchase_orders)


def test_a_transfer_previewed_before_the_last_assignment_went_is_refused(
    staff_client, staff_user, stocked
):
    shown = staff_client.post(
        TRANSFER_URL, transfer_form(source="BER", destination="HAM", lines=[("A-1", 3)])
    )
    payload = shown.context["confirm_form"]["payload"].value()
    StaffWarehouse.objects.filter(user=staff_user).delete()
    before = ledger_size()
    response = staff_client.post(TRANSFER_URL, {"step": "confirm", "payload": payload})
    assert response.status_code == 403
    assert NO_WAREHOUSE_MESSAGE in response.content.decode()
    assert ledger_size() == before


# --- the explicit "all warehouses" permission, and superusers -------------------------


def test_only_inventory_managers_act_in_all_warehouses_by_role(roles):
    holders = {
        group.name
        for group in Group.objects.filter(
            permissions__content_type__app_label=ALL_WAREHOUSES[0],
            permissions__codename=ALL_WAREHOUSES[1],
        )
    }
    assert holders == {INVENTORY_MANAGER}
    assert "backoffice.act_in_all_warehouses" in ROLES[INVENTORY_MANAGER][0]


def test_the_permission_granted_individually_means_every_warehouse(clerk, purchase_orders):
    StaffWarehouse.objects.filter(user=clerk).delete()
    clerk.user_permissions.add(
        Permission.objects.get(
            content_type__app_label=ALL_WAREHOUSES[0], codename=ALL_WAREHOUSES[1]
        )
    )
    assert_acts_everywhere(_client(User.objects.get(pk=clerk.pk)), purchase_orders)


def test_an_inventory_manager_acts_everywhere_with_or_without_assignments(
    roles, purchase_orders, warehouse
):
    mia = StaffUserFactory(username="mia", groups=[INVENTORY_MANAGER])
    assert warehouse_codes_for(mia) is None
    # An assignment does not narrow someone who holds the permission.
    StaffWarehouse.objects.create(user=mia, warehouse=warehouse)
    assert_acts_everywhere(_client(User.objects.get(pk=mia.pk)), purchase_orders)


def test_superusers_are_never_limited(db, purchase_orders):
    root = StaffUserFactory(username="root", is_superuser=True)  # assigned to none
    assert_acts_everywhere(_client(root), purchase_orders)
    StaffWarehouse.objects.create(user=root, warehouse=Warehouse.objects.get(code="MUC"))
    assert warehouse_codes_for(User.objects.get(pk=root.pk)) is None


# --- the upgrade --------------------------------------------------------------------


def _upgrade_function():
    """The RunPython step of the backoffice migration that adds the permission."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    for (app, name), migration in loader.disk_migrations.items():
        if app != "backoffice":
            continue
        for operation in migration.operations:
            code = getattr(operation, "code", None)
            if code is not None and code.__name__ == "grant_to_unassigned_staff":
                module = importlib.import_module(f"backoffice.migrations.{name}")
                return module.grant_to_unassigned_staff
    raise AssertionError("no backoffice migration grants act_in_all_warehouses")


def test_the_upgrade_keeps_unassigned_staff_unrestricted_and_nobody_else(
    roles, warehouse, purchase_orders
):
    """Before the upgrade a staff user with no assignment acted everywhere; the
    migration grants those users the permission so that nothing changes for them."""
    unassigned = StaffUserFactory(username="old-timer", groups=[WAREHOUSE_STAFF, PURCHASING])
    assigned = StaffUserFactory(username="berliner", groups=[WAREHOUSE_STAFF])
    StaffWarehouse.objects.create(user=assigned, warehouse=warehouse)
    customer = User.objects.create_user("not-staff", password="pw")
    root = StaffUserFactory(username="root", is_superuser=True)

    _upgrade_function()(django_apps, types.SimpleNamespace(connection=connection))
    _upgrade_function()(django_apps, types.SimpleNamespace(connection=connection))  # re-run safe

    def direct(user) -> bool:
        return user.user_permissions.filter(codename=ALL_WAREHOUSES[1]).exists()

    assert (direct(unassigned), direct(assigned), direct(customer), direct(root)) == (
        True,
        False,
        False,
        False,
    )
    assert warehouse_codes_for(User.objects.get(pk=assigned.pk)) == frozenset({"BER"})
    assert_acts_everywhere(_client(User.objects.get(pk=unassigned.pk)), purchase_orders)


def test_the_demo_users_can_act_after_the_change(db, settings, warehouse, other_warehouse):
    """`manage.py demo_admin`: the demo staff and buyer work at every demo warehouse,
    the manager acts everywhere by role."""
    from django.core.management import call_command

    settings.DEBUG = True
    call_command("demo_admin", stdout=io.StringIO())
    codes = {
        name: warehouse_codes_for(User.objects.get(username=name))
        for name in ("staff", "buyer", "manager")
    }
    assert codes == {
        "staff": frozenset({"BER", "HAM"}),
        "buyer": frozenset({"BER", "HAM"}),
        "manager": None,
    }
