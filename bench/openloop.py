"""Open-loop latency: requests fired at a constant arrival rate, latency from the intended send.

    python bench/openloop.py [--skus 1000000] [--seconds 20] [--rows availability,...]

A closed-loop tool (wrk at 32 connections) measures queueing in front of a
saturated server: each connection waits for its answer before sending again, so
when the server stalls the load generator stalls too and the stall is hidden
("coordinated omission"). Here request i is due at t0 + i / rate whatever
happened before; its latency runs from that intended instant to the last byte of
the answer, so time spent waiting for a free connection (the server being behind)
counts. Per row: first the maximum throughput closed-loop (wrk, --max-seconds),
then open-loop runs at 25 %, 50 % and 75 % of it, reporting p50 / p99 / p99.9,
the rate achieved and the non-2xx count.

Rows: single-SKU availability (`GET /api/v1/availability/{sku}/`), 100-SKU
availability (`GET /api/v1/availability/?sku=` x100), both over a working set of
10,000 SKUs served warm from the Redis read model, and a single one-line
reservation (`POST /api/v1/reservations/`, a random SKU of the catalogue).

Server: gunicorn, production settings, sync 4 workers (bench/http_throughput.py's
first configuration; `--server gthread` for 4x4 threads with keep-alive), on
the bench database (BENCH_DATABASE_URL; catalogue of --skus SKUs x 1 warehouse,
built once) and BENCH_REDIS_URL under the run's own
key prefix (deleted by prefix at the end). The driver is one asyncio process
with hand-written HTTP/1.1 on a pool of connections that grows up to
--max-connections when the server is behind (kept alive where the server allows;
gunicorn's sync workers close each one, so every request also connects, as
wrk's do against the same server); on a 2-core machine it competes
with the server for CPU, which the closed-loop maximum includes too.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import signal
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DB, BENCH_KEY_PREFIX, BENCH_REDIS, delete_bench_keys, percentile
from http_throughput import (
    WORKING_SET,
    Gunicorn,
    base_env,
    drain,
    manage,
    run_wrk,
    warm_read_model,
)

SERVERS = {
    "sync": ["-k", "sync", "-w", "4"],
    # Keeps connections alive between requests (gunicorn's --keep-alive, 2 s), so the
    # driver does not pay a TCP connect per request on the server's two cores.
    "gthread": ["-k", "gthread", "-w", "4", "--threads", "4"],
}
ROWS = {
    "availability": ("availability", "GET /availability/{sku}/ (1 SKU)"),
    "availability-100": ("availability-100", "GET /availability/?sku= x100"),
    "reserve": ("reserve", "POST /reservations/, 1 line"),
}


def make_request(row: str, key: str, skus: int, rng: random.Random, run: str, n: int) -> bytes:
    head = f"Authorization: Token {key}\r\nHost: 127.0.0.1\r\n"
    if row == "availability":
        sku = f"BENCH-{rng.randrange(WORKING_SET):07d}"
        return f"GET /api/v1/availability/{sku}/ HTTP/1.1\r\n{head}\r\n".encode()
    if row == "availability-100":
        query = "&".join(f"sku=BENCH-{rng.randrange(WORKING_SET):07d}" for _ in range(100))
        return f"GET /api/v1/availability/?{query} HTTP/1.1\r\n{head}\r\n".encode()
    line = {"sku": f"BENCH-{rng.randrange(skus):07d}", "quantity": 1, "warehouse": "BW01"}
    body = json.dumps({"order_id": f"{run}-{n}", "lines": [line]}).encode()
    return (
        f"POST /api/v1/reservations/ HTTP/1.1\r\n{head}Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the server keeps the connection open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, keep = 0, True
    for line in lines[1:]:
        name = line[:15].lower()
        if name == b"content-length:":
            length = int(line[15:])
        elif line.lower().startswith(b"connection:") and b"close" in line.lower():
            keep = False  # gunicorn's sync workers close after every response
    if length:
        await reader.readexactly(length)
    return status, keep


class Pool:
    """Up to `maximum` connections in use at once; a request waits for a slot, then
    reuses an idle kept-alive connection or opens one."""

    def __init__(self, port: int, maximum: int) -> None:
        self.port, self.peak, self.in_use = port, 0, 0
        self.slots = asyncio.Semaphore(maximum)
        self.idle: list = []

    async def get(self):
        await self.slots.acquire()
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)
        if self.idle:
            return self.idle.pop()
        return await asyncio.open_connection("127.0.0.1", self.port)

    def put(self, conn) -> None:
        self.idle.append(conn)
        self._release()

    def discard(self, conn) -> None:
        conn[1].close()
        self._release()

    def _release(self) -> None:
        self.in_use -= 1
        self.slots.release()


async def open_loop(port: int, row: str, key: str, skus: int, rate: float, seconds: float,
                    max_connections: int) -> dict:  # fmt: skip
    pool = Pool(port, max_connections)
    rng = random.Random(11)
    run = f"ol{uuid.uuid4().hex[:10]}"
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    total = int(rate * seconds)

    async def one(n: int, due: float) -> None:
        request = make_request(row, key, skus, rng, run, n)
        try:
            conn = await pool.get()
        except OSError:
            pool._release()
            statuses[0] = statuses.get(0, 0) + 1
            return
        try:
            conn[1].write(request)
            status, keep = await read_response(conn[0])
        except (OSError, asyncio.IncompleteReadError):
            pool.discard(conn)
            statuses[0] = statuses.get(0, 0) + 1
            return
        if keep:
            pool.put(conn)
        else:
            pool.discard(conn)
        latencies.append((time.perf_counter() - due) * 1000)
        statuses[status] = statuses.get(status, 0) + 1

    tasks = []
    cpu_started = time.process_time()
    started = time.perf_counter()
    for n in range(total):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    for conn in pool.idle:
        conn[1].close()
    return {
        "sent": total,
        "achieved": len(latencies) / elapsed,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "p999": percentile(latencies, 99.9),
        "non2xx": sum(v for s, v in statuses.items() if not 200 <= s < 300),
        "connections": pool.peak,
        # The driver's own CPU (of the machine's cores it shares with the server).
        "driver_cpu": cpu / elapsed,
    }


def age_read_model(ttl: int, seed: int) -> int:
    """Give every read-model entry of the run a remaining life drawn uniformly from
    1..`ttl` seconds, as if each had been filled at a random moment of the last TTL:
    the steady state of a shop that has been serving for a while, where entries
    expire and are refilled at an even rate (working set / TTL per second). Filled
    all at once by the warm-up, they would instead expire together 48-60 s later
    (the fill spreads TTLs over the last fifth only) and send a whole second's
    readers to the database; a run that happened to span that wave measured it,
    not the steady state. Returns the number of entries aged."""
    import redis

    client = redis.Redis.from_url(BENCH_REDIS, socket_timeout=30)
    rng = random.Random(seed)
    aged = 0
    pipe = client.pipeline(transaction=False)
    for key in client.scan_iter(match=f"{BENCH_KEY_PREFIX}:avail:*", count=5000):
        pipe.expire(key, rng.randint(1, ttl))
        aged += 1
        if aged % 5000 == 0:
            pipe.execute()
    pipe.execute()
    client.close()
    return aged


def steady_read_model(env: dict[str, str], ttl: int, seed: int) -> None:
    """Before each measured run: fill what is missing of the working set, then age
    it (`age_read_model`), so every run starts from the same steady state."""
    warm_read_model(env)
    age_read_model(ttl, seed)


def build_catalogue(skus: int) -> None:
    """The bench catalogue (skus x 1 warehouse BW01), once, in BENCH_DATABASE_URL."""
    from common import create_database, ensure_catalogue, migrate, setup_django

    create_database(BENCH_DB)
    setup_django(BENCH_DB)
    migrate()
    ensure_catalogue(skus, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skus", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=20, help="per open-loop run")
    parser.add_argument("--max-seconds", type=int, default=8, help="closed-loop maximum run")
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--fractions", default="0.25,0.5,0.75")
    parser.add_argument("--max-connections", type=int, default=64)
    parser.add_argument(
        "--ttl",
        type=int,
        default=60,
        help="the server's STOCKROOM_AVAILABILITY_TTL (the product default); entries are "
        "aged over it before every run (steady state: working set / TTL refills a second)",
    )
    parser.add_argument(
        "--server",
        default="sync",
        choices=SERVERS,
        help="gunicorn workers: sync 4 (closes every connection) or gthread 4x4 (keep-alive)",
    )
    args = parser.parse_args()
    # SIGTERM too runs the `finally` that stops gunicorn.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    build_catalogue(args.skus)
    import http_throughput

    http_throughput.SKUS = args.skus
    env = base_env(BENCH_DB)
    env["STOCKROOM_AVAILABILITY_TTL"] = str(args.ttl)
    key = manage(env, "create_api_client", f"bench-openloop-{uuid.uuid4().hex[:8]}",
                 "--scope", "storefront").strip().splitlines()[-1]  # fmt: skip
    server = None
    lines = []
    try:
        server = Gunicorn(SERVERS[args.server], env)
        warm_read_model(env)
        for row in ("ping", "availability", "reserve"):  # warm every worker
            run_wrk(server.port, row, key, 2, 32, 2, "")
        for row in args.rows.split(","):
            wrk_row, label = ROWS[row]
            drain(server.port, key)
            steady_read_model(env, args.ttl, seed=len(lines))
            peak = run_wrk(server.port, wrk_row, key, args.max_seconds, 32, 2, "")
            lines.append(f"| {label} | max (closed loop, wrk c32) | {peak['rps']:,.0f} | | "
                         f"{peak['p50']:.1f} | {peak['p99']:.1f} | | {peak['non2xx']} | | "
                         f"{os.getloadavg()[0]:.1f} |")  # fmt: skip
            print(lines[-1], flush=True)
            for fraction in (float(f) for f in args.fractions.split(",")):
                drain(server.port, key)
                steady_read_model(env, args.ttl, seed=len(lines))
                rate = peak["rps"] * fraction
                # The driver's own garbage collection would count as the server's
                # latency (a pause delays every request due meanwhile): off during a run.
                gc.collect()
                gc.disable()
                try:
                    r = asyncio.run(open_loop(server.port, row, key, args.skus, rate,
                                              args.seconds, args.max_connections))  # fmt: skip
                finally:
                    gc.enable()
                lines.append(f"| {label} | {fraction:.0%} = {rate:,.0f}/s | {r['achieved']:,.0f} "
                             f"| {r['connections']} | {r['p50']:.1f} | {r['p99']:.1f} "
                             f"| {r['p999']:.1f} | {r['non2xx']} | {r['driver_cpu']:.2f} "
                             f"| {os.getloadavg()[0]:.1f} |")  # fmt: skip
                print(lines[-1], flush=True)
    finally:
        if server is not None:
            server.stop()
        delete_bench_keys()
    print()
    print(f"catalogue {args.skus:,} SKUs x 1 warehouse; gunicorn {' '.join(SERVERS[args.server])}; "
          f"{args.seconds:.0f} s per open-loop run; {os.cpu_count()} CPUs; "
          f"read model aged over a {args.ttl} s TTL before every run")  # fmt: skip
    print()
    print("| row | offered rate | achieved/s | connections | p50 ms | p99 ms | p99.9 ms "
          "| non-2xx | driver CPU (cores) | load 1 min |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
