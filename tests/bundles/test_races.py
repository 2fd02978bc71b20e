"""Races around compositions (issue #16, item 1), interleaved deterministically:
a session holds its transaction open until the other is seen waiting for its lock
(tests/concurrency/helpers.py: no tuned sleeps)."""

import threading

import pytest
from django.db import connection, transaction

from inventory import errors, services
from inventory.models import BundleComponent, Inventory, Product

from ..concurrency.helpers import Session, wait_event, wait_until, waiting_for_a_lock
from ..factories import ProductFactory, WarehouseFactory
from .conftest import make_bundle

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks"),
]


def composition(sku):
    return dict(
        BundleComponent.objects.filter(bundle__sku=sku).values_list("component__sku", "quantity")
    )


def holding(body, inside: threading.Event, release: threading.Event):
    """A session body: run `body` in a transaction, then hold it open until `release`."""

    def run():
        with transaction.atomic():
            outcome = body()
            inside.set()
            assert release.wait(120)
        return outcome

    return run


def test_two_composition_changes_of_one_bundle_apply_one_after_the_other():
    for sku in ("MUG", "TEA"):
        ProductFactory(sku=sku)
    box = make_bundle("BOX", {"MUG": 2})
    inside, release = threading.Event(), threading.Event()
    first = Session(
        holding(
            lambda: services.bundle_set_components(
                product=Product.objects.get(sku="BOX"), components=[{"sku": "MUG", "quantity": 3}]
            ),
            inside,
            release,
        ),
        "first",
    ).begin()
    wait_event(inside, first, "the first change is made (uncommitted)")
    second = Session(
        lambda: services.bundle_set_components(
            product=Product.objects.get(sku="BOX"), components=[{"sku": "TEA", "quantity": 2}]
        ),
        "second",
    ).begin()
    wait_until(lambda: waiting_for_a_lock(second.pid), "the second waits for the bundle's lock")
    release.set()
    first.finish()
    second.finish()
    assert (first.error, second.error) == (None, None)
    assert composition("BOX") == {"TEA": 2}  # the later one, whole: never a mix
    assert Product.objects.get(pk=box.pk).is_bundle


def test_becoming_a_bundle_racing_a_first_stock_row_is_refused_after_it():
    """The row's creation holds the product FOR SHARE; the service's FOR UPDATE waits,
    then sees the row and refuses (409 bundle_conflict): never a bundle with stock."""
    WarehouseFactory(code="BER")
    ProductFactory(sku="MUG")
    ProductFactory(sku="SPOON")
    inside, release = threading.Event(), threading.Event()
    rows = Session(
        holding(lambda: services.stock_rows_create([("SPOON", "BER")]), inside, release), "rows"
    ).begin()
    wait_event(inside, rows, "the row is created (uncommitted)")
    flip = Session(
        lambda: services.bundle_set_components(
            product=Product.objects.get(sku="SPOON"), components=[{"sku": "MUG", "quantity": 1}]
        ),
        "flip",
    ).begin()
    wait_until(lambda: waiting_for_a_lock(flip.pid), "the flip waits for the product's lock")
    release.set()
    rows.finish()
    flip.finish()
    assert rows.error is None
    assert isinstance(flip.error, errors.BundleConflict)
    assert not Product.objects.get(sku="SPOON").is_bundle
    assert Inventory.objects.filter(product__sku="SPOON").count() == 1
    assert composition("SPOON") == {}
