"""The database's bundle guards, by raw SQL that bypasses the services (issue #16, item 1).

inventory/sql/bundle_guards.sql: no stock row for a bundle, no bundle as a
component (no nesting, so no cycles), a product keeps its kind while it has
stock rows / is a component / has components, quantity >= 1 (a CHECK).
"""

import threading
import uuid

import pytest
from django.db import IntegrityError, connection, connections, transaction

from inventory.models import BundleComponent, Inventory, Product
from warehouses.models import Warehouse

from ..factories import ProductFactory, WarehouseFactory
from .conftest import make_bundle

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the guards are PostgreSQL triggers"
)


def _sql(statement: str, params=()):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)


def _insert_row(product_id, warehouse_id):
    _sql(
        "INSERT INTO inventory_inventory (id, product_id, warehouse_id, on_hand, reserved, "
        "backorder_allowance, reorder_threshold, reorder_quantity, version, updated_at) "
        "VALUES (%s, %s, %s, 0, 0, 0, 0, 0, 0, now())",
        [uuid.uuid4(), product_id, warehouse_id],
    )


def _insert_component(bundle_id, component_id, quantity=1):
    _sql(
        "INSERT INTO inventory_bundlecomponent (id, bundle_id, component_id, quantity) "
        "VALUES (%s, %s, %s, %s)",
        [uuid.uuid4(), bundle_id, component_id, quantity],
    )


@pytest.fixture
def box(db):
    WarehouseFactory(code="BER")
    ProductFactory(sku="MUG")
    ProductFactory(sku="TEA")
    return make_bundle("BOX", {"MUG": 2})


def test_a_raw_insert_of_a_stock_row_for_a_bundle_is_refused(box):
    with pytest.raises(IntegrityError, match="a bundle has no stock rows"):
        _insert_row(box.pk, Warehouse.objects.get().pk)
    _insert_row(
        Product.objects.get(sku="MUG").pk, Warehouse.objects.get().pk
    )  # a plain one is fine
    assert list(Inventory.objects.values_list("product__sku", flat=True)) == ["MUG"]


def test_a_raw_nested_or_orphan_component_is_refused(box):
    other = make_bundle("OTHER", {"TEA": 1})
    with pytest.raises(IntegrityError, match="a component cannot be a bundle"):
        _insert_component(box.pk, other.pk)
    plain = Product.objects.get(sku="TEA")
    with pytest.raises(IntegrityError, match="is not one"):
        _insert_component(plain.pk, Product.objects.get(sku="MUG").pk)
    with pytest.raises(IntegrityError, match="bundle_component_qty_gt_0"):
        _insert_component(box.pk, plain.pk, quantity=0)
    with pytest.raises(IntegrityError, match=r"bundle_component_not_itself|cannot be a bundle"):
        _insert_component(box.pk, box.pk)
    assert BundleComponent.objects.count() == 2


def test_a_raw_flip_of_is_bundle_is_refused_when_it_would_break_the_model(box):
    mug = Product.objects.get(sku="MUG")
    with pytest.raises(IntegrityError, match="is a component"):
        _sql("UPDATE inventory_product SET is_bundle = true WHERE id = %s", [mug.pk])
    with pytest.raises(IntegrityError, match="has components"):
        _sql("UPDATE inventory_product SET is_bundle = false WHERE id = %s", [box.pk])
    tea = Product.objects.get(sku="TEA")
    _insert_row(tea.pk, Warehouse.objects.get().pk)
    with pytest.raises(IntegrityError, match="has stock rows"):
        _sql("UPDATE inventory_product SET is_bundle = true WHERE id = %s", [tea.pk])
    assert set(Product.objects.filter(is_bundle=True).values_list("sku", flat=True)) == {"BOX"}


@pytest.mark.django_db(transaction=True)
def test_a_flip_racing_a_row_insert_cannot_both_commit():
    """Two transactions: one makes SPOON a bundle, the other inserts SPOON's first
    stock row. Each waits for the other's lock at a barrier-free point, so they are
    ordered by the product row lock: exactly one commits, whichever goes first."""
    site = WarehouseFactory(code="BER")
    spoon = ProductFactory(sku="SPOON")
    inserted = threading.Event()
    outcomes: dict[str, str] = {}

    def insert_row():
        try:
            with transaction.atomic():
                _insert_row(spoon.pk, site.pk)
                inserted.set()
                done.wait(timeout=30)
            outcomes["row"] = "ok"
        except IntegrityError:
            outcomes["row"] = "refused"
        finally:
            inserted.set()
            connections.close_all()

    def flip():
        inserted.wait(timeout=30)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                # Blocks on the row's FOR SHARE until the insert commits, then sees it.
                cursor.execute(
                    "UPDATE inventory_product SET is_bundle = true WHERE id = %s", [spoon.pk]
                )
            outcomes["flip"] = "ok"
        except IntegrityError:
            outcomes["flip"] = "refused"
        finally:
            connections.close_all()

    done = threading.Event()
    first = threading.Thread(target=insert_row)
    second = threading.Thread(target=flip)
    first.start()
    second.start()
    # The flip is now waiting on the insert's share lock (or about to): let it commit.
    inserted.wait(timeout=30)
    _wait_for_lock_waiter()
    done.set()
    first.join(30)
    second.join(30)
    assert outcomes == {"row": "ok", "flip": "refused"}
    assert not Product.objects.get(sku="SPOON").is_bundle
    assert Inventory.objects.filter(product=spoon).count() == 1


def _wait_for_lock_waiter():
    """Until some backend waits on a lock (the flip behind the insert's FOR SHARE)."""
    import time

    for _ in range(3000):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.01)
    raise AssertionError("the flip never waited for the insert's lock")
