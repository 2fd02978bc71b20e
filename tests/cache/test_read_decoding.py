"""The read model's hit path (issue #16, item 5): one Lua read returns each entry
as one flat string, decoded once per distinct content. The decoding memo may
only spare work, never change an answer: a changed entry is decoded afresh, an
entry with holds is settled at each read's instant, every read gets its own
snapshot objects, and both stores hand the reader the same entries."""

import json
from datetime import timedelta

import pytest

from inventory import availability_cache, clock, services
from inventory.services import ReserveLine

from ..conftest import receive

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clock():
    clock.reset()
    yield
    clock.reset()


@pytest.fixture
def stocked(product, warehouse, other_warehouse, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        receive(product.sku, "BER", 10)
        receive(product.sku, "HAM", 5)
    availability_cache.get_many([product.sku])  # fill
    return product.sku


def decoded_for(sku):
    raw = availability_cache._store().read([availability_cache._key(sku)])[0][0]
    return raw, availability_cache._DECODED.get(raw)


def test_an_unchanged_entry_is_decoded_once_and_each_read_gets_its_own_snapshot(stocked):
    first = availability_cache.read_cached([stocked])[stocked]
    raw, decoded = decoded_for(stocked)
    assert decoded is not None  # memoised under exactly the content read
    second = availability_cache.read_cached([stocked])[stocked]
    assert availability_cache._DECODED[raw] is decoded
    assert second is not first
    assert second.warehouses == first.warehouses == {"BER": 10, "HAM": 5}
    second.parts = {"X": first}
    assert first.parts == {}  # per-read attributes never leak into the memo


def test_a_changed_entry_is_decoded_afresh_never_served_from_the_memo(
    stocked, django_capture_on_commit_callbacks
):
    availability_cache.read_cached([stocked])
    before, _ = decoded_for(stocked)
    with django_capture_on_commit_callbacks(execute=True):
        receive(stocked, "BER", 3)
    after, _ = decoded_for(stocked)
    assert after != before
    assert availability_cache.read_cached([stocked])[stocked].warehouses == {"BER": 13, "HAM": 5}


def test_a_memoised_entry_with_holds_is_settled_at_each_reads_instant(
    stocked, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.stock_reserve(
            order_id="HOLD",
            lines=[ReserveLine(stocked, "BER", 4)],
            actor="c",
            expires_at=clock.now() + timedelta(seconds=1),
        )
    assert availability_cache.read_cached([stocked])[stocked].warehouses["BER"] == 6
    raw, decoded = decoded_for(stocked)
    clock.advance(3)  # the entry's content is the same; the hold has lapsed
    assert decoded_for(stocked) == (raw, decoded)
    assert availability_cache.read_cached([stocked])[stocked].warehouses["BER"] == 10


def test_an_unreadable_entry_decodes_to_a_miss_with_its_generation(stocked):
    availability_cache.invalidate([stocked])
    _, decoded = decoded_for(stocked)
    assert availability_cache.read_cached([stocked]) == {}
    _, decoded = decoded_for(stocked)
    assert decoded.template is None and decoded.generation == "1"
    assert availability_cache._Decoded(b"").generation == ""


def test_both_stores_hand_the_reader_the_same_entries(stocked):
    """The Lua read script and the in-process store: the same fields and values
    for the same writes (the flat string's field order may differ)."""
    redis_store = availability_cache._RedisStore()
    local = availability_cache._LocalStore()
    key, flag = availability_cache._key("SAME"), availability_cache._key("FLAG")
    redis_store.client.delete(key, flag)
    now = availability_cache.now_micros()
    holds = availability_cache.hold_string([(now + 10**6, 2)], now, 16)
    writes = [(key, '{"product_id": "p"}', "", [("BER", 3, 7, "=", holds), ("HAM", 1, 0, "=", "")])]
    for store in (redis_store, local):
        store.apply(writes)
        store.apply([(key, "", "", [("HAM", 2, 4, "?", "")])])

    def fields(raw):
        items = raw.decode().split("\0")
        return dict(zip(items[::2], items[1::2], strict=True))

    (from_redis, absent), flagged = redis_store.read([key, flag], flag=key)
    (from_local, absent_local), flagged_local = local.read([key, flag], flag=key)
    assert fields(from_redis) == fields(from_local)
    assert fields(from_redis)["h:HAM"] == "?"
    assert absent == absent_local == b""
    assert flagged is flagged_local is True
    redis_store.client.delete(key)


def test_both_stores_append_a_bundles_component_entries_alike(stocked):
    """READ_SCRIPT and the in-process store: a bundle's entry (its `c` taken from
    the meta it was filled with) comes back with its components' entries, an
    absent one as empty; a refill without components drops `c`."""
    redis_store = availability_cache._RedisStore()
    local = availability_cache._LocalStore()
    key = availability_cache._key
    redis_store.client.delete(key("KIT"), key("PART-A"), key("PART-B"))
    kit = json.dumps({"product_id": "k", "components": [["PART-A", 2], ["PART-B", 1]]})
    writes = [
        (key("KIT"), kit, "", []),
        (key("PART-A"), '{"product_id": "a"}', "", [("BER", 1, 5, "=", "")]),
    ]

    def pieces(raw):
        return [fields(piece) for piece in raw.split(b"\1")]

    def fields(raw):
        items = raw.decode().split("\0") if raw else []
        return dict(zip(items[::2], items[1::2], strict=True))

    read = []
    for store in (redis_store, local):
        store.apply(writes)
        read.append(pieces(store.read([key("KIT")])[0][0]))
    assert read[0] == read[1]
    assert [entry.get("c") for entry in read[0]] == ["PART-A,PART-B", None, None]
    assert read[0][1]["a:BER"] == "5" and read[0][2] == {}  # PART-B: no entry
    for store in (redis_store, local):
        store.apply([(key("KIT"), '{"product_id": "k"}', "", [])])
        assert store.read([key("KIT")])[0][0].split(b"\1") == [b"meta\0" + b'{"product_id": "k"}']
    redis_store.client.delete(key("KIT"), key("PART-A"))


def test_the_read_keeps_each_entrys_text_and_every_write_drops_it(
    stocked, django_capture_on_commit_callbacks
):
    """READ_SCRIPT keeps an entry's joined text in its field `j` (an unchanged
    entry then costs one HMGET, not an HGETALL and a join) and serves that copy;
    every write of the entry drops it, so a read after a write-through or an
    invalidation sees the new content. The copy is never part of the text."""
    from django_redis import get_redis_connection

    redis = get_redis_connection("default")
    key = availability_cache._key(stocked)
    raw, _ = decoded_for(stocked)
    assert redis.hget(key, "j") == raw  # kept by the read
    assert b"j\0" not in raw.split(b"\1")[0][:2] and b"\0j\0" not in raw
    # Served from the copy: a planted copy is what a read returns (so dropping
    # it on every write is what keeps reads exact).
    redis.hset(key, "j", raw.replace(b"a:BER\x0010", b"a:BER\x0099"))
    assert availability_cache.read_cached([stocked])[stocked].warehouses["BER"] == 99
    # A write-through drops it: the next read is the new content.
    with django_capture_on_commit_callbacks(execute=True):
        receive(stocked, "BER", 1)
    assert redis.hget(key, "j") is None
    assert availability_cache.read_cached([stocked])[stocked].warehouses["BER"] == 11
    assert redis.hget(key, "j") is not None
    # An invalidation drops it too (the entry is no longer readable).
    availability_cache._store().invalidate([key])
    assert redis.hget(key, "j") is None
    assert stocked not in availability_cache.read_cached([stocked])
