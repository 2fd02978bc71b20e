"""Each requested SKU is read as ONE string (issue #16, item 5): a bundle's entry
with its components' entries appended by the read script, in the same Lua call,
and the answer memoised per (that string, active warehouses, low-stock
setting). A hit is one round trip and decodes nothing; any change to the
bundle's or a component's entry is a different string, so the very next read
derives afresh; a bundle is never read torn between two states of its
components."""

import threading

import pytest
from django.db import connection

from inventory import availability_cache, selectors, services
from inventory.models import Inventory
from inventory.services import ReserveLine
from inventory.services.ledger import CommittedChange, CommittedChanges

from ..conftest import receive
from ..factories import ProductFactory, WarehouseFactory
from .conftest import make_bundle
from .test_availability import assert_same, summary

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh():
    selectors.forget_active_warehouses()
    yield
    selectors.forget_active_warehouses()


def entry_fields(sku):
    client = availability_cache._store().client
    return {k.decode(): v.decode() for k, v in client.hgetall(availability_cache._key(sku)).items()}


def counters():
    stats = availability_cache.STATS
    return stats["round_trips"], stats["hits"], stats["misses"]


def delta(before):
    return tuple(after - was for after, was in zip(counters(), before, strict=True))


def test_a_warm_read_is_one_round_trip_and_decodes_nothing(gift_box):
    skus = ["GIFT-BOX", "MUG", "TEA"]
    selectors.availability_for_skus(skus)  # fills the entries
    first = selectors.availability_for_skus(skus)  # derives and memoises
    availability_cache._DECODED.clear()
    before = counters()
    second = selectors.availability_for_skus(skus)
    assert delta(before) == (1, 3, 0)  # one round trip, three hits, no miss
    assert availability_cache._DECODED == {}  # answered per string read, nothing decoded
    assert all(second[sku] is first[sku] for sku in skus)


def test_a_bundle_entry_carries_its_composition_for_the_read_script(gift_box):
    selectors.availability_for_skus(["GIFT-BOX", "MUG"])
    assert entry_fields("GIFT-BOX")["c"] == "MUG,TEA"
    assert "c" not in entry_fields("MUG")
    raw = availability_cache._store().read([availability_cache._key("GIFT-BOX")])[0][0]
    head, mug, tea = raw.split(b"\1")
    assert b"MUG,TEA" in head.split(b"\0")  # the bundle's own entry, `c` among its fields
    mine = availability_cache._store().read(
        [availability_cache._key("MUG"), availability_cache._key("TEA")]
    )[0]
    assert [mug, tea] == mine  # the components' entries, exactly as read on their own


def test_a_component_write_through_changes_the_answer_on_the_very_next_read(
    gift_box, django_capture_on_commit_callbacks
):
    selectors.availability_for_skus(["GIFT-BOX"])
    before_answer = selectors.availability_for_skus(["GIFT-BOX"])["GIFT-BOX"]  # memoised
    with django_capture_on_commit_callbacks(execute=True):
        services.stock_reserve(order_id="O-1", lines=[ReserveLine("TEA", "BER", 4)], actor="c")
    before = counters()
    after = selectors.availability_for_skus(["GIFT-BOX"])["GIFT-BOX"]
    assert delta(before) == (1, 1, 0)  # read from the write-through, no refill
    # BER: min(7 // 2, 1 // 1) = 1 (was 3); HAM: 1.
    assert (before_answer.available, after.available) == (4, 2)
    assert summary(after) == summary(selectors.availability_from_database(["GIFT-BOX"])["GIFT-BOX"])


def test_a_plain_sku_write_through_changes_the_answer_on_the_very_next_read(
    gift_box, django_capture_on_commit_callbacks
):
    selectors.availability_for_skus(["MUG"])
    assert selectors.availability_for_skus(["MUG"])["MUG"].available == 11
    with django_capture_on_commit_callbacks(execute=True):
        receive("MUG", "HAM", 2)
    before = counters()
    assert selectors.availability_for_skus(["MUG"])["MUG"].available == 13
    assert delta(before) == (1, 1, 0)


def test_a_composition_change_to_a_component_never_read_is_read_correctly(
    gift_box, django_capture_on_commit_callbacks
):
    selectors.availability_for_skus(["GIFT-BOX"])
    assert selectors.availability_for_skus(["GIFT-BOX"])["GIFT-BOX"].available == 4
    ProductFactory(sku="SPOON")
    with django_capture_on_commit_callbacks(execute=True):
        receive("SPOON", "BER", 2)
        services.bundle_set_components(
            product=gift_box,
            components=[{"sku": "MUG", "quantity": 1}, {"sku": "SPOON", "quantity": 1}],
        )
    found = assert_same(["GIFT-BOX"])["GIFT-BOX"]
    assert [(w.code, w.available) for w in found.warehouses] == [("BER", 2)]
    assert entry_fields("GIFT-BOX")["c"] == "MUG,SPOON"
    before = counters()
    again = selectors.availability_for_skus(["GIFT-BOX"])["GIFT-BOX"]
    assert delta(before) == (1, 1, 0)  # the new components come with the bundle's entry
    assert summary(again) == summary(found)


def test_an_entry_filled_without_its_composition_field_is_refilled(gift_box):
    """An entry written before entries kept `c` (or with `c` removed): the read
    script cannot append its components, so it is read as a miss and refilled."""
    expected = summary(selectors.availability_for_skus(["GIFT-BOX"])["GIFT-BOX"])
    availability_cache._store().client.hdel(availability_cache._key("GIFT-BOX"), "c")
    before = counters()
    assert summary(selectors.availability_for_skus(["GIFT-BOX"])["GIFT-BOX"]) == expected
    assert delta(before) == (1, 0, 3)  # the bundle, then its components, from the database
    assert entry_fields("GIFT-BOX")["c"] == "MUG,TEA"
    before = counters()
    assert summary(selectors.availability_for_skus(["GIFT-BOX"])["GIFT-BOX"]) == expected
    assert delta(before) == (1, 1, 0)


def test_a_component_read_with_several_bundles_and_on_its_own_agrees(gift_box):
    """MUG is part of two bundles and requested itself: every copy in the
    strings read is the same content (the read script reads each hash once)."""
    make_bundle("MUG-PAIR", {"MUG": 2})
    skus = ["GIFT-BOX", "MUG-PAIR", "MUG"]
    selectors.availability_for_skus(skus)
    raws = availability_cache._store().read([availability_cache._key(s) for s in skus])[0]
    assert raws[0].split(b"\1")[1] == raws[1].split(b"\1")[1] == raws[2]
    found = assert_same(skus)
    assert [found[s].available for s in skus] == [4, 5, 11]


@pytest.mark.django_db(transaction=True)
def test_a_bundle_is_never_read_torn_between_two_states_of_its_components():
    """A race: one thread publishes commits that each move two components in
    opposite directions (BOX = 2 x MUG + 1 x TEA; state A: MUG 2, TEA 0; state B:
    MUG 0, TEA 1; zero boxes in both, one box in a torn mix of A's MUG and B's
    TEA), readers read the bundle meanwhile. Each commit's write-through is one
    Lua call and each read is one, so no read may ever see one box.

    The commits are published through the real write-through listener with
    changes built here: no stock operation moves two SKUs in opposite
    directions in one commit, and the property under test is the read model's."""
    WarehouseFactory(code="BER")
    ProductFactory(sku="MUG")
    ProductFactory(sku="TEA")
    receive("MUG", "BER", 2)
    receive("TEA", "BER", 1)
    services.stock_reserve(order_id="T", lines=[ReserveLine("TEA", "BER", 1)], actor="c")
    make_bundle("BOX", {"MUG": 2, "TEA": 1})
    assert selectors.availability_for_skus(["BOX"])["BOX"].available == 0  # fills state A
    rows = {
        row.product.sku: row
        for row in Inventory.objects.select_related("product", "warehouse").filter(
            product__sku__in=["MUG", "TEA"]
        )
    }

    def change(sku, available, version):
        row = rows[sku]
        return CommittedChange(
            inventory_id=row.pk,
            product_id=row.product_id,
            warehouse_id=row.warehouse_id,
            type="ADJUST",
            on_hand=available,
            reserved=0,
            version=version,
            sku=sku,
            warehouse_code="BER",
        )

    readers, most_flips = 3, 20_000
    start = threading.Barrier(readers + 1)
    done = threading.Event()
    seen: list[list[tuple]] = [[] for _ in range(readers)]
    errors: list[BaseException] = []

    def both_states_seen():
        return all({parts for _, parts in mine[-50:]} == {(2, 0), (0, 1)} for mine in seen)

    def write():
        start.wait(60)
        version = max(row.version for row in rows.values()) + 1
        try:
            # Until every reader has read both states lately (reads ran between
            # writes), however the threads are scheduled.
            for i in range(most_flips):
                if i % 2 == 0 and both_states_seen():
                    break
                mug, tea = (0, 1) if i % 2 == 0 else (2, 0)
                availability_cache.apply_committed_changes(
                    CommittedChanges([change("MUG", mug, version), change("TEA", tea, version)])
                )
                version += 1
        finally:
            done.set()

    def read(mine):
        start.wait(60)
        try:
            while not done.is_set():
                box = selectors.availability_for_skus(["BOX"])["BOX"]
                snap = availability_cache.read_cached(["BOX"])["BOX"]
                parts = (snap.parts["MUG"].warehouses["BER"], snap.parts["TEA"].warehouses["BER"])
                mine.append((box.available, parts))
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=read, args=(seen[i],)) for i in range(readers)]
    threads.append(threading.Thread(target=write))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    observed = [item for mine in seen for item in mine]
    assert {available for available, _ in observed} == {0}
    assert {parts for _, parts in observed} <= {(2, 0), (0, 1)}  # never a torn pair
    assert both_states_seen()  # the reads ran between the writes
