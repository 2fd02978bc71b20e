"""Issue #20 item 2: demo data a newcomer can trust and the docs can rely on.

Names fit their category, and the documented SKUs (README "Demo data",
docs/API.md's examples) exist with the documented policies and stock.
"""

import io

import pytest
from django.core.management import call_command

from inventory import selectors
from inventory.demo import CATEGORIES, NOUNS_BY_CATEGORY, SHOWCASE, demo_sku
from inventory.models import Inventory, Product

pytestmark = pytest.mark.django_db


def seed(skus=50, warehouses=3):
    call_command("seed_demo", "--skus", str(skus), "--warehouses", str(warehouses),
                 "--no-progress", stdout=io.StringIO())  # fmt: skip


def test_every_demo_name_fits_its_category():
    seed(skus=200)
    products = list(Product.objects.values_list("sku", "name", "category"))
    assert len(products) == 200
    for sku, name, category in products:
        assert category in CATEGORIES, sku
        nouns = [noun.lower() for noun in NOUNS_BY_CATEGORY[category]]
        assert any(noun in name.lower() for noun in nouns), (sku, name, category)
    assert len({category for _, _, category in products}) == len(CATEGORIES)


def test_the_documented_demo_skus_have_the_documented_stock():
    seed()
    rows = {
        (sku, code): (on_hand, threshold)
        for sku, code, on_hand, threshold in Inventory.objects.filter(
            product__sku__in=[demo_sku(n) for n in range(len(SHOWCASE))]
        ).values_list("product__sku", "warehouse__code", "on_hand", "reorder_threshold")
    }
    for n, item in enumerate(SHOWCASE):
        sku = demo_sku(n)
        product = Product.objects.get(sku=sku)
        assert (product.name, product.stock_policy) == (item.name, item.stock_policy)
        for code in ("BER", "HAM", "MUC"):  # every row exists, stocked or not
            threshold = item.reorder.get(code, (0, 0))[0]
            assert rows[(sku, code)] == (item.stock.get(code, 0), threshold), (sku, code)
    # What README.md and docs/API.md say about them.
    found = selectors.availability_for_skus([demo_sku(n) for n in range(6)])
    tshirt = found["DEMO-000000"]
    assert (tshirt.available, tshirt.status) == (14, "in_stock")
    assert {w.code: w.available for w in tshirt.warehouses if w.available} == {"BER": 10, "HAM": 4}
    assert found["DEMO-000001"].status == "backorder"
    assert (found["DEMO-000002"].available, found["DEMO-000002"].status) == (62, "in_stock")
    assert (found["DEMO-000003"].available, found["DEMO-000003"].status) == (3, "low_stock")
    assert found["DEMO-000004"].status == "preorder"
    assert found["DEMO-000005"].status == "out_of_stock"


def test_seeding_again_leaves_the_documented_skus_alone():
    seed()
    Inventory.objects.filter(product__sku="DEMO-000000", warehouse__code="BER").update(
        reorder_threshold=3
    )
    before = list(
        Inventory.objects.order_by("id").values_list("id", "on_hand", "reorder_threshold")
    )
    seed()
    after = list(Inventory.objects.order_by("id").values_list("id", "on_hand", "reorder_threshold"))
    assert after == before
