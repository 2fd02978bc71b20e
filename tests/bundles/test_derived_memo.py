"""The cached path memoises derived answers (issue #16, item 5) under the exact
string a request read for a SKU (a bundle's includes each component's entry),
the active warehouses and the low-stock setting. Anything that changes one of them gives a
fresh derivation, equal to the database path's answer; nothing else is reused."""

import json
import uuid
from datetime import timedelta

import pytest

from inventory import availability_cache, clock, selectors, services
from inventory.services import ReserveLine
from warehouses.models import Warehouse

from ..conftest import receive
from .test_availability import assert_same, summary

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh():
    clock.reset()
    selectors.forget_active_warehouses()
    yield
    clock.reset()
    selectors.forget_active_warehouses()


def test_an_unchanged_read_reuses_the_derived_answers(gift_box):
    selectors.availability_for_skus(["GIFT-BOX", "MUG"])  # fills the entries
    first = selectors.availability_for_skus(["GIFT-BOX", "MUG"])
    second = selectors.availability_for_skus(["GIFT-BOX", "MUG"])
    assert second["GIFT-BOX"] is first["GIFT-BOX"] and second["MUG"] is first["MUG"]


def warm(skus):
    """Fill the entries, then derive once from them (the memo now holds it)."""
    selectors.availability_for_skus(skus)
    return selectors.availability_for_skus(skus)


def test_a_component_change_derives_afresh(gift_box, django_capture_on_commit_callbacks):
    warm(["GIFT-BOX"])
    before = selectors.availability_for_skus(["GIFT-BOX"])["GIFT-BOX"]
    with django_capture_on_commit_callbacks(execute=True):
        receive("TEA", "HAM", 3)
    after = assert_same(["GIFT-BOX"])["GIFT-BOX"]
    assert (before.available, after.available) == (4, 5)


def test_the_low_stock_setting_is_part_of_the_key(gift_box, settings):
    settings.STOCKROOM_LOW_STOCK_UNITS = 10
    assert summary(warm(["GIFT-BOX"])["GIFT-BOX"])[:2] == (4, "low_stock")
    settings.STOCKROOM_LOW_STOCK_UNITS = 1
    assert summary(assert_same(["GIFT-BOX"])["GIFT-BOX"])[:2] == (4, "in_stock")


def test_the_active_warehouses_are_part_of_the_key(gift_box):
    assert warm(["GIFT-BOX"])["GIFT-BOX"].available == 4
    Warehouse.objects.filter(code="HAM").update(is_active=False)
    selectors.forget_active_warehouses()
    found = assert_same(["GIFT-BOX"])["GIFT-BOX"]
    assert [(w.code, w.available) for w in found.warehouses] == [("BER", 3)]


def test_entries_with_expiring_holds_are_derived_at_each_read(
    gift_box, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.stock_reserve(
            order_id="HOLD",
            lines=[ReserveLine("TEA", "BER", 5)],
            actor="c",
            expires_at=clock.now() + timedelta(seconds=1),
        )
    warm(["GIFT-BOX"])
    snap = availability_cache.get_many(["GIFT-BOX"])["GIFT-BOX"]
    assert snap.parts["TEA"].content is None  # depends on the instant: never memoised
    assert snap.parts["MUG"].content is not None
    assert snap.content is None  # nor is the bundle's answer, derived from TEA's
    assert selectors.availability_for_skus(["GIFT-BOX"])["GIFT-BOX"].available == 1
    clock.advance(3)
    assert assert_same(["GIFT-BOX"])["GIFT-BOX"].available == 4


def test_the_sku_is_part_of_the_key(warehouse):
    """Two entries whose strings are byte for byte the same (an entry left under a
    product's former SKU, say) still answer each with its own SKU."""
    meta = json.dumps({"product_id": str(uuid.uuid4()), "stock_policy": "normal", "allowance": 0})
    store = availability_cache._store()
    for sku in ("SAME-A", "SAME-B"):
        store.apply([(availability_cache._key(sku), meta, "", [("BER", 1, 7, "=", "")])])
    a = selectors.availability_for_skus(["SAME-A"])["SAME-A"]
    b = selectors.availability_for_skus(["SAME-B"])["SAME-B"]
    assert (a.sku, b.sku, a.available, b.available) == ("SAME-A", "SAME-B", 7, 7)
