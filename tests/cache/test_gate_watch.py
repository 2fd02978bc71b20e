"""The sold-out gate is asked only for SKUs this process has seen low, or that
the database just refused (availability_cache's watch list, issue #18 goal 2).

What the gate answers is unchanged (tests/cache/test_availability_cache.py,
tests/cache/test_flash_sale.py); these tests pin when it is asked: never for a
plentiful SKU (no Redis round trip before the reservation), always once a SKU
is low, and after one refusal by the database for a SKU sold out by another
process. Write-throughs run their after-commit callbacks.
"""

import pytest

from inventory import availability_cache, errors, services
from inventory.services import ReserveLine

from ..conftest import receive
from ..factories import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["sql", "python"])
def engine(request, settings):
    settings.STOCKROOM_RESERVE_ENGINE = request.param
    return request.param


def reserve(order_id, sku, qty=1):
    return services.stock_reserve(
        order_id=order_id, lines=[ReserveLine(sku, "BER", qty)], actor="c"
    )


def gate_reads():
    return availability_cache.STATS["round_trips"]


def test_a_plentiful_sku_is_reserved_without_asking_the_gate(
    warehouse, engine, django_capture_on_commit_callbacks
):
    ProductFactory(sku="PLENTY")
    with django_capture_on_commit_callbacks(execute=True):
        receive("PLENTY", "BER", 100)
    availability_cache.get_many(["PLENTY"])
    before, skipped = gate_reads(), availability_cache.STATS["gate_skipped"]

    with django_capture_on_commit_callbacks(execute=True):
        reserve("o1", "PLENTY", 10)

    assert gate_reads() == before  # no Redis read before the reservation
    assert availability_cache.STATS["gate_skipped"] == skipped + 1


def test_a_low_sku_is_watched_and_the_gate_refuses_it_without_stock_work(
    warehouse, engine, django_capture_on_commit_callbacks, django_assert_num_queries
):
    ProductFactory(sku="HOT")
    with django_capture_on_commit_callbacks(execute=True):
        receive("HOT", "BER", 100)
        reserve("big", "HOT", 97)  # its write-through: 3 left, at or below the mark
    availability_cache.get_many(["HOT"])
    with django_capture_on_commit_callbacks(execute=True):
        reserve("last", "HOT", 3)
    before = gate_reads()

    with django_assert_num_queries(1), pytest.raises(errors.SoldOut):  # the order-id look-up
        reserve("late", "HOT")
    assert gate_reads() == before + 1


def test_a_sku_sold_out_elsewhere_costs_one_database_refusal_then_the_gate_refuses(
    warehouse, engine, django_capture_on_commit_callbacks, django_assert_num_queries
):
    """Another process sold the last unit: this one never saw the SKU low. Its
    first order goes to the database, whose refusal puts the SKU on the watch
    list; the next is refused by the gate."""
    ProductFactory(sku="HOT")
    with django_capture_on_commit_callbacks(execute=True):
        receive("HOT", "BER", 1)
        reserve("first", "HOT")
    availability_cache.get_many(["HOT"])
    availability_cache._WATCHED.clear()  # as in a process that saw none of it

    with pytest.raises(errors.InsufficientStock) as refused:
        reserve("second", "HOT")
    assert type(refused.value) is errors.InsufficientStock  # the database decided

    with django_assert_num_queries(1), pytest.raises(errors.SoldOut):
        reserve("third", "HOT")


def test_a_watched_sku_the_gate_reads_plentiful_leaves_the_list(
    warehouse, engine, django_capture_on_commit_callbacks
):
    ProductFactory(sku="BACK")
    with django_capture_on_commit_callbacks(execute=True):
        receive("BACK", "BER", 2)  # low: watched
    availability_cache.get_many(["BACK"])
    with django_capture_on_commit_callbacks(execute=True):
        receive("BACK", "BER", 500)  # restocked

    before = gate_reads()
    with django_capture_on_commit_callbacks(execute=True):
        reserve("o1", "BACK")
    assert gate_reads() == before + 1  # asked once, read plentiful
    with django_capture_on_commit_callbacks(execute=True):
        reserve("o2", "BACK")
    assert gate_reads() == before + 1  # not asked again


def test_an_order_with_one_plentiful_line_skips_the_gate(
    warehouse, django_capture_on_commit_callbacks
):
    """The gate refuses only when every line is sold out: one line not watched is
    enough to let the database decide."""
    ProductFactory(sku="HOT")
    ProductFactory(sku="PLENTY")
    with django_capture_on_commit_callbacks(execute=True):
        receive("PLENTY", "BER", 100)
    availability_cache.get_many(["HOT", "PLENTY"])  # HOT: no stock at all, watched
    before = gate_reads()

    with pytest.raises(errors.InsufficientStock) as refused:
        services.stock_reserve(
            order_id="o1",
            lines=[ReserveLine("HOT", "BER", 1), ReserveLine("PLENTY", "BER", 1)],
            actor="c",
        )
    assert type(refused.value) is errors.InsufficientStock
    assert gate_reads() == before
