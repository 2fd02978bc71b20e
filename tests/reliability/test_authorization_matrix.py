"""Who may call what: every API endpoint for every identity, every admin page for every role.

Endpoints and admin pages are enumerated from the URL resolver and the admin
registry, so a new endpoint or model admin fails here until it is added to the
expected table. "Allowed" means the request got past authentication and
authorization (anything but 401/403, and for the admin not a redirect to the
login page); the check is that nothing is allowed that the table does not
allow, and that what the table allows really is.
"""

import json

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, reverse

from api import urls as api_urls
from api.services import api_client_create, api_client_revoke
from backoffice.roles import INVENTORY_MANAGER, PURCHASING, ROLES, WAREHOUSE_STAFF, roles_setup
from inventory.models import InventoryTransaction

from ..conftest import receive
from ..factories import ProductFactory, StaffUserFactory, WarehouseFactory

S, OPS, R = "storefront", "operations", "read"
# (url name, method) -> scopes allowed; from docs/API.md "Clients, keys and scopes".
API_MATRIX = {
    ("availability-batch", "GET"): {S, OPS, R},
    ("availability-detail", "GET"): {S, OPS, R},
    ("reservation-create", "POST"): {S},
    ("reservation-batch", "POST"): {S},
    ("reservation-batch", "GET"): {S, OPS},  # reads the order whose id is "batch"
    ("ping", "GET"): {S, OPS, R},
    ("reservation-detail", "GET"): {S, OPS},
    ("reservation-release", "POST"): {S, OPS},
    ("reservation-fulfill", "POST"): {S, OPS},
    ("reservation-confirm", "POST"): {S, OPS},
    ("reservation-batch-confirm", "POST"): {S, OPS},
    ("stock-receive", "POST"): {OPS},
    ("stock-adjust", "POST"): {OPS},
    ("stock-transfer", "POST"): {OPS},
    ("stock-move", "POST"): {OPS},
    ("return-create", "POST"): {OPS},
    ("transfer-ship", "POST"): {OPS},
    ("transfer-detail", "GET"): {OPS, R},
    ("transfer-receive", "POST"): {OPS},
    ("product-list", "GET"): {S, OPS, R},  # the catalogue
    ("product-list", "POST"): {OPS},
    ("product-bulk", "POST"): {OPS},
    ("product-detail", "GET"): {S, OPS, R},  # the catalogue
    ("product-detail", "PUT"): {OPS},
    ("product-detail", "PATCH"): {OPS},
    ("warehouse-list", "GET"): {S, OPS, R},  # the catalogue
    ("warehouse-list", "POST"): {OPS},
    ("warehouse-detail", "GET"): {S, OPS, R},  # the catalogue
    ("warehouse-detail", "PATCH"): {OPS},
    ("inventory-list", "GET"): {OPS, R},
    ("inventory-detail", "GET"): {OPS, R},
    ("inventory-detail", "PATCH"): {OPS},
    ("transaction-list", "GET"): {OPS, R},
    ("purchase-order-receive", "POST"): {OPS},
}
KWARGS = {
    "sku": "MUG",
    "order_id": "ORD-M",
    "code": "BER",
    "warehouse": "BER",
    "number": "PO-M",
    "transfer_id": "TR-M",
}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def api_endpoints() -> list[tuple[str, str, set[str]]]:
    """(name, url, implemented methods) of every named API route."""
    out = []
    for pattern in api_urls.urlpatterns:
        if not isinstance(pattern, URLPattern) or not pattern.name:
            continue
        view = pattern.callback.view_class
        names = set(pattern.pattern.converters)
        url = reverse(f"api:{pattern.name}", kwargs={k: KWARGS[k] for k in names})
        methods = {m for m in METHODS if hasattr(view, m.lower())}
        out.append((pattern.name, url, methods))
    return out


@pytest.fixture
def world(db):
    ProductFactory(sku="MUG")
    WarehouseFactory(code="BER")
    receive("MUG", "BER", 10)
    callers = {"anonymous": None}
    for scope in (S, OPS, R):
        callers[scope] = api_client_create(name=f"m-{scope}", scopes=[scope])[1]
    revoked, revoked_key = api_client_create(name="m-revoked", scopes=[S, OPS, R])
    api_client_revoke(client=revoked)
    callers["revoked"] = revoked_key
    callers["garbage"] = "not-a-key"
    return callers


def call(method: str, url: str, key: str | None):
    headers = {"HTTP_AUTHORIZATION": f"Token {key}"} if key else {}
    return getattr(Client(), method.lower())(
        url,
        data=json.dumps({}) if method != "GET" else {},
        content_type="application/json",
        **headers,
    )


def test_every_api_endpoint_is_in_the_matrix():
    implemented = {(name, m) for name, _, methods in api_endpoints() for m in methods}
    assert implemented == set(API_MATRIX)


def test_api_authorization_matrix(world):
    unexpected, refused = [], []
    for name, url, methods in api_endpoints():
        for method in METHODS:
            allowed_scopes = API_MATRIX.get((name, method), set())
            for identity, key in world.items():
                before = InventoryTransaction.objects.count()
                status = call(method, url, key).status_code
                may = identity in allowed_scopes
                if identity in ("anonymous", "revoked", "garbage"):
                    ok = status == 401
                elif method not in methods:
                    ok = status == 405  # method_not_allowed, whatever the scopes
                elif may:
                    ok = status not in (401, 403)
                else:
                    ok = status == 403
                if not ok:
                    (refused if may else unexpected).append((name, method, identity, status))
                if not may:
                    assert InventoryTransaction.objects.count() == before, (name, method, identity)
    assert unexpected == [], "allowed or answered unexpectedly"
    assert refused == [], "refused although the scope allows it"


# --- the admin ----------------------------------------------------------------

ROLE_USERS = {
    "no_role": [],
    "staff": [WAREHOUSE_STAFF],
    "buyer": [PURCHASING],
    "manager": [INVENTORY_MANAGER],
}
# Never allowed to anyone, superusers included: stock changes only through the
# services (back-office pages), the ledger and reservations are read-only.
NEVER = {
    ("inventory", "inventorytransaction", "add"),
    ("inventory", "inventorytransaction", "change_post"),
    ("inventory", "inventorytransaction", "delete"),
    ("inventory", "inventory", "add"),
    ("inventory", "inventory", "delete"),
    ("inventory", "reservation", "add"),
    ("inventory", "reservation", "delete"),
    ("inventory", "transfer", "add"),
    ("inventory", "transfer", "delete"),
}
# Never allowed to any role (superusers hold every permission by design; a
# product or warehouse with stock still cannot be deleted: PROTECT, tested below).
NEVER_FOR_ROLES = NEVER | {
    ("inventory", "product", "delete"),
    ("warehouses", "warehouse", "delete"),
}
CUSTOM_PAGES = {
    "admin:backoffice_cycle_count": "backoffice.cycle_count",
    "admin:backoffice_transfer": "backoffice.transfer_stock",
    "admin:backoffice_receive": "backoffice.receive_stock",
    # backoffice/views.py bulk_receive_view: a file may name any warehouse, so both are needed.
    "admin-bulk-receive": ("backoffice.receive_stock", "backoffice.act_in_all_warehouses"),
}


def role_grants(role_names: list[str]) -> tuple[set[str], set[str]]:
    perms, apps = set(), set()
    for role in role_names:
        p, a = ROLES[role]
        perms |= set(p)
        apps |= set(a)
    return perms, apps


def granted(role_names, app_label, codename) -> bool:
    perms, apps = role_grants(role_names)
    return app_label in apps or f"{app_label}.{codename}" in perms


@pytest.fixture
def admin_world(world):
    roles_setup()
    users = {
        role: StaffUserFactory(username=f"u-{role}", groups=groups)
        for role, groups in ROLE_USERS.items()
    }
    users["superuser"] = StaffUserFactory(username="u-root", is_superuser=True)
    return users


def admin_pages():
    """(app, model, kind, url) for every registered model admin with a sample object."""
    pages = []
    for model in admin.site._registry:
        app, name = model._meta.app_label, model._meta.model_name
        obj = model._default_manager.order_by("pk").first()
        pages.append((app, name, "view", reverse(f"admin:{app}_{name}_changelist")))
        pages.append((app, name, "add", reverse(f"admin:{app}_{name}_add")))
        if obj is not None:
            pages.append((app, name, "view", reverse(f"admin:{app}_{name}_change", args=[obj.pk])))
            pages.append((app, name, "view", reverse(f"admin:{app}_{name}_history", args=[obj.pk])))
            pages.append(
                (app, name, "delete", reverse(f"admin:{app}_{name}_delete", args=[obj.pk]))
            )
    return pages


def allowed(response) -> bool:
    if response.status_code in (302, 301):
        return "/login/" not in response["Location"]
    return response.status_code not in (403, 404)


def test_anonymous_gets_the_login_page_for_every_admin_page(admin_world):
    client = Client()
    urls = [url for *_, url in admin_pages()] + [reverse(n) for n in CUSTOM_PAGES]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


def test_admin_authorization_matrix(admin_world):
    unexpected, refused = [], []
    pages = admin_pages()
    for role, user in admin_world.items():
        client = Client()
        client.force_login(user)
        groups = ROLE_USERS.get(role, [])
        for app, name, kind, url in pages:
            if role == "superuser":
                expect = (app, name, kind) not in NEVER
            elif kind == "view":
                expect = granted(groups, app, f"view_{name}") or granted(
                    groups, app, f"change_{name}"
                )
            else:
                expect = (
                    granted(groups, app, f"{kind}_{name}")
                    and (app, name, kind) not in NEVER_FOR_ROLES
                )
            got = allowed(client.get(url))
            if got and not expect:
                unexpected.append((role, url))
        for url_name, perms in CUSTOM_PAGES.items():
            perms = (perms,) if isinstance(perms, str) else perms
            expect = role == "superuser" or all(granted(groups, *perm.split(".")) for perm in perms)
            got = allowed(client.get(reverse(url_name)))
            if got != expect:
                (unexpected if got else refused).append((role, url_name))
    assert unexpected == []
    assert refused == []


def test_nobody_changes_a_ledger_row_through_the_admin(admin_world):
    row = InventoryTransaction.objects.first()
    url = reverse("admin:inventory_inventorytransaction_change", args=[row.pk])
    for user in admin_world.values():
        client = Client()
        client.force_login(user)
        client.post(url, {"on_hand_delta": 999, "reason": "tamper"})
        client.post(
            reverse("admin:inventory_inventorytransaction_delete", args=[row.pk]), {"post": "yes"}
        )
    row.refresh_from_db()
    assert row.on_hand_delta == 10
    assert InventoryTransaction.objects.count() == 1


def test_a_superuser_cannot_delete_a_product_or_warehouse_that_has_stock(admin_world):
    from inventory.models import Product
    from warehouses.models import Warehouse

    client = Client()
    client.force_login(admin_world["superuser"])
    product, warehouse = Product.objects.get(), Warehouse.objects.get()
    client.post(reverse("admin:inventory_product_delete", args=[product.pk]), {"post": "yes"})
    client.post(reverse("admin:warehouses_warehouse_delete", args=[warehouse.pk]), {"post": "yes"})
    assert Product.objects.filter(pk=product.pk).exists()
    assert Warehouse.objects.filter(pk=warehouse.pk).exists()
    assert InventoryTransaction.objects.count() == 1
