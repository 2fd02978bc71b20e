"""The limits every batch body shares, answered alike by each batch endpoint:
at most N items (counted before any item is validated) and, for orders, each
order id once."""

import pytest

from .conftest import error_code

pytestmark = pytest.mark.django_db

RESERVE = "/api/v1/reservations/batch/"
CONFIRM = "/api/v1/reservations/batch/confirm/"
PRODUCTS = "/api/v1/products/bulk/"


def reserve_order(order_id):
    return {"order_id": order_id, "lines": [{"sku": "TSHIRT-M", "quantity": 1, "warehouse": "BER"}]}


def product(sku):
    return {"sku": sku, "name": sku}


def refusal(response):
    assert (response.status_code, error_code(response)) == (400, "validation_error")
    return response.json()["error"]["details"]


@pytest.mark.parametrize(
    ("caller", "url", "orders"),
    [
        ("storefront", RESERVE, [reserve_order(x) for x in "xyxzy"]),
        ("storefront", CONFIRM, [{"order_id": x} for x in "xyxzy"]),
    ],
    ids=["reserve", "confirm"],
)
def test_an_order_id_twice_in_a_batch_is_refused_naming_the_repeats(
    request, stocked, caller, url, orders
):
    response = request.getfixturevalue(caller).post(url, {"orders": orders})
    assert refusal(response) == {"orders": ["Each order id once per batch; repeated: x, y."]}


@pytest.mark.parametrize(
    ("caller", "url", "setting", "field", "item"),
    [
        ("storefront", RESERVE, "STOCKROOM_MAX_BATCH_ORDERS", "orders", reserve_order),
        ("storefront", CONFIRM, "STOCKROOM_MAX_BATCH_ORDERS", "orders", lambda i: {"order_id": i}),
        ("operations", PRODUCTS, "STOCKROOM_MAX_BULK_PRODUCTS", "products", product),
    ],
    ids=["reserve", "confirm", "products"],
)
def test_a_batch_over_its_limit_is_refused_before_any_item_is_checked(
    request, stocked, settings, caller, url, setting, field, item
):
    setattr(settings, setting, 2)
    # The third item is invalid too: the count is what answers.
    items = [item("a"), item("b"), {"bad": True}]
    response = request.getfixturevalue(caller).post(url, {field: items})
    assert refusal(response) == {field: ["At most 2 per call."]}
    # At the limit, the items are checked one by one.
    response = request.getfixturevalue(caller).post(url, {field: items[1:]})
    assert list(refusal(response)[field]) == ["1"]
