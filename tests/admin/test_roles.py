"""setup_roles: the three groups, with the right permissions, however often it runs."""

from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import CommandError, call_command

from backoffice.roles import INVENTORY_MANAGER, PURCHASING, WAREHOUSE_STAFF


def perms(group_name):
    group = Group.objects.get(name=group_name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


def test_setup_roles_is_idempotent_and_converges(db):
    call_command("setup_roles", stdout=StringIO())
    first = {name: perms(name) for name in (WAREHOUSE_STAFF, PURCHASING, INVENTORY_MANAGER)}
    # Someone hand-edits a group; the command puts it back.
    Group.objects.get(name=WAREHOUSE_STAFF).permissions.add(
        Permission.objects.get(codename="delete_product")
    )
    out = StringIO()
    call_command("setup_roles", stdout=out)

    assert {name: perms(name) for name in first} == first
    assert Group.objects.filter(name__in=first).count() == 3
    assert "up to date" in out.getvalue()


def test_what_each_role_may_do(db):
    call_command("setup_roles", stdout=StringIO())
    staff, buyer, manager = perms(WAREHOUSE_STAFF), perms(PURCHASING), perms(INVENTORY_MANAGER)

    actions = {"backoffice.cycle_count", "backoffice.transfer_stock", "backoffice.receive_stock"}
    assert actions <= staff
    assert "inventory.view_inventorytransaction" in staff
    assert not {"inventory.change_product", "inventory.change_inventory"} & staff
    assert not actions & buyer
    assert "inventory.change_inventory" in buyer
    assert actions | {"inventory.change_product", "warehouses.change_warehouse"} <= manager
    # Nobody may touch the ledger or delete stock data.
    for granted in (staff, buyer, manager):
        assert not {
            p
            for p in granted
            if p.startswith(
                (
                    "inventory.add_inventorytransaction",
                    "inventory.change_inventorytransaction",
                    "inventory.delete_",
                )
            )
        }


def test_purchasing_roles_get_every_purchasing_permission_by_app_label(db):
    call_command("setup_roles", stdout=StringIO())
    purchasing = {
        f"purchasing.{codename}"
        for codename in Permission.objects.filter(content_type__app_label="purchasing").values_list(
            "codename", flat=True
        )
    }
    assert purchasing <= perms(PURCHASING)
    assert purchasing <= perms(INVENTORY_MANAGER)
    # Warehouse staff see purchase orders (to receive deliveries at the dock), never
    # change them (issue 19).
    assert purchasing & perms(WAREHOUSE_STAFF) == {
        "purchasing.view_purchaseorder",
        "purchasing.view_purchaseorderline",
        "purchasing.view_purchaseorderreceipt",
        "purchasing.view_supplier",
    }


def test_demo_admin_creates_one_demo_user_per_role(db, settings):
    settings.DEBUG = True
    out = StringIO()
    call_command("demo_admin", stdout=out)
    call_command("demo_admin", stdout=StringIO())  # idempotent

    users = {u.username: u for u in User.objects.filter(username__in=["staff", "buyer", "manager"])}
    assert [g.name for g in users["staff"].groups.all()] == [WAREHOUSE_STAFF]
    assert [g.name for g in users["buyer"].groups.all()] == [PURCHASING]
    assert [g.name for g in users["manager"].groups.all()] == [INVENTORY_MANAGER]
    assert users["staff"].is_staff and not users["staff"].is_superuser
    assert users["staff"].check_password("stockroom-demo")
    assert "'staff' (Warehouse staff)" in out.getvalue()


def test_demo_admin_refuses_without_debug(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError):
        call_command("demo_admin", stdout=StringIO())
