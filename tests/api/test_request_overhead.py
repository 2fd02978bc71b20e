"""What every API request pays for (issue #18, the fixed cost of a request): the
per-client throttle (api/throttling.py: a GCRA budget, leased per worker) and the
JSON-only content negotiation (api/negotiation.py), behaving as before.

Races prove the budget holds across concurrent workers (the Lua script reads,
decides and writes atomically); the embedded default (no Redis) keeps the same
arithmetic over the in-process cache.
"""

import math
import threading
import time
from types import SimpleNamespace

import pytest
from django_redis import get_redis_connection

from api.services import api_client_create
from api.throttling import ClientRateThrottle, _Leases

from .conftest import Caller, error_code

pytestmark = pytest.mark.django_db


def _request_as(client):
    return SimpleNamespace(user=client)


def test_concurrent_requests_never_exceed_the_budget(db, settings):
    settings.STOCKROOM_API_THROTTLE_RATE = "25/min"
    client, _key = api_client_create(name="racer", scopes=["read"])
    threads, per_thread = 8, 10
    barrier = threading.Barrier(threads)
    allowed = []

    def worker():
        barrier.wait()
        for _ in range(per_thread):
            allowed.append(ClientRateThrottle().allow_request(_request_as(client), None))

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    # Exactly the burst (the whole per-minute budget) passes, whatever the interleaving.
    assert allowed.count(True) == 25
    assert allowed.count(False) == threads * per_thread - 25


def test_a_busy_client_leases_requests_and_still_never_exceeds_the_budget(db, settings):
    # 2,000/min: leases of up to 64 requests (1/20 of the budget, capped).
    settings.STOCKROOM_API_THROTTLE_RATE = "2000/min"
    client, _key = api_client_create(name="busy", scopes=["read"])
    threads, per_thread = 8, 400
    barrier = threading.Barrier(threads)
    allowed = []
    calls_before = _Leases.round_trips

    def worker():
        barrier.wait()
        for _ in range(per_thread):
            allowed.append(ClientRateThrottle().allow_request(_request_as(client), None))

    started = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.monotonic() - started
    # Never more than the burst plus what the budget refilled meanwhile (33.3/s),
    # however slow the machine; and far fewer Redis calls than requests.
    assert allowed.count(True) <= 2000 + math.ceil(elapsed * 2000 / 60) + 1
    assert allowed.count(True) >= 1000  # leases lost at expiry are at most a few hundred
    assert _Leases.round_trips - calls_before < threads * per_thread / 4


def test_one_small_key_per_client_whatever_the_rate(db, settings):
    settings.STOCKROOM_API_THROTTLE_RATE = "100000/min"
    client, _key = api_client_create(name="busy", scopes=["read"])
    throttle = ClientRateThrottle()
    for _ in range(500):
        assert throttle.allow_request(_request_as(client), None)
    redis = get_redis_connection("default")
    key = throttle.get_cache_key(_request_as(client), None)
    # One number (the theoretical arrival time), not a list of 500 timestamps.
    assert redis.strlen(key) < 20
    assert 0 < redis.pttl(key) <= 61_000


def test_refusal_tells_how_long_to_wait_and_spares_other_clients(db, settings):
    settings.STOCKROOM_API_THROTTLE_RATE = "2/min"
    _, first_key = api_client_create(name="first", scopes=["read"])
    _, second_key = api_client_create(name="second", scopes=["read"])
    first, second = Caller(first_key), Caller(second_key)
    assert [first.get("/api/v1/ping/").status_code for _ in range(2)] == [200, 200]
    refused = first.get("/api/v1/ping/")
    assert refused.status_code == 429
    assert error_code(refused) == "throttled"
    # 2/min: the next request is allowed 30 s after the first (within a second).
    assert 29 <= int(refused["Retry-After"]) <= 31
    assert second.get("/api/v1/ping/").status_code == 200


def test_without_redis_the_in_process_cache_keeps_the_same_budget(db, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.STOCKROOM_API_THROTTLE_RATE = "3/min"
    client, _key = api_client_create(name="embedded", scopes=["read"])
    throttle = ClientRateThrottle()
    results = [throttle.allow_request(_request_as(client), None) for _ in range(4)]
    assert results == [True, True, True, False]
    assert 0 < throttle.wait() <= 60


def test_json_only_views_negotiate_without_parsing_yet_still_refuse_other_types(db):
    _, key = api_client_create(name="negotiator", scopes=["read"])
    caller = Caller(key)
    for accept in (None, "*/*", "application/json"):
        response = caller.get("/api/v1/ping/", headers={"Accept": accept} if accept else None)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
    refused = caller.get("/api/v1/ping/", headers={"Accept": "text/html"})
    assert refused.status_code == 406
    assert error_code(refused) == "not_acceptable"
    assert (
        caller.get("/api/v1/ping/", headers={"Accept": "text/html, */*;q=0.1"}).status_code == 200
    )


def test_redis_down_fails_open_and_retries_after_a_pause(db, settings):
    """A Redis that does not answer (a closed port) lets requests through, and the
    process does not pay the connect timeout again on every request meanwhile."""
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        }
    }
    settings.STOCKROOM_API_THROTTLE_RATE = "1/min"
    client, _key = api_client_create(name="unchecked", scopes=["read"])
    ClientRateThrottle.redis_down_until = 0.0
    calls_before = _Leases.round_trips
    try:
        assert all(ClientRateThrottle().allow_request(_request_as(client), None) for _ in range(5))
        assert _Leases.round_trips - calls_before == 1  # one attempt, then the pause
        assert ClientRateThrottle.redis_down_until > time.monotonic()
    finally:
        ClientRateThrottle.redis_down_until = 0.0


def test_the_per_process_leases_stay_bounded_whatever_the_number_of_clients(
    db, settings, monkeypatch
):
    """One entry per (client, rate) that ever called would grow without bound in a
    long-lived worker; past HELD_MAX a new client's first request drops the
    entries that hold nothing (lease expired, no refusal pending). A client with
    a live lease keeps it, and the budget stays exact for everyone."""
    from api import throttling

    monkeypatch.setattr(throttling, "HELD_MAX", 50)
    settings.STOCKROOM_API_THROTTLE_RATE = "1000/min"  # leases of up to 50
    _Leases.forget()
    assert _Leases.take("busy-client", "1000/min") == 0
    assert _Leases.take("busy-client", "1000/min") == 0  # used up: the next lease doubles
    live = _Leases.held[("busy-client", "1000/min")]
    assert live.left > 0
    live.expires = time.monotonic() + 3600  # live whatever the machine's speed
    # 49 clients whose single-request leases have expired.
    for i in range(49):
        assert _Leases.take(f"quiet-{i}", "1000/min") == 0
    for (key, _rate), lease in _Leases.held.items():
        if key.startswith("quiet-"):
            lease.expires = 0.0
    assert len(_Leases.held) == 50
    assert _Leases.take("newcomer", "1000/min") == 0
    assert len(_Leases.held) == 2, sorted(_Leases.held)
    assert _Leases.held[("busy-client", "1000/min")] is live  # its lease survives
    # A pruned client starts afresh with one exact call.
    calls = _Leases.round_trips
    assert _Leases.take("quiet-0", "1000/min") == 0
    assert _Leases.round_trips == calls + 1
