"""Stock rows are born with their product's allowance, whatever a policy change does meanwhile.

For every path that creates an inventory row, two interleavings with a
`product_set_stock_policy(normal)` of a backorder SKU (limit 20), forced with
events and lock waits (no sleeps):

* policy first: the change has updated the product and its existing rows but
  not committed when the row is created. The creator must wait for it and be
  born with allowance 0 (before the fix, `inventory_set_reorder` and
  `stock_receive_bulk` inserted the allowance they had read, 20, without waiting).
* creator first: the row is created (transaction still open) when the change
  starts. The change must wait for it and then update the new row too (before,
  it updated only the rows it could see and the new row kept 20).

Either way, afterwards every row's allowance is what its product's policy allows.
"""

from __future__ import annotations

import threading

import pytest
from django.db import transaction

from backoffice.services import CountLine, cycle_count_apply
from inventory import errors, services
from inventory.models import Inventory, Product
from inventory.services import ReserveLine, TransferLine
from purchasing import services as purchasing
from tests.conftest import assert_invariants, receive
from tests.factories import BackorderProductFactory, WarehouseFactory
from tests.purchasing.conftest import purchase_order
from tests.purchasing.factories import SupplierFactory

from .helpers import Session, blocked_by, wait_event, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reserve_engine(settings):
    """Overrides the package's two-engine parametrisation: the reserve paths
    below name their engine themselves."""
    settings.STOCKROOM_RESERVE_ENGINE = "sql"
    return "sql"


@pytest.fixture
def world():
    BackorderProductFactory(sku="BACK", backorder_limit=20)
    WarehouseFactory(code="OLD")
    WarehouseFactory(code="NEW")
    receive("BACK", "OLD", 10)
    return purchase_order(SupplierFactory(name="Acme"), "NEW", {"BACK": 5})


def _reserve(engine):
    def create(settings):
        settings.STOCKROOM_RESERVE_ENGINE = engine
        return lambda po: services.stock_reserve(
            order_id="O-1", lines=[ReserveLine("BACK", "NEW", 1)], actor="t"
        )

    return create


def _plain(fn):
    return lambda settings: fn


CREATORS = {
    "receive": _plain(
        lambda po: services.stock_receive(sku="BACK", warehouse="NEW", quantity=5, actor="t")
    ),
    "adjust": _plain(
        lambda po: services.stock_adjust(
            sku="BACK", warehouse="NEW", counted=2, reason="found", actor="t"
        )
    ),
    "transfer into a new warehouse": _plain(
        lambda po: services.stock_transfer(
            source="OLD", destination="NEW", lines=[TransferLine("BACK", 1)], actor="t"
        )
    ),
    "reserve (sql engine)": _reserve("sql"),
    "reserve (python engine)": _reserve("python"),
    "reorder settings": _plain(
        lambda po: services.inventory_set_reorder(sku="BACK", warehouse="NEW", reorder_threshold=3)
    ),
    "bulk receive": _plain(
        lambda po: services.stock_receive_bulk(
            source=["sku,warehouse,quantity", "BACK,NEW,4"], actor="t", reference="imp-1"
        )
    ),
    "bulk receive --skip-invalid": _plain(
        lambda po: services.stock_receive_bulk(
            source=["sku,warehouse,quantity", "BACK,NEW,4", "NOPE,NEW,1"],
            actor="t",
            reference="imp-1",
            atomic=False,
        )
    ),
    "purchase-order receipt": _plain(
        lambda po: purchasing.purchase_order_receive(purchase_order=po.number, actor="t")
    ),
    "cycle count": _plain(
        lambda po: cycle_count_apply(
            warehouse="NEW",
            lines=[CountLine("BACK", counted=2, expected_on_hand=0)],
            reason="count",
            actor="t",
            count_id="C-1",
        )
    ),
}


def change_policy_to_normal():
    return services.product_set_stock_policy(
        product=Product.objects.get(sku="BACK"), stock_policy="normal", backorder_limit=0
    )


def assert_rows_born_right(creator: Session) -> None:
    product = Product.objects.get(sku="BACK")
    rows = {r.warehouse.code: r for r in Inventory.objects.filter(product=product)}
    if creator.error is None:
        assert "NEW" in rows
    else:  # refused by the new policy (a reserve of a normal SKU with nothing on hand)
        assert isinstance(creator.error, errors.InsufficientStock), creator.error
    assert {code: r.backorder_allowance for code, r in rows.items()} == {
        code: product.allowance for code in rows
    }
    assert_invariants()


@pytest.mark.parametrize("path", list(CREATORS))
def test_a_row_created_while_a_policy_change_is_uncommitted_gets_the_new_allowance(
    world, settings, path
):
    create = CREATORS[path](settings)
    changed, release = threading.Event(), threading.Event()

    def change_and_hold():
        with transaction.atomic():
            change_policy_to_normal()
            changed.set()
            assert release.wait(120)

    policy = Session(change_and_hold, "policy change").begin()
    wait_event(changed, policy, "the policy change is made, uncommitted")
    creator = Session(lambda: create(world), "creator").begin()
    # The creator either waits for the policy change (the fix) or, if it does
    # not conflict with it, finishes: both states are awaited, never a time.
    wait_until(
        lambda: creator.done.is_set() or blocked_by(creator.pid, policy.pid),
        "the creator waits for the policy change or has finished",
    )
    release.set()
    policy.finish()
    creator.finish()
    assert policy.error is None, policy.error
    assert Product.objects.get(sku="BACK").allowance == 0
    assert_rows_born_right(creator)


@pytest.mark.parametrize("path", list(CREATORS))
def test_a_policy_change_made_while_a_new_row_is_uncommitted_reaches_that_row(
    world, settings, path
):
    create = CREATORS[path](settings)
    created, release = threading.Event(), threading.Event()

    def create_and_hold():
        with transaction.atomic():
            result = create(world)
            created.set()
            assert release.wait(120)
        return result

    creator = Session(create_and_hold, "creator").begin()
    wait_event(created, creator, "the row is created, uncommitted")
    policy = Session(change_policy_to_normal, "policy change").begin()
    wait_until(
        lambda: policy.done.is_set() or blocked_by(policy.pid, creator.pid),
        "the policy change waits for the creator or has finished",
    )
    release.set()
    creator.finish()
    policy.finish()
    assert creator.error is None, creator.error
    if path.startswith("reserve"):
        # The order holds 1 unit on backorder: the change is refused, the policy
        # stays backorder 20, and so does every row.
        assert isinstance(policy.error, errors.AllowanceBelowBackorders), policy.error
    else:
        assert policy.error is None, policy.error
        assert Product.objects.get(sku="BACK").allowance == 0
    assert_rows_born_right(creator)


def test_a_raw_insert_with_a_made_up_allowance_is_born_with_the_products(world):
    """The database sets the allowance (trigger of migration 0010), so raw SQL
    (seeds, benchmarks, a future path) cannot give a row a stale one either."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO inventory_inventory (id, product_id, warehouse_id, on_hand, reserved,
                backorder_allowance, reorder_threshold, reorder_quantity, version, updated_at)
            SELECT gen_random_uuid(), p.id, w.id, 0, 0, 999, 0, 0, 0, now()
            FROM inventory_product p, warehouses_warehouse w
            WHERE p.sku = 'BACK' AND w.code = 'NEW'
            """
        )
    assert (
        Inventory.objects.get(product__sku="BACK", warehouse__code="NEW").backorder_allowance == 20
    )
