"""CPU per request of `GET /ping/` and `POST /reservations/` (1 line), in the web
process and its PostgreSQL backend: HTTP's counterpart of bench/reserve_cpu.py,
a measure a loaded machine does not distort (issue #18, goal 2b).

    BENCH_DATABASE_URL=… BENCH_REDIS_URL=… python bench/http_cpu.py \\
        [--before /tmp/before] [--rounds 3] [--requests 500]

For each tree (this one, and `--before`'s in alternating order per round) a
child process builds Django's WSGI handler (base settings, DEBUG off, the
persistent connection and its health check as in production), creates an API
client, and sends it requests one at a time through the handler, in process:
`--requests` pings, then as many one-line reservations (random SKUs of the
bench catalogue, naming the warehouse, as bench/http_throughput.py sends).
Per request it reports the web process's CPU and its backend's CPU
(/proc/<pid>/stat). What it leaves out: gunicorn's HTTP parsing and wrk (the
same for both rows), Redis's own CPU.

On saturated cores throughput is inversely proportional to CPU per request, so
`ping CPU / POST CPU` is what POST /reservations/ can reach of ping's rate on
this code, and `1 / (1 + ping CPU / function CPU)` the best any code could.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ.setdefault("STOCKROOM_AVAILABILITY_KEY_PREFIX", f"bench-hcpu-{secrets.token_hex(4)}")
sys.path.insert(0, str(HERE))
from common import BENCH_DB, bench_redis_env, delete_bench_keys, run_child_in_tree  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
FIRST_UNIFORM = 10  # past the sold-out and hot SKUs of bench/reservations.py


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def child(requests: int) -> None:
    """In the tree under test: the requests, one at a time; prints one JSON line."""
    os.environ.update(bench_redis_env())  # the bench's Redis, whatever the shell's REDIS_URL
    os.environ.update(
        DATABASE_URL=BENCH_DB,
        DJANGO_SETTINGS_MODULE="inventory_site.settings.base",
        DJANGO_DEBUG="false",
        STOCKROOM_API_THROTTLE_RATE="100000000/min",
    )
    sys.path.insert(0, os.getcwd())  # the tree under test, not this script's
    import random

    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection

    from api.services import api_client_create

    _, key = api_client_create(name=f"bench-cpu-{secrets.token_hex(4)}", scopes=["storefront"])
    app = WSGIHandler()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM inventory_product")
        (skus,) = cursor.fetchone()
    rng, tag = random.Random(), secrets.token_hex(4)

    def call(method: str, path: str, body: bytes = b"") -> str:
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/json", "HTTP_AUTHORIZATION": f"Token {key}",
        }  # fmt: skip
        status = []
        response = app(environ, lambda s, headers, exc_info=None: status.append(s))
        b"".join(response)
        response.close()
        return status[0]

    def ping(n: int) -> None:
        assert call("GET", "/api/v1/ping/").startswith("200")

    def reserve(n: int) -> None:
        sku = f"BENCH-{rng.randrange(FIRST_UNIFORM, skus):07d}"
        body = json.dumps(
            {"order_id": f"hcpu-{tag}-{n}",
             "lines": [{"sku": sku, "quantity": 1, "warehouse": "BW01"}]}
        ).encode()  # fmt: skip
        status = call("POST", "/api/v1/reservations/", body)
        assert status.startswith("201"), status

    out = {}
    for name, fn in (("ping", ping), ("reserve", reserve)):
        for n in range(10):
            fn(-1 - n)  # warm: connection, prepared statement, client cache
        # The backend of this request cycle's connection (a health check may replace it).
        pid = connection.connection.info.backend_pid
        db0, web0 = backend_cpu(pid), time.process_time()
        for n in range(requests):
            fn(n)
        assert connection.connection.info.backend_pid == pid, "the connection was replaced"
        out[name] = {
            "web_ms": (time.process_time() - web0) / requests * 1000,
            "db_ms": (backend_cpu(pid) - db0) / requests * 1000,
        }
    print(json.dumps(out))


def measure(tree: Path, requests: int) -> dict:
    return run_child_in_tree(HERE / "http_cpu.py", tree, requests)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="the old tree (git archive of main)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    trees = {"after": HERE.parent}
    if args.before:
        trees = {"before": args.before.resolve(), **trees}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    loads = [os.getloadavg()[0]]
    try:
        for n in range(args.rounds):
            for name in list(trees) if n % 2 == 0 else list(trees)[::-1]:
                runs[name].append(measure(trees[name], args.requests))
                print(f"# round {n + 1} {name}: {json.dumps(runs[name][-1])}", flush=True)
            loads.append(os.getloadavg()[0])
    finally:
        delete_bench_keys()

    def med(name: str, row: str, key: str) -> float:
        return statistics.median(run[row][key] for run in runs[name])

    print()
    print(f"bench database {BENCH_DB.rsplit('/', 1)[1]}; {args.rounds} rounds of "
          f"{args.requests} requests per row and tree, trees alternating; load average "
          f"(1 min) at start and after each round: {', '.join(f'{x:.1f}' for x in loads)} "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    print()
    print("| request | tree | web CPU ms | database CPU ms | total ms | ping / this |")
    print("|---|---|---:|---:|---:|---:|")
    totals = {}
    for name in trees:
        ping = med(name, "ping", "web_ms") + med(name, "ping", "db_ms")
        for row in ("ping", "reserve"):
            web, db = med(name, row, "web_ms"), med(name, row, "db_ms")
            totals[(name, row)] = web + db
            print(f"| {row} | {name} | {web:.3f} | {db:.3f} | {web + db:.3f} "
                  f"| {ping / (web + db):.0%} |")  # fmt: skip
    if args.before:
        print()
        for row in ("ping", "reserve"):
            ratio = totals[("after", row)] / totals[("before", row)]
            print(f"{row}: CPU per request after / before = {ratio:.2f}")


if __name__ == "__main__":
    main()
