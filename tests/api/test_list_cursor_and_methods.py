"""A cursor whose position the database cannot hold is a 400; an unimplemented method is a 405."""

import base64

import pytest

from .conftest import Caller, error_code

pytestmark = pytest.mark.django_db


def cursor(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("url", ["/api/v1/products/", "/api/v1/warehouses/"])
@pytest.mark.parametrize("raw", [b"p=%00", b"p=A%00B", b"r=1&p=%00", b"o=1&p=BER%00"])
def test_a_cursor_position_holding_a_nul_is_400(reader, stocked, url, raw):
    response = reader.get(url, {"cursor": cursor(raw)})
    assert response.status_code == 400, response.content
    assert error_code(response) == "validation_error"
    assert response.json()["error"]["details"] == {"cursor": ["Invalid cursor."]}


def test_only_the_nul_makes_a_position_invalid(reader, stocked):
    bad = reader.get("/api/v1/warehouses/", {"cursor": cursor(b"p=BER%00")})
    assert bad.status_code == 400, bad.content
    good = reader.get("/api/v1/warehouses/", {"cursor": cursor(b"p=BER")})
    assert good.status_code == 200, good.content
    assert [w["code"] for w in good.json()["results"]] == ["HAM"]


# (caller fixture, method, url): each view lacks that method for every client.
UNIMPLEMENTED = [
    ("storefront", "get", "/api/v1/reservations/"),
    ("operations", "get", "/api/v1/reservations/"),
    ("operations", "get", "/api/v1/stock/receive/"),
    ("reader", "get", "/api/v1/stock/receive/"),
    ("storefront", "post", "/api/v1/availability/TSHIRT-M/"),
    ("reader", "post", "/api/v1/availability/TSHIRT-M/"),
    ("storefront", "post", "/api/v1/ping/"),
    ("reader", "post", "/api/v1/ping/"),
    ("reader", "delete", "/api/v1/products/"),
    ("storefront", "put", "/api/v1/warehouses/BER/"),
]


def send(caller, method: str, url: str):
    headers = {"HTTP_AUTHORIZATION": f"Token {caller.key}"} if caller.key else {}
    if method == "get":
        return caller.client.get(url, **headers)
    return getattr(caller.client, method)(url, "{}", content_type="application/json", **headers)


@pytest.mark.parametrize(("who", "method", "url"), UNIMPLEMENTED)
def test_an_unimplemented_method_is_405_for_any_client(request, stocked, who, method, url):
    response = send(request.getfixturevalue(who), method, url)
    assert response.status_code == 405, response.content
    assert error_code(response) == "method_not_allowed"
    assert method.upper() not in response["Allow"]
    # Without a (valid) token the same call is still refused first.
    anonymous = send(Caller(None), method, url)
    assert anonymous.status_code == 401, anonymous.content
    assert error_code(anonymous) == "not_authenticated"


def test_scopes_still_decide_for_the_methods_a_view_has(reader, storefront, stocked):
    assert reader.get("/api/v1/reservations/").status_code == 405
    assert reader.post("/api/v1/reservations/", {}).status_code == 403
    assert storefront.get("/api/v1/stock/receive/").status_code == 405
    assert storefront.post("/api/v1/stock/receive/", {}).status_code == 403
