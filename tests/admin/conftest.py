"""Back-office fixtures: the roles, one logged-in client per role, stock to work on."""

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from backoffice.models import StaffWarehouse
from backoffice.roles import INVENTORY_MANAGER, PURCHASING, WAREHOUSE_STAFF, roles_setup
from inventory.models import Inventory

from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, StaffUserFactory


@pytest.fixture(autouse=True)
def _ledger_matches_balances_after_each_test(db):
    yield
    assert_invariants()


@pytest.fixture
def roles(db):
    roles_setup()


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff_user(roles, warehouse, other_warehouse):
    """Wanda, warehouse staff working at BER and HAM (with none she could act nowhere)."""
    wanda = StaffUserFactory(username="wanda", groups=[WAREHOUSE_STAFF])
    for site in (warehouse, other_warehouse):
        StaffWarehouse.objects.create(user=wanda, warehouse=site)
    return wanda


@pytest.fixture
def staff_client(staff_user):
    return _client_for(staff_user)


@pytest.fixture
def buyer_client(roles):
    return _client_for(StaffUserFactory(username="bert", groups=[PURCHASING]))


@pytest.fixture
def manager_client(roles):
    return _client_for(StaffUserFactory(username="mia", groups=[INVENTORY_MANAGER]))


@pytest.fixture
def no_role_client(roles):
    """Staff (can log in to the admin) but in no group."""
    return _client_for(StaffUserFactory(username="nora"))


@pytest.fixture
def superuser_client(db):
    return _client_for(StaffUserFactory(username="root", is_superuser=True))


@pytest.fixture
def stocked(warehouse, other_warehouse):
    """Three SKUs with stock in BER (10, 20, 30) and one of them in HAM (5)."""
    for n, sku in enumerate(["A-1", "B-2", "C-3"], start=1):
        ProductFactory(sku=sku, name=f"Product {sku}")
        receive(sku, "BER", 10 * n)
    receive("A-1", "HAM", 5)
    return ["A-1", "B-2", "C-3"]


def on_hand(sku: str, code: str) -> int:
    row = Inventory.objects.filter(product__sku=sku, warehouse__code=code).first()
    return row.on_hand if row else 0


def message_texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]
