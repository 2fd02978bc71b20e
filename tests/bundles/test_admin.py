"""Editing a bundle's composition in the back office (issue #16, item 1): an inline on
the product, saved through the service, with the service's refusals as form errors."""

import pytest
from django.urls import reverse

from inventory.models import BundleComponent, Product, ReservationLine

from ..factories import ProductFactory
from .conftest import make_bundle

pytestmark = pytest.mark.django_db


def inline(rows, initial=0):
    data = {
        "components-TOTAL_FORMS": str(len(rows)),
        "components-INITIAL_FORMS": str(initial),
        "components-MIN_NUM_FORMS": "0",
        "components-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        for key, value in row.items():
            data[f"components-{i}-{key}"] = value
    return data


PRODUCT = {
    "name": "Gift box",
    "category": "gifts",
    "stock_policy": "normal",
    "backorder_limit": "0",
}


@pytest.fixture
def parts(db):
    return ProductFactory(sku="MUG"), ProductFactory(sku="TEA")


def composition(sku):
    return dict(
        BundleComponent.objects.filter(bundle__sku=sku).values_list("component__sku", "quantity")
    )


def test_a_manager_creates_a_bundle_with_its_components(manager_client, parts):
    mug, tea = parts
    data = {
        "sku": "BOX",
        **PRODUCT,
        **inline(
            [
                {"component": str(mug.pk), "quantity": "2"},
                {"component": str(tea.pk), "quantity": "1"},
            ]
        ),
    }
    response = manager_client.post(reverse("admin:inventory_product_add"), data)
    assert response.status_code == 302, response.content[:2000]
    assert Product.objects.get(sku="BOX").is_bundle
    assert composition("BOX") == {"MUG": 2, "TEA": 1}
    page = manager_client.get(
        reverse("admin:inventory_product_change", args=[Product.objects.get(sku="BOX").pk])
    )
    assert b"Bundle components" in page.content


def test_a_nested_bundle_is_a_clear_form_error(manager_client, parts):
    other = make_bundle("OTHER", {"MUG": 1})
    data = {"sku": "BOX", **PRODUCT, **inline([{"component": str(other.pk), "quantity": "1"}])}
    response = manager_client.post(reverse("admin:inventory_product_add"), data)
    assert response.status_code == 200
    assert b"A component cannot be a bundle itself." in response.content
    assert not Product.objects.filter(sku="BOX").exists()


def test_a_held_bundle_keeps_its_composition_with_a_clear_error(manager_client, parts):
    box = make_bundle("BOX", {"MUG": 2})
    from inventory import services

    from ..factories import WarehouseFactory

    WarehouseFactory(code="BER")
    services.stock_receive(sku="MUG", warehouse="BER", quantity=2, actor="user:test")
    services.stock_reserve(
        order_id="O-1", lines=[services.ReserveLine("MUG", "BER", 2)], actor="user:test"
    )
    ReservationLine.objects.update(bundle=box)  # as a bundle order's lines are marked
    row = BundleComponent.objects.get(bundle=box)
    data = {
        "sku": "BOX",
        **PRODUCT,
        **inline(
            [
                {
                    "id": str(row.pk),
                    "bundle": str(box.pk),
                    "component": str(parts[0].pk),
                    "quantity": "3",
                }
            ],
            initial=1,
        ),
    }
    response = manager_client.post(reverse("admin:inventory_product_change", args=[box.pk]), data)
    assert response.status_code == 200
    assert b"Open reservations hold this bundle" in response.content
    assert composition("BOX") == {"MUG": 2}


def test_a_post_without_the_inline_leaves_the_composition_alone(manager_client, parts):
    box = make_bundle("BOX", {"MUG": 2})
    response = manager_client.post(
        reverse("admin:inventory_product_change", args=[box.pk]), {"sku": "BOX", **PRODUCT}
    )
    assert response.status_code == 302
    assert composition("BOX") == {"MUG": 2}
    assert Product.objects.get(sku="BOX").name == "Gift box"
