"""Hot statements are prepared once per connection (`inventory.prepared`): a
read-model miss's load (one text for any number of SKUs) and the stock
functions' calls. Django opens connections with prepared statements disabled;
the ORM's own queries stay unprepared. Behind PgBouncer in transaction mode
(`DISABLE_SERVER_SIDE_CURSORS`) nothing is prepared and the answers are the same."""

import pytest
from django.db import connection

from inventory import availability_cache, services
from inventory.models import Product
from inventory.services import ReserveLine

from ..conftest import receive

pytestmark = pytest.mark.django_db


def prepared(like: str = "%") -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement FROM pg_prepared_statements WHERE NOT from_sql AND statement LIKE %s",
            [like],
        )
        return [row[0] for row in cursor.fetchall()]


def prepared_loads() -> list[str]:
    return prepared("%FROM inventory_product p%")


@pytest.fixture
def three_skus(product, warehouse, other_warehouse, django_capture_on_commit_callbacks):
    from tests.factories import ProductFactory

    skus = [product.sku, ProductFactory().sku, ProductFactory().sku]
    with django_capture_on_commit_callbacks(execute=True):
        for n, sku in enumerate(skus):
            receive(sku, "BER", 10 + n)
    return skus


def test_misses_of_any_size_share_one_prepared_statement(three_skus):
    loaded_one = availability_cache.load_from_database(three_skus[:1])
    loaded_three = availability_cache.load_from_database(three_skus)
    assert loaded_one[three_skus[0]].warehouses == {"BER": 10}
    assert {sku: snap.warehouses for sku, snap in loaded_three.items()} == {
        three_skus[0]: {"BER": 10},
        three_skus[1]: {"BER": 11},
        three_skus[2]: {"BER": 12},
    }
    assert len(prepared_loads()) == 1


def test_without_server_side_statements_nothing_is_prepared(three_skus, settings):
    connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = True
    try:
        loaded = availability_cache.load_from_database(three_skus)
        assert prepared_loads() == []
    finally:
        connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] = False
    assert {sku: snap.warehouses for sku, snap in loaded.items()} == {
        three_skus[0]: {"BER": 10},
        three_skus[1]: {"BER": 11},
        three_skus[2]: {"BER": 12},
    }


def test_an_unknown_sku_is_simply_absent(three_skus):
    assert set(availability_cache.load_from_database([three_skus[0], "NO-SUCH-SKU"])) == {
        three_skus[0]
    }


def test_the_orm_is_not_prepared_on_its_own(three_skus):
    availability_cache.load_from_database(three_skus)  # raises the connection's threshold
    for _ in range(10):
        assert Product.objects.filter(sku=three_skus[0]).count() == 1
    assert len(prepared()) == 1  # the load only


def test_the_reserve_function_call_is_prepared(three_skus):
    for n in range(2):
        result = services.stock_reserve(
            order_id=f"prep-{n}", lines=[ReserveLine(three_skus[0], "BER", 1)], actor="test"
        )
        assert result.created
    assert len(prepared("%stockroom_reserve_orders%")) == 1
