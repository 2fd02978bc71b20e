"""Tokens, scopes, throttling and the create_api_client command."""

import hashlib
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from api.models import ApiClient
from api.services import api_client_revoke

from .conftest import Caller, error_code, make_caller

pytestmark = pytest.mark.django_db

# (method, url, body) for every endpoint, with the scopes allowed to call it.
ENDPOINTS = [
    ("get", "/api/v1/availability/TSHIRT-M/", None, {"storefront", "operations", "read"}),
    ("get", "/api/v1/availability/?sku=TSHIRT-M", None, {"storefront", "operations", "read"}),
    ("post", "/api/v1/reservations/", {}, {"storefront"}),
    ("get", "/api/v1/reservations/o-1/", None, {"storefront", "operations"}),
    ("post", "/api/v1/reservations/o-1/release/", {}, {"storefront", "operations"}),
    ("post", "/api/v1/reservations/o-1/fulfill/", {}, {"storefront", "operations"}),
    ("post", "/api/v1/stock/receive/", {}, {"operations"}),
    ("post", "/api/v1/stock/adjust/", {}, {"operations"}),
    ("post", "/api/v1/stock/transfer/", {}, {"operations"}),
    ("get", "/api/v1/products/", None, {"storefront", "operations", "read"}),
    ("post", "/api/v1/products/", {}, {"operations"}),
    ("post", "/api/v1/products/bulk/", {}, {"operations"}),
    ("get", "/api/v1/products/TSHIRT-M/", None, {"storefront", "operations", "read"}),
    ("put", "/api/v1/products/TSHIRT-M/", {}, {"operations"}),
    ("patch", "/api/v1/products/TSHIRT-M/", {}, {"operations"}),
    ("get", "/api/v1/warehouses/", None, {"storefront", "operations", "read"}),
    ("post", "/api/v1/warehouses/", {}, {"operations"}),
    ("get", "/api/v1/warehouses/BER/", None, {"storefront", "operations", "read"}),
    ("patch", "/api/v1/warehouses/BER/", {}, {"operations"}),
    ("get", "/api/v1/inventory/", None, {"operations", "read"}),
    ("get", "/api/v1/inventory/TSHIRT-M/BER/", None, {"operations", "read"}),
    ("patch", "/api/v1/inventory/TSHIRT-M/BER/", {}, {"operations"}),
    ("get", "/api/v1/transactions/", None, {"operations", "read"}),
]


def _call(caller: Caller, method, url, body):
    return getattr(caller, method)(url, body) if body is not None else caller.get(url)


@pytest.mark.parametrize(("method", "url", "body", "allowed"), ENDPOINTS)
def test_every_endpoint_needs_a_token(anonymous, method, url, body, allowed):
    response = _call(anonymous, method, url, body)
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize(("method", "url", "body", "allowed"), ENDPOINTS)
@pytest.mark.parametrize("scope", ["storefront", "operations", "read"])
def test_scopes_allow_exactly_their_endpoints(stocked, method, url, body, allowed, scope):
    caller = make_caller(f"client-{scope}", scope)
    response = _call(caller, method, url, body)
    if scope in allowed:
        assert response.status_code != 403, response.json()
    else:
        assert response.status_code == 403
        assert error_code(response) == "permission_denied"


def test_a_client_with_several_scopes_gets_all_of_them(stocked):
    caller = make_caller("both", "storefront", "read")
    assert caller.get("/api/v1/products/").status_code == 200
    assert caller.get("/api/v1/reservations/none/").status_code == 404
    assert caller.post("/api/v1/stock/receive/", {}).status_code == 403


@pytest.mark.parametrize(
    "header",
    ["Token wrong-key", "Token", "Token a b", "Bearer whatever", "Token \u00e9\u00e9"],
)
def test_bad_tokens_are_refused(reader, header):
    response = reader.client.get("/api/v1/products/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"


def test_a_revoked_client_is_refused(db):
    caller = make_caller("old", "read")
    assert caller.get("/api/v1/products/").status_code == 200
    api_client_revoke(client=ApiClient.objects.get(name="old"))
    response = caller.get("/api/v1/products/")
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"


def test_clients_are_throttled_per_token(db, settings):
    settings.STOCKROOM_API_THROTTLE_RATE = "3/min"
    first, second = make_caller("a", "read"), make_caller("b", "read")
    assert [first.get("/api/v1/products/").status_code for _ in range(3)] == [200] * 3
    response = first.get("/api/v1/products/")
    assert response.status_code == 429
    assert error_code(response) == "throttled"
    assert int(response["Retry-After"]) > 0
    assert response.json()["error"]["details"]["retry_after_seconds"] > 0
    # Another token has its own budget.
    assert second.get("/api/v1/products/").status_code == 200


def test_create_api_client_prints_the_key_alone_on_the_last_line(db):
    out = StringIO()
    call_command(
        "create_api_client", "shop", "--scope", "storefront", "--scope", "read", stdout=out
    )
    key = out.getvalue().strip().splitlines()[-1]
    client = ApiClient.objects.get(name="shop")
    assert client.scopes == ["read", "storefront"]
    # Only the hash is stored, and the key works.
    assert client.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in str(ApiClient.objects.values().get())
    assert Caller(key).get("/api/v1/availability/?sku=X").status_code == 200


def test_create_api_client_refuses_unknown_scopes_and_duplicate_names(db):
    with pytest.raises(CommandError):
        call_command("create_api_client", "x", "--scope", "admin", stdout=StringIO())
    call_command("create_api_client", "x", "--scope", "read", stdout=StringIO())
    with pytest.raises(CommandError):
        call_command("create_api_client", "x", "--scope", "read", stdout=StringIO())
    assert ApiClient.objects.count() == 1


def test_staff_can_revoke_a_client_in_the_admin(admin_client):
    caller = make_caller("old-shop", "storefront")
    client = ApiClient.objects.get(name="old-shop")
    page = admin_client.get("/admin/api/apiclient/")
    assert page.status_code == 200
    assert b"old-shop" in page.content
    assert client.key_hash.encode() not in page.content
    response = admin_client.post(
        "/admin/api/apiclient/", {"action": "revoke", "_selected_action": [str(client.pk)]}
    )
    assert response.status_code == 302
    client.refresh_from_db()
    assert (client.is_active, client.revoked_at is not None) == (False, True)
    assert caller.get("/api/v1/availability/?sku=X").status_code == 401
