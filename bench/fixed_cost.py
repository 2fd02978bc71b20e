"""The fixed cost of a request: `GET /api/v1/ping/` against a bare DRF `APIView`.

    python bench/fixed_cost.py [--duration 8] [--repeats 3] [--connections 32]

Goal 1 of issue #18: ping (token authentication, scope check, throttle, request
id, the project's middleware and exception handling) at >= 70 % of a bare DRF
`APIView` (bench/bare_site.py: no middleware, no authentication, no database)
served by the same gunicorn settings (sync, 4 workers). Both servers run at the
same time; wrk drives them in turns (bare, ping, bare, ping, ...), so a change of
machine load hits both sides alike. Prints req/s per side (median over repeats),
the ratio, and the load average. Needs wrk and the bench database
(BENCH_DATABASE_URL, migrated) for the API client's token; Redis per
BENCH_REDIS_URL under the run's own key prefix.

`--profile ping` also runs py-spy (if installed) on one ping worker for the
duration of one wrk run and prints the top of its flat profile.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DB, delete_bench_keys
from http_throughput import Gunicorn, base_env, drain, manage, run_wrk

LUA_BARE = 'function request() return wrk.format("GET", "/bare/") end\n'


def wrk_bare(port: int, duration: int, connections: int, threads: int) -> dict:
    import http_throughput

    http_throughput.LUA_ROWS.setdefault("bare", LUA_BARE)
    return run_wrk(port, "bare", "unused", duration, connections, threads, "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--profile", action="store_true", help="py-spy one ping worker")
    parser.add_argument("--old", help="also serve ping from this tree (a git archive of main)")
    args = parser.parse_args()
    gunicorn_args = ["-k", "sync", "-w", str(args.workers)]
    env = base_env(BENCH_DB)
    key = manage(env, "create_api_client", f"bench-fixed-{uuid.uuid4().hex[:8]}",
                 "--scope", "read").strip().splitlines()[-1]  # fmt: skip
    bare_env = dict(env, DJANGO_SETTINGS_MODULE="bench.bare_site")
    bare = ping = old = None
    results: dict[str, list[dict]] = {"bare": [], "ping": [], "old": []}
    try:
        bare = Gunicorn(gunicorn_args, bare_env)
        ping = Gunicorn(gunicorn_args, env)
        if args.old:
            old = Gunicorn(gunicorn_args, dict(env, PYTHONPATH=args.old), cwd=Path(args.old))
        for _ in range(2):  # warm every worker
            wrk_bare(bare.port, 2, args.connections, args.threads)
            for server in (ping, old):
                if server is not None:
                    run_wrk(server.port, "ping", key, 2, args.connections, args.threads, "")
        for repeat in range(args.repeats):
            drain(ping.port, key)
            results["bare"].append(
                wrk_bare(bare.port, args.duration, args.connections, args.threads)
            )
            for name, server in (("ping", ping), ("old", old)):
                if server is not None:
                    results[name].append(
                        run_wrk(
                            server.port,
                            "ping",
                            key,
                            args.duration,
                            args.connections,
                            args.threads,
                            "",
                        )
                    )
            done = ", ".join(f"{n} {r[-1]['rps']:,.0f} req/s" for n, r in results.items() if r)
            print(f"# {repeat + 1}/{args.repeats}: {done}", flush=True)
        if args.profile:
            profile(ping, key, args)
    finally:
        for server in (bare, ping, old):
            if server is not None:
                server.stop()
        delete_bench_keys()
    bare_rps = statistics.median(r["rps"] for r in results["bare"])
    ping_rps = statistics.median(r["rps"] for r in results["ping"])
    print()
    print(f"load average (1/5 min) at the end: {os.getloadavg()[0]:.1f} / "
          f"{os.getloadavg()[1]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print(
        f"gunicorn {' '.join(gunicorn_args)}; wrk {args.threads} threads, {args.connections} "
        f"connections, {args.repeats} x {args.duration}s per side, alternating (medians)"
    )
    print()
    print("| row | req/s | p50 ms | p99 ms | non-2xx | vs bare APIView |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, label in (
        ("bare", "bare DRF APIView (bench/bare_site.py)"),
        ("old", f"GET /api/v1/ping/, code of {args.old}"),
        ("ping", "GET /api/v1/ping/ (auth, scope, throttle, request id)"),
    ):
        runs = results[name]
        if not runs:
            continue
        rps = statistics.median(r["rps"] for r in runs)
        print(f"| {label} | {rps:,.0f} | {statistics.median(r['p50'] for r in runs):.1f} "
              f"| {statistics.median(r['p99'] for r in runs):.1f} "
              f"| {sum(r['non2xx'] for r in runs)} | {rps / bare_rps:.0%} |")  # fmt: skip
    print()
    print(f"ping / bare = {ping_rps / bare_rps:.2f}")


def profile(server: Gunicorn, key: str, args) -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("# py-spy not installed: no profile")
        return
    pid = server.worker_pids()[0]
    out = Path(f"/tmp/fixed_cost_profile_{os.getpid()}.txt")
    proc = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(args.duration), "--format", "raw",
         "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    run_wrk(server.port, "ping", key, args.duration, args.connections, args.threads, "")
    proc.wait()
    print(f"# py-spy raw stacks of worker {pid}: {out}")


if __name__ == "__main__":
    main()
