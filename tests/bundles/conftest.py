"""Bundles (issue #16): a gift box of 2 mugs and 1 tea tin, stocked in two warehouses."""

import pytest

from inventory import services

from ..api.conftest import make_caller
from ..conftest import receive
from ..factories import ProductFactory, WarehouseFactory


def make_bundle(sku: str, components: dict[str, int]):
    return services.product_create(
        sku=sku,
        name=sku,
        components=[{"sku": s, "quantity": q} for s, q in components.items()],
    )


@pytest.fixture
def operations(db):
    return make_caller("wms", "operations")


@pytest.fixture
def storefront(db):
    return make_caller("shop", "storefront")


@pytest.fixture
def manager_client(db):
    """Mia, inventory manager (may edit products, hence compositions)."""
    from django.test import Client

    from backoffice.roles import INVENTORY_MANAGER, roles_setup

    from ..factories import StaffUserFactory

    roles_setup()
    client = Client()
    client.force_login(StaffUserFactory(username="mia", groups=[INVENTORY_MANAGER]))
    return client


@pytest.fixture
def gift_box(db):
    """GIFT-BOX = 2 x MUG + 1 x TEA. BER: 7 mugs, 5 teas (3 boxes); HAM: 4 mugs, 1 tea (1 box)."""
    WarehouseFactory(code="BER", latitude=52.52, longitude=13.405)
    WarehouseFactory(code="HAM", latitude=53.55, longitude=9.993)
    ProductFactory(sku="MUG")
    ProductFactory(sku="TEA")
    receive("MUG", "BER", 7)
    receive("TEA", "BER", 5)
    receive("MUG", "HAM", 4)
    receive("TEA", "HAM", 1)
    return make_bundle("GIFT-BOX", {"MUG": 2, "TEA": 1})
