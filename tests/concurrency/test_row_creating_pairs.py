"""Every pair of row-creating callers, racing in opposite orders, never deadlocks.

Two threads start at a barrier; one creates (and then changes) the rows of X
then Y in a new warehouse, the other Y then X, each through one caller: a
purchase-order receipt, a cycle count, a transfer into the new warehouse, a bulk
receive, a reservation (both engines), single receives, adjustments and reorder
settings. Every caller creates rows through `stock_rows_create` in the global
lock order (`inventory.locks`), and a deadlock that happened all the same would
be retried: so no error other than the callers' own domain answers surfaces,
and the invariants hold afterwards. (On main, two receipts in opposite order
deadlocked and answered 500.)
"""

from __future__ import annotations

import itertools

import pytest

from backoffice.services import CountLine, cycle_count_apply
from inventory import errors, services
from inventory.models import Inventory
from inventory.services import ReserveLine, TransferLine
from purchasing import services as purchasing
from tests.conftest import assert_invariants, receive
from tests.factories import BackorderProductFactory, WarehouseFactory
from tests.purchasing.conftest import purchase_order
from tests.purchasing.factories import SupplierFactory

from .test_races import run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)

SKUS = ["X", "Y"]


@pytest.fixture
def reserve_engine(settings):
    """Overrides the package's two-engine parametrisation: the callers name theirs."""
    settings.STOCKROOM_RESERVE_ENGINE = "sql"
    return "sql"


def _po_receipt(order, i, ctx):
    return purchasing.purchase_order_receive(purchase_order=ctx["pos"][i], actor=f"u{i}")


def _cycle_count(order, i, ctx):
    return cycle_count_apply(
        warehouse="NEW",
        lines=[CountLine(sku, counted=3, expected_on_hand=0) for sku in order],
        reason="count",
        actor=f"u{i}",
        count_id=f"C-{i}",
    )


def _transfer(order, i, ctx):
    return services.stock_transfer(
        source="OLD",
        destination="NEW",
        lines=[TransferLine(sku, 2) for sku in order],
        actor=f"u{i}",
    )


def _bulk_receive(order, i, ctx):
    return services.stock_receive_bulk(
        source=["sku,warehouse,quantity", *(f"{sku},NEW,4" for sku in order)],
        actor=f"u{i}",
        reference=f"imp-{i}",
    )


def _reserve(order, i, ctx):
    return services.stock_reserve(
        order_id=f"O-{i}", lines=[ReserveLine(sku, "NEW", 1) for sku in order], actor=f"u{i}"
    )


def _receives(order, i, ctx):
    return [
        services.stock_receive(sku=sku, warehouse="NEW", quantity=1, actor=f"u{i}") for sku in order
    ]


def _adjusts(order, i, ctx):
    return [
        services.stock_adjust(sku=sku, warehouse="NEW", delta=1, reason="found", actor=f"u{i}")
        for sku in order
    ]


def _reorder_settings(order, i, ctx):
    return [
        services.inventory_set_reorder(sku=sku, warehouse="NEW", reorder_threshold=2 + i)
        for sku in order
    ]


CALLERS = {
    "po_receipt": _po_receipt,
    "cycle_count": _cycle_count,
    "transfer": _transfer,
    "bulk_receive": _bulk_receive,
    "reserve_sql": _reserve,
    "reserve_python": _reserve,
    "receives": _receives,
    "adjusts": _adjusts,
    "reorder_settings": _reorder_settings,
}

PAIRS = [
    pair
    for pair in itertools.combinations_with_replacement(CALLERS, 2)
    if set(pair) != {"reserve_sql", "reserve_python"}  # one engine per run
]


@pytest.mark.parametrize("first,second", PAIRS, ids=["+".join(pair) for pair in PAIRS])
def test_two_row_creating_callers_in_opposite_orders(first, second, settings):
    if "reserve_python" in (first, second):
        settings.STOCKROOM_RESERVE_ENGINE = "python"
    WarehouseFactory(code="OLD")
    WarehouseFactory(code="NEW")
    for sku in SKUS:
        BackorderProductFactory(sku=sku, backorder_limit=50)
        receive(sku, "OLD", 100)
    supplier = SupplierFactory(name="Acme")
    ctx = {
        "pos": [
            purchase_order(supplier, "NEW", {sku: 5 for sku in order}).number
            for order in (SKUS, SKUS[::-1])
        ]
    }
    callers = [CALLERS[first], CALLERS[second]]

    results = run_concurrently(2, lambda i: callers[i](SKUS if i == 0 else SKUS[::-1], i, ctx))

    for name, result in zip((first, second), results, strict=True):
        if isinstance(result, Exception):
            # A cycle count is a compare-and-set on the on hand it previewed (0):
            # another caller that put stock there first makes it StockChanged (409).
            assert name == "cycle_count" and isinstance(result, errors.StockChanged), (
                name,
                result,
            )
    assert Inventory.objects.filter(warehouse__code="NEW").count() == 2
    for row in Inventory.objects.select_related("product"):
        assert row.backorder_allowance == row.product.allowance
    assert_invariants()
