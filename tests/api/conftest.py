"""API test helpers: clients with each scope, and a JSON caller."""

import json

import pytest
from rest_framework.test import APIClient

from api.services import api_client_create

from ..factories import ProductFactory, WarehouseFactory


class Caller:
    """Calls the API as one client: `caller.post(url, body)` -> response (with .json())."""

    def __init__(self, key: str | None):
        self.client = APIClient()
        self.key = key

    def _headers(self, headers):
        out = {"HTTP_AUTHORIZATION": f"Token {self.key}"} if self.key else {}
        for name, value in (headers or {}).items():
            out["HTTP_" + name.upper().replace("-", "_")] = value
        return out

    def get(self, url, params=None, headers=None):
        return self.client.get(url, params or {}, **self._headers(headers))

    def _send(self, method, url, body, headers, raw):
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        return getattr(self.client, method)(
            url, data=data, content_type="application/json", **self._headers(headers)
        )

    def post(self, url, body=None, headers=None, raw=None):
        return self._send("post", url, body, headers, raw)

    def patch(self, url, body=None, headers=None, raw=None):
        return self._send("patch", url, body, headers, raw)

    def put(self, url, body=None, headers=None, raw=None):
        return self._send("put", url, body, headers, raw)


def make_caller(name: str, *scopes: str) -> Caller:
    _, key = api_client_create(name=name, scopes=list(scopes))
    return Caller(key)


@pytest.fixture
def storefront(db):
    return make_caller("shop", "storefront")


@pytest.fixture
def operations(db):
    return make_caller("wms", "operations")


@pytest.fixture
def reader(db):
    return make_caller("feed", "read")


@pytest.fixture
def anonymous(db):
    return Caller(None)


@pytest.fixture
def stocked(db):
    """TSHIRT-M: 10 in Berlin, 4 in Hamburg."""
    from ..conftest import receive

    ProductFactory(sku="TSHIRT-M")
    WarehouseFactory(code="BER", latitude=52.52, longitude=13.405)
    WarehouseFactory(code="HAM", latitude=53.55, longitude=9.993)
    receive("TSHIRT-M", "BER", 10)
    receive("TSHIRT-M", "HAM", 4)


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]["code"]
