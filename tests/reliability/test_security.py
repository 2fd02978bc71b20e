"""Security properties: no mass assignment of stock, ledger privileges, input bounds,
admin CSRF and login throttling."""

import importlib
import inspect
import json
import pkgutil
import uuid
from pathlib import Path

import psycopg
import pytest
from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, RequestFactory
from django.urls import reverse
from rest_framework import serializers
from rest_framework.views import APIView

import api.views
import backoffice.admin.inventory
import backoffice.admin.purchasing
import backoffice.forms
from inventory.models import Inventory, InventoryTransaction, Reservation

from ..api.conftest import make_caller
from ..conftest import receive
from ..factories import ProductFactory, StaffUserFactory, WarehouseFactory
from .test_authorization_matrix import CUSTOM_PAGES, admin_pages

STOCK_FIELDS = {"on_hand", "reserved", "available", "version", "backorder_allowance"}
ROOT = Path(__file__).resolve().parents[2]
# The API's views, one module per domain (api/views/).
VIEW_MODULES = [
    importlib.import_module(f"api.views.{m.name}") for m in pkgutil.iter_modules(api.views.__path__)
]

# --- mass assignment ------------------------------------------------------------


def input_serializer_names() -> set[str]:
    """Names of the classes the views validate request bodies with."""
    import re

    source = "".join(inspect.getsource(module) for module in VIEW_MODULES)
    names = set(re.findall(r"validated\(\s*(?:self\.)?(\w+)", source))
    names |= set(re.findall(r"(\w+)\(data=request\.data", source))
    return names - {"serializer_class"}


def serializer_classes():
    """Every serializer a view takes input with, and every nested one they use."""
    names = input_serializer_names()
    found = set()
    for obj in (obj for module in VIEW_MODULES for obj in vars(module).values()):
        if inspect.isclass(obj) and issubclass(obj, serializers.BaseSerializer):
            found.add(obj)
        if inspect.isclass(obj) and issubclass(obj, APIView):
            for _, attr in inspect.getmembers(obj, inspect.isclass):
                if issubclass(attr, serializers.BaseSerializer):
                    found.add(attr)
    found = {c for c in found if c.__name__ in names or "Input" in c.__name__}
    return sorted(found, key=lambda c: c.__qualname__)


def writable_fields(serializer, path=""):
    out = set()
    for name, field in serializer.fields.items():
        if isinstance(field, serializers.ListSerializer):
            field = field.child
        if isinstance(field, serializers.BaseSerializer) and not field.read_only:
            out |= writable_fields(field, f"{path}{name}.")
        if not field.read_only:
            out.add(name)
    return out


def test_there_are_serializers_to_check():
    # Output serializers are never used for input (only the classes above are).
    assert len(serializer_classes()) >= 10
    assert {"CloseLinesInput", "ProductInput", "InputSerializer", "PatchInput"} <= {
        c.__name__ for c in serializer_classes()
    }


@pytest.mark.parametrize("cls", serializer_classes(), ids=lambda c: c.__qualname__)
def test_no_serializer_accepts_a_stock_field(cls):
    assert writable_fields(cls()) & STOCK_FIELDS == set()


def form_classes():
    out = set()
    for module in (backoffice.forms, backoffice.admin.inventory, backoffice.admin.purchasing):
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, forms.BaseForm):
                out.add(obj)
    return sorted(out, key=lambda c: f"{c.__module__}.{c.__qualname__}")


@pytest.mark.parametrize("cls", form_classes(), ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_no_form_class_has_a_stock_field(cls):
    assert set(cls.base_fields) & STOCK_FIELDS == set()


def test_no_admin_form_has_a_stock_field_even_for_a_superuser(db):
    WarehouseFactory(code="BER")
    ProductFactory(sku="MUG")
    receive("MUG", "BER", 3)
    request = RequestFactory().get("/admin/")
    request.user = User.objects.create_superuser("root", "r@example.com", "pw")
    checked = 0
    for model, model_admin in admin.site._registry.items():
        obj = model._default_manager.first()
        for instance in {None, obj}:
            try:
                form = model_admin.get_form(request, instance)
            except Exception:  # admins that have no form for this case
                continue
            editable = set(form.base_fields) - set(
                model_admin.get_readonly_fields(request, instance)
            )
            assert editable & STOCK_FIELDS == set(), model
            checked += 1
    assert checked >= 8


def test_stock_fields_sent_to_the_api_and_admin_change_nothing(db):
    WarehouseFactory(code="BER")
    ProductFactory(sku="MUG")
    receive("MUG", "BER", 3)
    ops = make_caller("wms", "operations")
    for body in ({"on_hand": 999}, {"reserved": 5}, {"available": 9}, {"version": 0}):
        assert ops.patch("/api/v1/inventory/MUG/BER/", body).status_code == 400
    assert ops.patch("/api/v1/products/MUG/", {"backorder_allowance": 9}).status_code == 400
    client = Client()
    client.force_login(User.objects.create_superuser("root", "r@example.com", "pw"))
    row = Inventory.objects.get()
    client.post(
        reverse("admin:inventory_inventory_change", args=[row.pk]),
        {"on_hand": 999, "reserved": 2, "reorder_threshold": 1, "reorder_quantity": 1},
    )
    row.refresh_from_db()
    assert (row.on_hand, row.reserved, row.version) == (3, 0, 1)
    assert InventoryTransaction.objects.count() == 1


# --- ledger privileges ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_least_privilege_role_cannot_change_the_ledger():
    WarehouseFactory(code="BER")
    ProductFactory(sku="MUG")
    receive("MUG", "BER", 3)
    s = connection.settings_dict
    role = f"stockroom_app_test_{uuid.uuid4().hex[:8]}"
    sql = (ROOT / "docs" / "least_privilege.sql").read_text().replace(':"app_role"', f'"{role}"')
    dsn = (
        f"host={s['HOST'] or '127.0.0.1'} port={s['PORT'] or 5432} "
        f"user={s['USER']} dbname={s['NAME']}"
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" NOLOGIN')
        try:
            conn.execute(sql)
            conn.execute(f'SET ROLE "{role}"')
            # The app's own work is allowed: read the ledger, insert rows, update stock rows.
            assert conn.execute("SELECT count(*) FROM inventory_inventorytransaction").fetchone()
            assert conn.execute(
                "SELECT has_table_privilege(current_user, 'inventory_inventorytransaction', "
                "'INSERT')"
            ).fetchone() == (True,)
            conn.execute("UPDATE inventory_inventory SET version = version WHERE false")
            for statement in (
                "UPDATE inventory_inventorytransaction SET on_hand_delta = 0",
                "DELETE FROM inventory_inventorytransaction",
                "TRUNCATE inventory_inventorytransaction",
                "TRUNCATE inventory_inventory CASCADE",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
        finally:
            conn.execute("RESET ROLE")
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')
    assert InventoryTransaction.objects.count() == 1


def test_the_trigger_refuses_update_and_delete_even_for_the_owner(db):
    WarehouseFactory(code="BER")
    ProductFactory(sku="MUG")
    receive("MUG", "BER", 3)
    for statement in (
        "UPDATE inventory_inventorytransaction SET on_hand_delta = 0",
        "DELETE FROM inventory_inventorytransaction",
    ):
        with pytest.raises(Exception, match="append-only"), connection.cursor() as cursor:
            from django.db import transaction

            with transaction.atomic():
                cursor.execute(statement)
    assert InventoryTransaction.objects.get().on_hand_delta == 3


# --- input bounds -----------------------------------------------------------------

BAD_NUMBERS = [0, -1, 2**31 - 1, 2**31, 2**63, "1.5", 1.5, True, None, "1e309"]
RAW_NUMBERS = ["1e309", "-1e309", "9" * 400, "NaN", "Infinity"]


@pytest.fixture
def bounded(db):
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    ProductFactory(sku="MUG")
    receive("MUG", "BER", 10)
    callers = {
        "shop": make_caller("shop", "storefront"),
        "wms": make_caller("wms", "operations"),
    }
    callers["shop"].post(
        "/api/v1/reservations/",
        {"order_id": "ORD-B", "lines": [{"sku": "MUG", "quantity": 2, "warehouse": "BER"}]},
    )
    return callers


# (caller, url, body with NUMBER where the value goes)
NUMBER_TARGETS = [
    (
        "shop",
        "/api/v1/reservations/",
        {"order_id": "B2", "lines": [{"sku": "MUG", "quantity": "N"}]},
    ),
    ("wms", "/api/v1/stock/receive/", {"sku": "MUG", "warehouse": "BER", "quantity": "N"}),
    (
        "wms",
        "/api/v1/stock/adjust/",
        {"sku": "MUG", "warehouse": "BER", "delta": "N", "reason": "x"},
    ),
    (
        "wms",
        "/api/v1/stock/adjust/",
        {"sku": "MUG", "warehouse": "BER", "counted": "N", "reason": "x"},
    ),
    (
        "wms",
        "/api/v1/stock/transfer/",
        {"source": "BER", "destination": "HAM", "lines": [{"sku": "MUG", "quantity": "N"}]},
    ),
    ("shop", "/api/v1/reservations/ORD-B/release/", {"lines": [{"sku": "MUG", "quantity": "N"}]}),
    ("shop", "/api/v1/reservations/ORD-B/fulfill/", {"lines": [{"sku": "MUG", "quantity": "N"}]}),
]


def state():
    return (
        InventoryTransaction.objects.count(),
        list(Inventory.objects.order_by("pk").values_list("on_hand", "reserved")),
        Reservation.objects.count(),
    )


def test_out_of_range_numbers_are_4xx_and_change_nothing(bounded):
    before = state()
    for caller, url, template in NUMBER_TARGETS:
        text = json.dumps(template)
        for number in BAD_NUMBERS:
            if (number == 0 and "counted" in text) or (number == -1 and "delta" in text):
                continue  # valid values there
            body = json.loads(text.replace('"N"', json.dumps(number)))
            response = bounded[caller].post(url, body)
            assert 400 <= response.status_code < 500, (url, number, response.status_code)
        for raw in RAW_NUMBERS:
            response = bounded[caller].post(url, raw=text.replace('"N"', raw))
            assert response.status_code == 400, (url, raw, response.status_code)
    assert state() == before


def test_huge_deep_and_long_bodies_are_4xx_and_change_nothing(bounded):
    before = state()
    shop, wms = bounded["shop"], bounded["wms"]
    lines = [{"sku": "MUG", "quantity": 1, "warehouse": "BER"}] * 10_000
    cases = [
        (shop, "/api/v1/reservations/", json.dumps({"order_id": "L", "lines": lines}), {}),
        (
            wms,
            "/api/v1/stock/transfer/",
            json.dumps({"source": "BER", "destination": "HAM", "lines": lines}),
            {},
        ),
        (shop, "/api/v1/reservations/", "[" * 100_000 + "]" * 100_000, {}),
        (shop, "/api/v1/reservations/", '{"a":' * 50_000 + "1" + "}" * 50_000, {}),
        (
            shop,
            "/api/v1/reservations/",
            json.dumps({"order_id": "x" * 1_000_000, "lines": [{"sku": "MUG", "quantity": 1}]}),
            {},
        ),
        (
            wms,
            "/api/v1/stock/receive/",
            json.dumps({"sku": "M" * 100_000, "warehouse": "BER", "quantity": 1}),
            {},
        ),
        (
            wms,
            "/api/v1/stock/receive/",
            json.dumps({"sku": "MUG", "warehouse": "BER", "quantity": 1}),
            {"Idempotency-Key": "k" * 10_000},
        ),
        (
            wms,
            "/api/v1/stock/adjust/",
            json.dumps({"sku": "MUG", "warehouse": "BER", "delta": 1, "reason": "r" * 3_000_000}),
            {},
        ),
    ]
    for caller, url, raw, headers in cases:
        response = caller.post(url, raw=raw, headers=headers)
        assert 400 <= response.status_code < 500, (url, raw[:40], response.status_code)
    assert shop.get("/api/v1/availability/" + "M" * 100_000 + "/").status_code < 500
    assert state() == before


# --- the admin: CSRF and login throttling -------------------------------------------


def test_every_admin_form_refuses_a_post_without_a_csrf_token(db):
    WarehouseFactory(code="BER")
    ProductFactory(sku="MUG")
    receive("MUG", "BER", 3)
    user = User.objects.create_superuser("root", "r@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    urls = [url for *_, url in admin_pages()] + [reverse(n) for n in CUSTOM_PAGES]
    urls += [reverse("admin:password_change"), reverse("admin:logout")]
    before = state()
    for url in urls:
        assert client.post(url, {"post": "yes"}).status_code == 403, url
    assert (
        Client(enforce_csrf_checks=True)
        .post(reverse("admin:login"), {"username": "root", "password": "pw"})
        .status_code
        == 403
    )
    assert state() == before


def test_admin_login_is_throttled_after_repeated_failures(db, settings):
    settings.STOCKROOM_ADMIN_LOGIN_MAX_FAILURES = 3
    StaffUserFactory(username="wanda")  # password "staff-password"
    client = Client()
    url = reverse("admin:login")
    for _ in range(3):
        assert client.post(url, {"username": "wanda", "password": "guess"}).status_code == 200
    # Locked out: even the right password is refused until the window has passed.
    locked = client.post(url, {"username": "wanda", "password": "staff-password"})
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    assert "_auth_user_id" not in client.session
    # Another account from the same address is not locked by these three failures.
    StaffUserFactory(username="bert")
    ok = Client().post(url, {"username": "bert", "password": "staff-password"})
    assert ok.status_code == 302


def test_a_successful_login_resets_the_failure_count(db, settings):
    settings.STOCKROOM_ADMIN_LOGIN_MAX_FAILURES = 3
    StaffUserFactory(username="wanda")
    url = reverse("admin:login")
    for _ in range(2):
        Client().post(url, {"username": "wanda", "password": "guess"})
    assert (
        Client().post(url, {"username": "wanda", "password": "staff-password"}).status_code == 302
    )
    for _ in range(2):
        assert Client().post(url, {"username": "wanda", "password": "guess"}).status_code == 200
    assert (
        Client().post(url, {"username": "wanda", "password": "staff-password"}).status_code == 302
    )
