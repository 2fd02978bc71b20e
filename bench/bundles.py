"""Availability of bundles vs plain SKUs, from the Redis read model (issue #16, item 5).

    .venv/bin/python bench/bundles.py [--rounds 2000]

Builds a small catalogue in its own database (`<BENCH_DATABASE_URL>_bundles`,
default `stockroom_bench_bundles`): 200 plain SKUs in 3 warehouses and 50
bundles of 3 components each (drawn from the plain SKUs). Redis: BENCH_REDIS_URL
(default db 9) under the run's own key prefix, whose keys `bench/common.py`
deletes when the run exits, however it ends (it never flushes a database).

Measures, in one run and interleaved round by round (so load changes hit both
alike), the server-side latency of `selectors.availability_for_skus` (what the
API views call) on a warm read model:

* **plain**: 100 plain SKUs;
* **half bundles**: 50 bundles + 50 plain SKUs (each bundle's 3 component
  entries come back appended to its own entry, in the same Lua call);
* **one plain** / **one bundle**: a single SKU.

Reports p50/p99 in ms and the p50 and p99 ratios against the plain batch of
the same run (the issue's target: p99 within 20 %), the Redis round trips per
call, and the garbage collector's pauses inside the timed calls (`gc.callbacks`:
total ms per 1000 calls, the longest pause, how many calls contained a full
collection).

Answers are memoised per SKU under the token of the string they were derived
from (`selectors._DERIVED`; the entries' stamps, `availability_cache.READ_SCRIPT`)
and entries decoded once per distinct content (`availability_cache._DECODED`);
with a static catalogue every timed call after the warm-up sends its tokens and
is answered "unchanged" for every SKU (only the stamps are read in Redis, one
byte per SKU comes back). `--cold` empties both memos before every timed call:
the figures of a catalogue whose every entry changed since the last read (the
worst case for the memos: every string is sent and decoded, with its token).
`--gc-freeze` sets up the garbage collector as a serving process does after
loading the app (`inventory_site.serving.tune_gc`, docs/PERFORMANCE.md) before
timing. `--script-time` then also times the read script inside Redis for the
two batches (Redis' TIME at its start and end, the warm tokens sent) and prints
the bytes each call moves.

`--http RATE` measures what a storefront sees instead: the same two batches as
`GET /api/v1/availability/?sku=…` (100 SKUs) against gunicorn (production
settings, sync 4 workers, as `bench/http_throughput.py`), fired open-loop at RATE
requests/s by `bench/openloop.py`'s driver (latency from each request's intended
send instant, so a stall is not hidden), `--http-seconds` per run, the two cases
alternating run by run for `--rounds` runs; p50/p99 per case over all its runs,
and the ratio to the plain batch.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DB, create_database, median, percentile, setup_django

DB = BENCH_DB + "_bundles"
PLAIN, BUNDLES, WAREHOUSES = 200, 50, 3


def build() -> None:
    from django.db import transaction

    from inventory import services
    from inventory.models import Product

    if Product.objects.filter(sku__startswith="BB-").count() == PLAIN + BUNDLES:
        return
    rng = random.Random(16)
    with transaction.atomic():
        for w in range(WAREHOUSES):
            services.warehouse_create(code=f"BBW{w}", name=f"Bundle bench {w}")
        for i in range(PLAIN):
            services.product_create(sku=f"BB-P{i:04d}", name=f"plain {i}")
            for w in range(WAREHOUSES):
                services.stock_receive(
                    sku=f"BB-P{i:04d}",
                    warehouse=f"BBW{w}",
                    quantity=rng.randint(50, 500),
                    actor="user:bench",
                )
        for b in range(BUNDLES):
            parts = rng.sample(range(PLAIN), 3)
            services.product_create(
                sku=f"BB-B{b:04d}",
                name=f"bundle {b}",
                components=[{"sku": f"BB-P{p:04d}", "quantity": rng.randint(1, 3)} for p in parts],
            )


class _Collector:
    """A `gc.callbacks` hook: the collector's pauses (ms) since `reset`, and how
    many of them were full (generation 2) collections."""

    def __init__(self) -> None:
        self.started = 0.0
        self.reset()

    def reset(self) -> None:
        self.pauses: list[float] = []
        self.full = 0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        self.pauses.append((time.perf_counter() - self.started) * 1000)
        self.full += info["generation"] == 2


def script_time(cases: dict[str, list[str]], names: list[str], rounds: int) -> None:
    """The read script's own time per batch case (a copy of READ_SCRIPT with
    Redis' TIME read at its start and end), sent the tokens the memo holds as
    `availability_for_skus` sends them, interleaved; and the bytes moved."""
    from statistics import median

    from inventory import availability_cache, selectors

    source = availability_cache.READ_SCRIPT.replace(
        "local n = #KEYS", "local t0 = redis.call('TIME')\nlocal n = #KEYS", 1
    ).replace(
        "\nreturn out\n",
        "\nlocal t1 = redis.call('TIME')\n"
        "out[#out + 1] = (t1[1] - t0[1]) * 1000000 + (t1[2] - t0[2])\nreturn out\n",
    )
    store = availability_cache._store()
    timed = store.client.register_script(source)
    calls = {}
    for name in names:
        skus = cases[name]
        tokens = [selectors._DERIVED[sku][0] if sku in selectors._DERIVED else "" for sku in skus]
        args = ["0", availability_cache._key(""), availability_cache._stamp_key(), "1", *tokens]
        calls[name] = ([availability_cache._key(sku) for sku in skus], args)
    took: dict[str, list[int]] = {name: [] for name in names}
    replied: dict[str, int] = {}
    for _ in range(rounds):
        for name in names:
            keys, args = calls[name]
            reply = timed(keys=keys, args=args)
            took[name].append(int(reply[-1]))
            replied[name] = sum(len(part) for part in reply[:-1])
    header = f"{'p50 µs':>8} {'min µs':>8} {'reply B':>8} {'args B':>8}"
    print(f"{'READ_SCRIPT inside Redis':40} {header}")
    for name in names:
        print(
            f"{name:40} {median(took[name]):8.0f} {min(took[name]):8d} {replied[name]:8d} "
            f"{sum(len(a) for a in calls[name][1]):8d}"
        )


def over_http(cases: dict[str, list[str]], rate: float, seconds: float, rounds: int) -> None:
    """`--http`: the two batch cases over HTTP, open-loop, alternating run by run."""
    import asyncio
    import uuid

    from http_throughput import Gunicorn, base_env, manage
    from openloop import open_loop

    env = base_env(DB)
    env["STOCKROOM_AVAILABILITY_TTL"] = os.environ["STOCKROOM_AVAILABILITY_TTL"]
    key = manage(env, "create_api_client", f"bench-bundles-{uuid.uuid4().hex[:8]}",
                 "--scope", "storefront").strip().splitlines()[-1]  # fmt: skip
    names = list(cases)[:2]
    requests = {}
    for name in names:
        query = "&".join(f"sku={sku}" for sku in cases[name])
        requests[name] = (
            f"GET /api/v1/availability/?{query} HTTP/1.1\r\n"
            f"Authorization: Token {key}\r\nHost: 127.0.0.1\r\n\r\n"
        ).encode()
    server = Gunicorn(["-k", "sync", "-w", "4"], env)
    try:
        for name in names:  # warm every worker's memo (each process has its own)
            asyncio.run(open_loop(server.port, lambda n, r=requests[name]: r, key, 0,
                                  50, 2, 16))  # fmt: skip
        latencies: dict[str, list[float]] = {name: [] for name in names}
        results = {name: [] for name in names}
        for r in range(rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                gc.collect()
                gc.disable()  # the driver's own pauses are not the server's latency
                try:
                    make = lambda n, q=requests[name]: q  # noqa: E731
                    out = asyncio.run(open_loop(server.port, make, key, 0, rate, seconds, 64,
                                                keep=latencies[name]))  # fmt: skip
                finally:
                    gc.enable()
                results[name].append(out)
                assert out["non2xx"] == 0, out
    finally:
        server.stop()
    load = os.getloadavg()
    print(f"over HTTP: {rate:g} requests/s open-loop, {rounds} x {seconds:g} s per case, "
          f"gunicorn sync 4 workers; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"cores: {os.cpu_count()}")  # fmt: skip
    print(f"{'case':40} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} "
          f"{'p50 ratio':>10} {'p99 ratio':>10}")  # fmt: skip
    base = latencies[names[0]]
    for name in names:
        values = latencies[name]
        print(f"{name:40} {len(values):9d} {median(values):8.2f} {percentile(values, 99):8.2f} "
              f"{percentile(values, 99.9):9.2f} {median(values) / median(base):10.2f} "
              f"{percentile(values, 99) / percentile(base, 99):10.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--cold", action="store_true", help="empty the decode memos every call")
    parser.add_argument(
        "--gc-freeze", action="store_true", help="tune the collector as serving processes do"
    )
    parser.add_argument(
        "--http", type=float, metavar="RATE", help="over HTTP, open-loop at RATE requests/s"
    )
    parser.add_argument("--http-seconds", type=float, default=5, help="per --http run")
    parser.add_argument(
        "--script-time",
        action="store_true",
        help="also time READ_SCRIPT inside Redis (TIME at its start and end) per batch case",
    )
    args = parser.parse_args()
    # Hits are what is measured: no entry may expire (and be refilled) mid-run.
    os.environ["STOCKROOM_AVAILABILITY_TTL"] = "3600"
    create_database(DB)
    setup_django(DB)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    build()

    from inventory import availability_cache, selectors

    rng = random.Random(7)
    plain = [f"BB-P{i:04d}" for i in range(PLAIN)]
    bundles = [f"BB-B{b:04d}" for b in range(BUNDLES)]
    cases = {
        "plain (100 plain SKUs)": rng.sample(plain, 100),
        "half bundles (50 bundles + 50 plain)": bundles + rng.sample(plain, 50),
        "one plain SKU": [plain[0]],
        "one bundle": [bundles[0]],
    }
    for _ in range(2):  # warm: every entry filled and stamped, every answer memoised
        for skus in cases.values():
            selectors.availability_for_skus(skus)
            selectors.availability_for_skus(skus)
    if args.http:
        over_http(cases, args.http, args.http_seconds, args.rounds)
        return
    if args.gc_freeze:
        from inventory_site.serving import tune_gc

        tune_gc()
    latencies: dict[str, list[float]] = {name: [] for name in cases}
    trips: dict[str, int] = dict.fromkeys(cases, 0)
    collector = _Collector()
    pauses: dict[str, list[float]] = {name: [] for name in cases}
    full: dict[str, int] = dict.fromkeys(cases, 0)
    names = list(cases)
    misses = availability_cache.STATS["misses"]
    gc.callbacks.append(collector)
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            if args.cold:
                availability_cache._DECODED.clear()
                selectors._DERIVED.clear()
            before = availability_cache.STATS["round_trips"]
            collector.reset()
            started = time.perf_counter()
            answer = selectors.availability_for_skus(cases[name])
            latencies[name].append((time.perf_counter() - started) * 1000)
            trips[name] += availability_cache.STATS["round_trips"] - before
            pauses[name] += collector.pauses
            full[name] += collector.full > 0
            assert all(answer[s] is not None for s in cases[name])
    gc.callbacks.remove(collector)
    misses = availability_cache.STATS["misses"] - misses
    load = os.getloadavg()
    print(
        f"rounds: {args.rounds}{' (cold: memos emptied every call)' if args.cold else ''}"
        f"{' (gc tuned as serving)' if args.gc_freeze else ''}; "
        f"load average (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"cores: {os.cpu_count()}"
    )
    print(
        f"{'case':40} {'p50 ms':>8} {'p99 ms':>8} {'p50 ratio':>10} {'p99 ratio':>10} "
        f"{'trips/call':>11} {'gc ms/1k':>9} {'gc max ms':>10} {'full gcs':>9}"
    )
    for i, name in enumerate(names):
        values = latencies[name]
        base = latencies[names[0] if i < 2 else names[2]]  # batch vs batch, one vs one
        p50, p99 = median(values), percentile(values, 99)
        print(
            f"{name:40} {p50:8.3f} {p99:8.3f} {p50 / median(base):10.2f} "
            f"{p99 / percentile(base, 99):10.2f} {trips[name] / args.rounds:11.2f} "
            f"{sum(pauses[name]) * 1000 / args.rounds:9.2f} {max(pauses[name], default=0):10.2f} "
            f"{full[name]:9d}"
        )
    print(f"cache misses during the timed rounds: {misses}")
    if args.script_time:
        script_time(cases, names[:2], args.rounds)


if __name__ == "__main__":
    main()
