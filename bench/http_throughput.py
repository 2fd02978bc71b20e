"""HTTP throughput: the API under gunicorn (production settings), driven by wrk on loopback.

    .venv/bin/python bench/http_throughput.py [--duration 8] [--repeats 3] [--connections 32]

Uses the bench database (run bench/reservations.py once first: 1,000,000 SKUs in
warehouse BW01) and BENCH_REDIS_URL (default db 9) under a key prefix of the run's
own, deleted by prefix at the end. For each server configuration it starts gunicorn
on a free 127.0.0.1 port with `inventory_site.settings.production` (a random
secret key, no SSL redirect, throttling raised), creates an API client with
`manage.py create_api_client`, runs wrk with a Lua script per row (unique order
ids per request), samples the workers' resident memory (VmRSS) mid-run, and stops
gunicorn (and PgBouncer) itself, also on failure or Ctrl-C. Rows:

* `GET /api/v1/ping/`: token, scope and throttle checks and nothing else (the
  framework's ceiling on this server);
* `POST /reservations/` (1 line, random SKU of 1,000,000; and all on one hot SKU);
* `POST /reservations/batch/` with 100 and 500 one-line orders (random; all on one hot SKU);
* `POST /reservations/{id}/release/` and `…/fulfill/` of orders reserved before the run;
* `GET /availability/{sku}/` and `GET /availability/?sku=…` x100, SKUs drawn from a
  working set of 10,000 (served from the Redis read model once warm).

Configurations: sync workers with persistent connections (the default), gthread,
`DB_CONN_MAX_AGE=0` (a new PostgreSQL connection per request), and PgBouncer in
transaction mode on 127.0.0.1:6433 (`--no-pgbouncer` to skip; needs Debian's
`pgbouncer` package). Prints one markdown table with medians over repeats.

(Not named bench/http.py: as a script's directory, bench/ is first on sys.path, and
a bench/http.py would shadow the standard library's `http` for every bench script
that imports Django.)
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DB, ROOT, bench_redis_env, delete_bench_keys

# The project's .venv, else the interpreter running this script (a worktree that
# shares another checkout's virtualenv).
_BIN = ROOT / ".venv" / "bin" if (ROOT / ".venv" / "bin" / "python").exists() else None
PYTHON = str(_BIN / "python") if _BIN else sys.executable
GUNICORN = str(_BIN / "gunicorn") if _BIN else str(Path(sys.executable).parent / "gunicorn")
PGBOUNCER_PORT = 6433
SKUS = 1_000_000
WORKING_SET = 10_000
HOT_SKU = "BENCH-0000007"
PREPARED_ORDERS = 30_000  # reserved before each release/fulfil run

LUA_COMMON = r"""
local counter = 0
local threads = {}  -- in the main state; each thread gets a global `tid` from setup()
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(os.time() * 1000 + tid)
  wrk.headers["Authorization"] = "Token " .. KEY
  wrk.headers["Content-Type"] = "application/json"
end
local function sku(n) return string.format("BENCH-%07d", n) end
local function next_id()
  counter = counter + 1
  return RUN .. "-" .. tid .. "-" .. counter
end
"""


def lua_batch(size: int, hot: bool) -> str:
    """wrk request(): one POST /reservations/batch/ of `size` one-line orders, on
    random SKUs or all on the hot SKU."""
    pick = "HOT" if hot else "sku(math.random(0, SKUS - 1))"
    return f"""
function request()
  local id = next_id()
  local parts = {{}}
  for k = 1, {size} do
    parts[k] = '{{"order_id":"' .. id .. '-' .. k .. '","lines":[{{"sku":"' ..
      {pick} .. '","quantity":1,"warehouse":"BW01"}}]}}'
  end
  return wrk.format("POST", "/api/v1/reservations/batch/", nil,
    '{{"orders":[' .. table.concat(parts, ",") .. ']}}')
end
"""


LUA_ROWS = {
    "ping": r"""
function request() return wrk.format("GET", "/api/v1/ping/") end
""",
    "reserve": r"""
function request()
  local body = '{"order_id":"' .. next_id() .. '","lines":[{"sku":"' ..
    sku(math.random(0, SKUS - 1)) .. '","quantity":1,"warehouse":"BW01"}]}'
  return wrk.format("POST", "/api/v1/reservations/", nil, body)
end
""",
    **{
        f"batch{'-500' if size == 500 else ''}{'-hot' if hot else ''}": lua_batch(size, hot)
        for size in (100, 500)
        for hot in (False, True)
    },
    # Orders PREP-0 .. PREP-(N-1) exist; thread t of T takes t, t+T, t+2T, ...
    "release": r"""
function request()
  local i = tid + counter * THREADS
  counter = counter + 1
  return wrk.format("POST", "/api/v1/reservations/" .. PREP .. "-" .. i .. "/release/")
end
""",
    "fulfill": r"""
function request()
  local i = tid + counter * THREADS
  counter = counter + 1
  return wrk.format("POST", "/api/v1/reservations/" .. PREP .. "-" .. i .. "/fulfill/")
end
""",
    "availability": r"""
function request()
  return wrk.format("GET", "/api/v1/availability/" .. sku(math.random(0, WSET - 1)) .. "/")
end
""",
    "availability-100": r"""
function request()
  local parts = {}
  for k = 1, 100 do parts[k] = "sku=" .. sku(math.random(0, WSET - 1)) end
  return wrk.format("GET", "/api/v1/availability/?" .. table.concat(parts, "&"))
end
""",
    "reserve-hot": r"""
function request()
  local body = '{"order_id":"' .. next_id() ..
    '","lines":[{"sku":"' .. HOT .. '","quantity":1,"warehouse":"BW01"}]}'
  return wrk.format("POST", "/api/v1/reservations/", nil, body)
end
""",
}

ROW_LABELS = {
    "ping": "GET /ping/ (trivial DRF view: the ceiling)",
    "reserve": "POST /reservations/, 1 line, uniform SKUs",
    "reserve-hot": "POST /reservations/, 1 line, one hot SKU",
    "batch": "POST /reservations/batch/, 100 orders, uniform",
    "batch-hot": "POST /reservations/batch/, 100 orders, one hot SKU",
    "batch-500": "POST /reservations/batch/, 500 orders, uniform",
    "batch-500-hot": "POST /reservations/batch/, 500 orders, one hot SKU",
    "release": "POST /reservations/{id}/release/ (whole order)",
    "fulfill": "POST /reservations/{id}/fulfill/ (whole order)",
    "availability": "GET /availability/{sku}/",
    "availability-100": "GET /availability/?sku= x100",
}
ORDERS_PER_REQUEST = {
    "batch": 100,
    "batch-hot": 100,
    "batch-500": 500,
    "batch-500-hot": 500,
    "availability-100": 100,
}
# A 100-order batch takes far longer than a ping: with 32 connections queued on 4
# sync workers a request would wait most of a short run. 2 per worker keeps them busy.
CONNECTIONS = {"batch": 8, "batch-hot": 8, "batch-500": 8, "batch-500-hot": 8}

# (configuration, gunicorn arguments, extra environment, rows)
CONFIGS = [
    ("sync 4 workers, persistent connections", ["-k", "sync", "-w", "4"], {}, list(LUA_ROWS)),
    ("gthread 4x4, persistent connections", ["-k", "gthread", "-w", "4", "--threads", "4"], {},
     ["ping", "reserve", "batch-500"]),
    ("sync 4 workers, CONN_MAX_AGE=0", ["-k", "sync", "-w", "4"], {"DB_CONN_MAX_AGE": "0"},
     ["ping", "reserve"]),
    ("sync 4 workers, via PgBouncer (transaction pooling)", ["-k", "sync", "-w", "4"],
     {"PGBOUNCER": "1", "DB_DISABLE_SERVER_SIDE_CURSORS": "true"},
     ["ping", "reserve", "batch-500"]),
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "inventory_site.settings.production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": database_url,
            **bench_redis_env(),
            "STOCKROOM_API_THROTTLE_RATE": "100000000/min",
            "LOG_LEVEL": "ERROR",  # 409s and 404s are expected; do not log each
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


class PgBouncer:
    """Debian's pgbouncer on 127.0.0.1:6433, transaction pooling, run as `postgres`."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="stockroom-pgbouncer-"))
        self.proc: subprocess.Popen | None = None

    def start(self) -> str:
        db = BENCH_DB.rsplit("/", 1)[1]
        (self.dir / "userlist.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            f"[databases]\n{db} = host=127.0.0.1 port=5432 dbname={db}\n\n"
            f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {PGBOUNCER_PORT}\n"
            f"unix_socket_dir =\nauth_type = trust\nauth_file = {self.dir}/userlist.txt\n"
            "pool_mode = transaction\ndefault_pool_size = 8\nmax_client_conn = 200\n"
            # Session options cannot follow a client across transactions: timeouts
            # belong on the database role in production (docs/SCALING.md).
            "ignore_startup_parameters = extra_float_digits, options\n"
            f"logfile = {self.dir}/pgbouncer.log\n"
        )
        shutil.chown(self.dir, "postgres")
        for name in ("userlist.txt", "pgbouncer.ini"):
            shutil.chown(self.dir / name, "postgres")
        # Started as `postgres` directly (pgbouncer refuses root), so that the
        # signal in stop() reaches pgbouncer itself, not a wrapper.
        self.proc = subprocess.Popen(
            ["pgbouncer", str(self.dir / "pgbouncer.ini")],
            user="postgres",
            group="postgres",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(PGBOUNCER_PORT, self.proc)
        return f"postgres://postgres@127.0.0.1:{PGBOUNCER_PORT}/{db}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # pgbouncer: SIGINT = shut down
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"process on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Gunicorn:
    def __init__(self, args: list[str], env: dict[str, str], cwd: Path = ROOT) -> None:
        self.port = free_port()
        self.env = env
        self.proc = subprocess.Popen(
            [GUNICORN, "inventory_site.wsgi:application", "-b", f"127.0.0.1:{self.port}",
             "--backlog", "2048", "--timeout", "60", "--log-level", "warning", *args],
            cwd=cwd, env=env, start_new_session=True,
        )  # fmt: skip
        wait_for_port(self.port, self.proc)

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def worker_rss_mb(self) -> list[float]:
        sizes = []
        for pid in self.worker_pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"VmRSS:\s+(\d+) kB", status)
            if match:
                sizes.append(int(match.group(1)) / 1024)
        return sizes

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful: workers finish and exit
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def manage(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"manage.py {args[0]} failed: {out.stderr[-2000:]}")
    return out.stdout


def prepare_orders(env: dict[str, str], prefix: str, count: int) -> None:
    """Reserve `count` one-line orders PREFIX-0.. (through the batch service) so the
    release/fulfil rows have orders to close."""
    code = f"""
import django, random
django.setup()
from inventory import services
from inventory.services import OrderRequest, ReserveLine
rng = random.Random(7)
for start in range(0, {count}, 500):
    orders = [OrderRequest("{prefix}-%d" % i,
              [ReserveLine("BENCH-%07d" % rng.randrange({SKUS}), "BW01", 1)])
              for i in range(start, min(start + 500, {count}))]
    bad = [o for o in services.stock_reserve_batch(orders=orders, actor="system:bench") if o.error]
    assert not bad, bad[:3]
# Fresh planner statistics: after hundreds of thousands of quick inserts the
# reservation tables' stats lag autovacuum, and a stale estimate turns the
# order-lines lookup of every release/fulfil into a parallel scan (12 ms -> 1 ms).
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("ANALYZE inventory_reservation")
    cursor.execute("ANALYZE inventory_reservationline")
"""
    out = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"preparing orders failed: {out.stderr[-2000:]}")


def warm_read_model(env: dict[str, str]) -> None:
    """Fill the Redis read model for the working set (not timed): the availability
    rows measure a warm cache, as a storefront's popular SKUs are."""
    code = f"""
import django
django.setup()
from inventory import selectors
for start in range(0, {WORKING_SET}, 100):
    selectors.availability_for_skus(["BENCH-%07d" % n for n in range(start, start + 100)])
"""
    out = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"warming the read model failed: {out.stderr[-2000:]}")


def drain(port: int, key: str, timeout: float = 90) -> None:
    """Wait until the requests wrk left queued have been served: a ping answered
    quickly. (A sync worker serves every queued request, even after wrk hung up.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/ping/", headers={"Authorization": f"Token {key}"}
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                pass
        except OSError:
            pass
        if time.monotonic() - started < 0.25:
            return
    print(f"# server still busy after {timeout}s", flush=True)


def run_wrk(
    port: int, row: str, key: str, duration: int, connections: int, threads: int, prep: str
) -> dict:
    run_id = f"h{uuid.uuid4().hex[:10]}"
    script = (
        f'local KEY = "{key}"\nlocal RUN = "{run_id}"\nlocal SKUS = {SKUS}\n'
        f'local WSET = {WORKING_SET}\nlocal HOT = "{HOT_SKU}"\nlocal PREP = "{prep}"\n'
        f"local THREADS = {threads}\n" + LUA_COMMON + LUA_ROWS[row]
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = f.name
    try:
        out = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
             "--timeout", "30s", "--latency", "-s", path, f"http://127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=duration + 60,
        )  # fmt: skip
    finally:
        os.unlink(path)
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    total = int(re.search(r"(\d+) requests in", text).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)

    def pct(p: str) -> float:
        match = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\b", text, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {
        "rps": rps,
        "p50": pct("50"),
        "p99": pct("99"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "total": total,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


def main() -> None:
    try:
        run()
    finally:
        delete_bench_keys()  # this run's keys only (its own prefix): never FLUSHDB


def run() -> None:  # noqa: C901 -- a flat script: one branch per command-line option
    global SKUS, WORKING_SET
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--no-pgbouncer", action="store_true")
    parser.add_argument("--configs", help="comma-separated config numbers (1-4) to run")
    parser.add_argument("--rows", help=f"comma-separated rows: {', '.join(LUA_ROWS)}")
    parser.add_argument(
        "--skus",
        type=int,
        default=SKUS,
        help="catalogue size of the bench database (BENCH_DATABASE_URL), e.g. 10000",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="serve availability from the database (STOCKROOM_AVAILABILITY_CACHE=false)",
    )
    args = parser.parse_args()
    SKUS, WORKING_SET = args.skus, min(WORKING_SET, args.skus)
    # SIGTERM too runs the `finally` blocks that stop gunicorn and PgBouncer.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    configs = list(enumerate(CONFIGS, 1))
    if args.configs:
        wanted = {int(x) for x in args.configs.split(",")}
        configs = [(n, c) for n, c in configs if n in wanted]
    if args.no_pgbouncer or not shutil.which("pgbouncer"):
        configs = [(n, c) for n, c in configs if "PGBOUNCER" not in c[2]]

    if args.rows:
        wanted_rows = set(args.rows.split(","))
        configs = [(n, (c, g, e, [r for r in rows if r in wanted_rows])) for n, (c, g, e, rows)
                   in configs]  # fmt: skip
    results: dict[tuple[str, str], list[dict]] = {}
    rss: dict[str, list[float]] = {}
    env0 = base_env(BENCH_DB)
    key = manage(env0, "create_api_client", f"bench-http-{uuid.uuid4().hex[:8]}",
                 "--scope", "storefront", "--scope", "operations",
                 "--scope", "read").strip().splitlines()[-1]  # fmt: skip
    started = time.monotonic()
    for _, (config, gunicorn_args, extra, rows) in configs:
        bouncer = PgBouncer() if extra.get("PGBOUNCER") else None
        server = None
        try:
            url = bouncer.start() if bouncer else BENCH_DB
            env = base_env(url)
            env.update({k: v for k, v in extra.items() if k != "PGBOUNCER"})
            if args.no_cache:
                env["STOCKROOM_AVAILABILITY_CACHE"] = "false"
            server = Gunicorn(gunicorn_args, env)
            # Workers boot and import lazily: warm every one up before measuring.
            for row in ("ping", "reserve", "availability"):
                run_wrk(server.port, row, key, 3, args.connections, args.threads, "")
            drain(server.port, key)
            for repeat in range(args.repeats):
                for row in rows:
                    prep = ""
                    drain(server.port, key)
                    if row in ("release", "fulfill"):
                        prep = f"prep{uuid.uuid4().hex[:8]}"
                        prepare_orders(env0, prep, PREPARED_ORDERS)
                    if row.startswith("availability") and repeat == 0 and not args.no_cache:
                        warm_read_model(env)
                    samples: list[float] = []

                    def sample(server=server, samples=samples) -> None:
                        samples.extend(server.worker_rss_mb())

                    # wrk runs in the foreground; sample RSS from a timer thread mid-run.
                    timer = threading.Timer(args.duration * 0.6, sample)
                    timer.start()
                    try:
                        result = run_wrk(server.port, row, key, args.duration,
                                         CONNECTIONS.get(row, args.connections), args.threads,
                                         prep)  # fmt: skip
                    finally:
                        timer.cancel()
                    result["rss"] = max(samples) if samples else float("nan")
                    rss.setdefault(config, []).extend(samples)
                    results.setdefault((config, row), []).append(result)
                    print(f"# {repeat + 1}/{args.repeats} {config} | {row}: "
                          f"{result['rps']:,.0f} req/s, non-2xx {result['non2xx']}/"
                          f"{result['total']} {result['socket_errors']} "
                          f"rss max {result['rss']:.0f} MB", flush=True)  # fmt: skip
        finally:
            if server is not None:
                server.stop()
            if bouncer is not None:
                bouncer.stop()

    print()
    elapsed = time.monotonic() - started
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"wrk {args.threads} threads, {args.connections} connections, {args.repeats} x "
          f"{args.duration}s per row (medians); total {elapsed:.0f}s")  # fmt: skip
    print()
    print("| configuration | row | connections | req/s | orders or SKUs/s | p50 ms | p99 ms "
          "| vs ping | non-2xx | worker RSS MB |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for config, *_ in CONFIGS:
        ping = [r["rps"] for r in results.get((config, "ping"), [])] or [
            r["rps"] for r in results.get((CONFIGS[0][0], "ping"), [])
        ]
        ceiling = statistics.median(ping) if ping else None
        for row in LUA_ROWS:
            runs = results.get((config, row))
            if not runs:
                continue
            rps = statistics.median(r["rps"] for r in runs)
            per = rps * ORDERS_PER_REQUEST.get(row, 1)
            vs = f"{rps / ceiling:.0%}" if ceiling else ""
            non2xx = sum(r["non2xx"] for r in runs)
            total = sum(r["total"] for r in runs)
            print(f"| {config} | {ROW_LABELS[row]} | {CONNECTIONS.get(row, args.connections)} "
                  f"| {rps:,.0f} | {per:,.0f} "
                  f"| {statistics.median(r['p50'] for r in runs):.1f} "
                  f"| {statistics.median(r['p99'] for r in runs):.1f} | {vs} "
                  f"| {non2xx}/{total} | {max(r['rss'] for r in runs):.0f} |")  # fmt: skip
    print()
    for config, samples in rss.items():
        if samples:
            print(f"worker RSS, {config}: median {statistics.median(samples):.0f} MB, "
                  f"max {max(samples):.0f} MB over {len(samples)} samples")  # fmt: skip


if __name__ == "__main__":
    main()
