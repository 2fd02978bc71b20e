"""The "unchanged" protocol of the read (issue #16, item 5): each entry carries a
stamp from a store-wide sequence (READ_SCRIPT's `s`, dropped by every write),
the client sends, per requested SKU, the stamps of the string it derived its
memoised answer from (a bundle's: its own and each component's), and the read
script answers "unchanged" (nothing read but the stamps, nothing sent) only if
every one of them is still current. A hit stays one round trip and the answer
is derived only from what one atomic script call saw.

Real Redis throughout; the write-throughs are the services' after-commit
callbacks, executed. Each exactness test is paired with a planted fault (a read
script that ignores the component stamps, stamps without an epoch) to show it
can fail."""

import json
import multiprocessing
from datetime import timedelta

import pytest
from django.db import connections

from inventory import availability_cache, clock, selectors, services
from inventory.services import ReserveLine

from ..conftest import receive
from ..factories import ProductFactory, WarehouseFactory
from .conftest import make_bundle
from .test_availability import summary

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh():
    clock.reset()
    selectors.forget_active_warehouses()
    selectors._DERIVED.clear()
    yield
    clock.reset()
    selectors.forget_active_warehouses()
    selectors._DERIVED.clear()
    availability_cache.reset_store()  # a planted script is never left registered


def read(skus):
    return selectors.availability_for_skus(skus)


def database(sku):
    return summary(selectors.availability_from_database([sku])[sku])


def replies(skus):
    """What the read script answers this process for `skus` with the tokens it
    holds: b'=' for "unchanged", else the string (its token stripped)."""
    tokens = [selectors._DERIVED[sku][0] if sku in selectors._DERIVED else "" for sku in skus]
    raw, _ = availability_cache._store().read(
        [availability_cache._key(sku) for sku in skus], tokens=tokens
    )
    return [reply if reply == b"=" else reply.partition(b"\2")[2] for reply in raw]


def warm(skus):
    read(skus)  # fills
    return read(skus)  # derives from the cached strings and memoises per token


def plant(monkeypatch, old, new):
    """Register a faulty read script (the fault planted), for this test only."""
    assert old in availability_cache.READ_SCRIPT
    monkeypatch.setattr(
        availability_cache, "READ_SCRIPT", availability_cache.READ_SCRIPT.replace(old, new)
    )
    availability_cache.reset_store()


IGNORE_COMPONENTS = (  # the component's stamp taken from the token, not from its entry
    "local part = stamp(sub(token, at, gap - 1))",
    "local part = sub(token, gap + 1, (find(token, ' ', gap + 1, true) or (#token + 1)) - 1)",
)
NO_EPOCH = (
    "return epoch .. '.' .. string.format('%d', n)",
    "return string.format('%d', n)",
)


def test_a_warm_read_is_one_round_trip_answered_unchanged(gift_box):
    skus = ["GIFT-BOX", "MUG", "TEA"]
    first = warm(skus)
    assert replies(skus) == [b"=", b"=", b"="]  # nothing but the stamps read or sent
    trips = availability_cache.STATS["round_trips"]
    second = read(skus)
    assert availability_cache.STATS["round_trips"] - trips == 1
    assert all(second[sku] is first[sku] for sku in skus)


# --------------------------------------------------------------------------
# A component changed by another process
# --------------------------------------------------------------------------


def _receive_elsewhere(sku, code, quantity, done):
    """Another process: its own database connection (the parent's socket is
    never used or closed here), its own Redis connection, its own memo. Its
    commit's write-through is its after-commit callback."""
    for alias in connections:
        connections[alias].connection = None  # fork: open a new one, keep the parent's
    try:
        receive(sku, code, quantity)
        done.put("ok")
    except BaseException as error:  # reported to the parent
        done.put(repr(error))


def component_changed_by_another_process():
    """GIFT-BOX (2 x MUG + 1 x TEA) read and memoised here, then TEA received in
    another process: (what this process's next read answers, the database's)."""
    WarehouseFactory(code="BER")
    ProductFactory(sku="MUG")
    ProductFactory(sku="TEA")
    receive("MUG", "BER", 8)
    receive("TEA", "BER", 1)
    make_bundle("GIFT-BOX", {"MUG": 2, "TEA": 1})
    assert warm(["GIFT-BOX"])["GIFT-BOX"].available == 1
    assert replies(["GIFT-BOX"]) == [b"="]
    context = multiprocessing.get_context("fork")
    done = context.Queue()
    child = context.Process(target=_receive_elsewhere, args=("TEA", "BER", 5, done))
    child.start()
    assert done.get(timeout=120) == "ok"
    child.join(timeout=120)
    trips = availability_cache.STATS["round_trips"]
    after = read(["GIFT-BOX"])["GIFT-BOX"]
    assert availability_cache.STATS["round_trips"] - trips == 1  # no refill: a hit
    return summary(after), database("GIFT-BOX")


@pytest.mark.django_db(transaction=True)
def test_a_component_changed_by_another_process_is_read_at_once():
    after, expected = component_changed_by_another_process()
    assert after == expected
    assert after[0] == 4  # min(8 // 2, 6 // 1): the other process's units count


@pytest.mark.django_db(transaction=True)
def test_planted_a_script_that_ignores_component_stamps_answers_stale(monkeypatch):
    plant(monkeypatch, *IGNORE_COMPONENTS)
    after, expected = component_changed_by_another_process()
    assert after != expected and after[0] == 1  # the memo of before the commit


def test_a_component_write_through_changes_only_the_strings_that_hold_it(
    gift_box, django_capture_on_commit_callbacks
):
    make_bundle("MUG-PAIR", {"MUG": 2})
    skus = ["GIFT-BOX", "MUG-PAIR", "MUG", "TEA"]
    warm(skus)
    with django_capture_on_commit_callbacks(execute=True):
        services.stock_reserve(order_id="O-1", lines=[ReserveLine("TEA", "BER", 4)], actor="c")
    changed = [reply != b"=" for reply in replies(skus)]
    assert changed == [True, False, False, True]  # the box and the tea, nothing else
    found = read(skus)
    for sku in skus:
        assert summary(found[sku]) == database(sku)
    assert replies(skus) == [b"="] * 4  # memoised again under the new stamps


# --------------------------------------------------------------------------
# Expiry and refill (the ABA case), invalidation
# --------------------------------------------------------------------------


def expired_and_refilled(django_capture_on_commit_callbacks):
    """MUG memoised with the first stamp the sequence hands out; then Redis
    loses everything (a restart without persistence: the entry and the
    sequence), MUG changes while its write-through is lost, and the entry is
    refilled from the database and stamped again — the sequence's first value
    again. (What this process answers next, the database's.)"""
    WarehouseFactory(code="BER")
    ProductFactory(sku="MUG")
    receive("MUG", "BER", 7)
    read(["MUG"])  # fills
    client = availability_cache._store().client
    stamps = availability_cache._stamp_key()
    client.delete(stamps)  # MUG's stamp is the first of a fresh sequence
    assert read(["MUG"])["MUG"].available == 7
    first = client.hget(availability_cache._key("MUG"), "s")
    assert client.hget(stamps, "n") == b"1"
    client.delete(availability_cache._key("MUG"), stamps)  # expired; sequence lost
    with django_capture_on_commit_callbacks(execute=False):  # its write-through is lost
        receive("MUG", "BER", 3)
    assert read(["MUG"])["MUG"].available == 10  # a miss: from the database, refilled
    availability_cache.get_many(["MUG"])  # a read (any process's) stamps the refilled entry
    assert client.hget(stamps, "n") == b"1"  # with the fresh sequence's first value again
    second = client.hget(availability_cache._key("MUG"), "s")
    again = read(["MUG"])["MUG"]  # this process sends the stamp it holds
    return summary(again), database("MUG"), first, second


def test_an_entry_expired_and_refilled_is_never_taken_for_unchanged(
    django_capture_on_commit_callbacks,
):
    again, expected, first, second = expired_and_refilled(django_capture_on_commit_callbacks)
    assert first != second  # same counter value, another epoch
    assert again == expected and again[0] == 10


def test_planted_stamps_without_an_epoch_take_the_refilled_entry_for_unchanged(
    monkeypatch, django_capture_on_commit_callbacks
):
    plant(monkeypatch, *NO_EPOCH)
    again, expected, first, second = expired_and_refilled(django_capture_on_commit_callbacks)
    assert first == second == b"1"
    assert again != expected and again[0] == 7  # the answer of the expired entry


def test_an_invalidated_entry_is_never_unchanged(gift_box):
    warm(["GIFT-BOX", "TEA"])
    availability_cache.invalidate(["TEA"])
    assert b"=" not in replies(["GIFT-BOX", "TEA"])  # both strings hold TEA's entry
    misses = availability_cache.STATS["misses"]
    found = read(["GIFT-BOX", "TEA"])
    assert availability_cache.STATS["misses"] - misses == 1  # TEA refilled, once
    assert summary(found["GIFT-BOX"]) == database("GIFT-BOX")


# --------------------------------------------------------------------------
# Holds, the in-process store, the bound
# --------------------------------------------------------------------------


def test_a_string_with_an_expiring_hold_is_derived_at_every_read(
    gift_box, django_capture_on_commit_callbacks
):
    """A memoised bundle whose component then takes a hold that expires: the
    string is never memoised again while the hold counts, so the hold's lapse
    (no write at all) shows at once."""
    assert warm(["GIFT-BOX"])["GIFT-BOX"].available == 4
    with django_capture_on_commit_callbacks(execute=True):
        services.stock_reserve(
            order_id="HOLD",
            lines=[ReserveLine("TEA", "BER", 5)],
            actor="c",
            expires_at=clock.now() + timedelta(seconds=30),
        )
    assert read(["GIFT-BOX"])["GIFT-BOX"].available == 1
    assert read(["GIFT-BOX"])["GIFT-BOX"].available == 1
    assert replies(["GIFT-BOX"]) != [b"="]  # the held token is the one before the hold
    clock.advance(60)  # the hold lapses: nothing is written
    assert summary(read(["GIFT-BOX"])["GIFT-BOX"]) == database("GIFT-BOX")
    assert read(["GIFT-BOX"])["GIFT-BOX"].available == 4


def test_both_stores_answer_unchanged_alike(gift_box, django_capture_on_commit_callbacks):
    """The in-process store (no Redis) answers "unchanged" exactly when the Redis
    store does, through writes, invalidations and a bundle sharing components."""
    make_bundle("MUG-PAIR", {"MUG": 2})
    redis_store = availability_cache._RedisStore()
    local = availability_cache._LocalStore()
    skus = ["GIFT-BOX", "MUG-PAIR", "MUG", "TEA"]
    keys = [availability_cache._key(sku) for sku in skus]
    loaded = availability_cache.load_from_database(skus)
    tokens: dict[int, list[str]] = {}

    def fill(store, only=None, generation=""):
        writes = []
        for snap in loaded.values():
            if only is not None and snap.sku not in only:
                continue
            meta = {
                "product_id": snap.product_id,
                "stock_policy": snap.stock_policy,
                "allowance": snap.allowance,
            }
            if snap.components is not None:
                meta["components"] = snap.components
            fields = [(c, snap.versions[c], snap.base[c], "=", snap.holds[c]) for c in snap.base]
            key = availability_cache._key(snap.sku)
            writes.append((key, json.dumps(meta), generation, fields))
        store.apply(writes)

    def step(store):
        raw, _ = store.read(keys, tokens=tokens.get(id(store), [""] * len(keys)))
        marks = []
        for reply in raw:
            if reply == b"=":
                marks.append("=")
            else:
                marks.append(len(reply.partition(b"\2")[0].split(b";")))
        fresh = availability_cache.Read.__new__(availability_cache.Read)
        fresh.skus, fresh.stamps = skus, {}
        held = tokens.setdefault(id(store), [""] * len(keys))
        for i, reply in enumerate(raw):
            if reply != b"=":
                fresh.stamps[skus[i]] = reply.partition(b"\2")[0].decode()
                held[i] = fresh.token(skus[i], loaded[skus[i]]) or ""
        return marks

    seen = {}
    for store in (redis_store, local):
        fill(store)
        seen[store] = [step(store), step(store)]
        store.apply([(keys[3], "", "", [("BER", 99, 2, "+", "")])])  # TEA written through
        seen[store].append(step(store))
        store.invalidate([keys[2]])  # MUG invalidated
        seen[store].append(step(store))
        fill(store, only={"MUG"}, generation="1")  # the refill after the invalidation
        seen[store] += [step(store), step(store)]
    assert seen[redis_store] == seen[local]
    assert seen[local] == [
        [3, 2, 1, 1],  # first read: every string, with its stamps
        ["=", "=", "=", "="],
        [3, "=", "=", 1],  # TEA written: the box and TEA
        [3, 2, 1, "="],  # MUG invalidated: everything that holds MUG
        [3, 2, 1, "="],  # refilled: new stamps
        ["=", "=", "=", "="],
    ]
    redis_store.client.delete(*keys)


def test_the_memo_is_bounded(gift_box, monkeypatch):
    monkeypatch.setattr(selectors, "_DERIVED_MAX", 2)
    warm(["GIFT-BOX", "MUG", "TEA"])
    assert len(selectors._DERIVED) <= 2
    found = read(["GIFT-BOX", "MUG", "TEA"])
    for sku in ("GIFT-BOX", "MUG", "TEA"):
        assert summary(found[sku]) == database(sku)
