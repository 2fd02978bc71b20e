"""The staff roles, as groups with permissions (`manage.py setup_roles`).

The definition here is the source of truth: `roles_setup()` creates missing
groups and sets each group's permissions to exactly these (so running it again
changes nothing, and a permission removed here is removed from the group).

* **Warehouse staff** — view stock (products, warehouses, inventory, ledger,
  reservations); cycle counts, transfers, receiving; view purchase orders (those
  delivered to their warehouses) and receive deliveries on them, never edit them;
  move units between sellable, damaged and quality control and book customer
  returns at the dock (issue #15) — not write units off.
* **Purchasing** — view stock, edit reorder thresholds/quantities, and every
  permission of the `purchasing` app (by app label, so models added there later
  are picked up by the next run).
* **Inventory manager** — all of the above plus adding and editing products and
  warehouses, writing off damaged or quality-control units
  (`backoffice.write_off_stock`), and acting in every warehouse
  (`backoffice.act_in_all_warehouses`).

Warehouse staff and Purchasing act only in the warehouses they work at
(*Users → Works at*; none assigned = no warehouse, `backoffice.access`), unless
a user is given `backoffice.act_in_all_warehouses` individually.

No role may delete products, warehouses or stock rows, nor touch the ledger:
stock changes only through the back-office pages.
"""

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q

WAREHOUSE_STAFF = "Warehouse staff"
PURCHASING = "Purchasing"
INVENTORY_MANAGER = "Inventory manager"

VIEW_STOCK = [
    "inventory.view_product",
    "inventory.view_inventory",
    "inventory.view_inventorytransaction",
    "inventory.view_reservation",
    "inventory.view_reservationline",
    "inventory.view_transfer",
    "inventory.view_transferline",
    "warehouses.view_warehouse",
]
STOCK_ACTIONS = [
    "backoffice.cycle_count",
    "backoffice.transfer_stock",
    "backoffice.receive_stock",
    # Issue #15: moving units between sellable, damaged and quality control, and the
    # returns dock, at the warehouses the user works at.
    "backoffice.move_stock_state",
    "backoffice.book_return",
]
# Writing units off (they leave on hand for good): managers only.
WRITE_OFF = ["backoffice.write_off_stock"]
ALL_WAREHOUSES = ["backoffice.act_in_all_warehouses"]
# Receiving at the dock: see the orders (and their lines and receipts); the
# receive page checks backoffice.receive_stock (backoffice/admin/purchasing.py).
VIEW_PURCHASE_ORDERS = [
    "purchasing.view_purchaseorder",
    "purchasing.view_purchaseorderline",
    "purchasing.view_purchaseorderreceipt",
    "purchasing.view_supplier",
]
EDIT_REORDER_SETTINGS = ["inventory.change_inventory"]
EDIT_CATALOGUE = [
    "inventory.add_product",
    "inventory.change_product",
    "warehouses.add_warehouse",
    "warehouses.change_warehouse",
]

# Role -> (permissions as "app_label.codename", app labels granted whole).
ROLES: dict[str, tuple[list[str], list[str]]] = {
    WAREHOUSE_STAFF: (VIEW_STOCK + STOCK_ACTIONS + VIEW_PURCHASE_ORDERS, []),
    PURCHASING: (VIEW_STOCK + EDIT_REORDER_SETTINGS, ["purchasing"]),
    INVENTORY_MANAGER: (
        VIEW_STOCK
        + STOCK_ACTIONS
        + WRITE_OFF
        + EDIT_REORDER_SETTINGS
        + EDIT_CATALOGUE
        + ALL_WAREHOUSES,
        ["purchasing"],
    ),
}


class MissingPermissions(Exception):
    """Some permissions named in ROLES do not exist (migrations not applied?)."""


def _permissions(names: list[str], app_labels: list[str]) -> list[Permission]:
    condition = Q(content_type__app_label__in=app_labels)
    for name in names:
        app_label, codename = name.split(".", 1)
        condition |= Q(content_type__app_label=app_label, codename=codename)
    found = list(Permission.objects.filter(condition).select_related("content_type"))
    have = {f"{p.content_type.app_label}.{p.codename}" for p in found}
    missing = sorted(set(names) - have)
    if missing:
        raise MissingPermissions(f"Unknown permissions: {', '.join(missing)}. Run migrate first.")
    return found


@transaction.atomic
def roles_setup() -> dict[str, tuple[bool, int]]:
    """Create or update the role groups; returns {group: (created, permission count)}."""
    outcome = {}
    for name, (perm_names, app_labels) in ROLES.items():
        group, created = Group.objects.get_or_create(name=name)
        permissions = _permissions(perm_names, app_labels)
        group.permissions.set(permissions)
        outcome[name] = (created, len(permissions))
    return outcome
