"""Old code against new, interleaved in one run: the reservation service rows
(bench/reservations.py) and the HTTP rows (bench/http_throughput.py).

    git archive main | tar -x -C /tmp/before
    .venv/bin/python bench/before_after.py --before /tmp/before [--rounds 3] [--duration 8]

Each round runs the pgbench ceilings once (the database functions: the same
for both trees), then the service rows and the HTTP rows with each tree's own
code, the two trees in alternating order (before first in odd rounds, after
first in even ones) so that a change of machine load hits both alike. Every
child run uses this tree's bench database (BENCH_DATABASE_URL; build it first
with bench/reservations.py) and BENCH_REDIS_URL under one key prefix of this run,
deleted at the end. Prints medians per row and tree, each tree's ratio to its
same-round baseline (the function's pgbench ceiling; ping for HTTP), the
after/before ratio, and the load average.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
AFTER = HERE.parent
os.environ.setdefault("STOCKROOM_AVAILABILITY_KEY_PREFIX", f"bench-ba-{secrets.token_hex(4)}")
sys.path.insert(0, str(HERE))
from common import delete_bench_keys  # noqa: E402

# --rows of bench/reservations.py: comma-separated substrings of the row labels
CEILINGS = "1 line,batch of 500 orders"
SERVICE = "1 line,500 orders"
HTTP_ROWS = "ping,reserve,batch-500"
# (service row, its ceiling row): both as bench/reservations.py labels them
SERVICE_CEILING = {
    "service: stock_reserve, 1 line": "project function, 1 line",
    "service: stock_reserve, 1 line, sold-out gate on": "project function, 1 line",
    "service: stock_reserve, 1 line (ORM engine)": "project function, 1 line",
    "service: stock_reserve_batch, 500 orders": "project function, batch of 500 orders",
    "service: stock_reserve_batch, 500 orders, hot SKU": (
        "project function, batch of 500 orders, hot SKU"
    ),
}
LINE = re.compile(r"^# \d+/\d+ (?P<label>.+): (?P<rate>[\d,.]+)(?: req)?/s", re.M)


def run(tree: Path, *args: str) -> dict[str, float]:
    """One child bench run from `tree`; its per-row rates."""
    out = subprocess.run(
        [sys.executable, *args], cwd=tree, env=dict(os.environ, PYTHONPATH=str(tree)),
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"{tree}: {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return {m["label"]: float(m["rate"].replace(",", "")) for m in LINE.finditer(out.stdout)}


def ceiling_of(ceilings: dict[str, float], shape: str) -> float:
    return max(ceilings.get(f"ceiling: {shape} [{mode}]", 0.0) for mode in ("simple", "prepared"))


class Results:
    """Rates per (tree, row) and ratios to the same round's baseline, per round."""

    def __init__(self) -> None:
        self.rates: dict[tuple[str, str], list[float]] = {}
        self.ratios: dict[tuple[str, str], list[float]] = {}

    def add(self, tree: str, row: str, rate: float, baseline: float | None = None) -> None:
        self.rates.setdefault((tree, row), []).append(rate)
        if baseline:
            self.ratios.setdefault((tree, row), []).append(rate / baseline)

    def service(self, tree: str, found: dict[str, float], ceilings: dict[str, float]) -> None:
        for label, rate in found.items():
            shape = SERVICE_CEILING.get(label)
            self.add(tree, label, rate, ceiling_of(ceilings, shape) if shape else None)

    def http(self, tree: str, found: dict[str, float], ceilings: dict[str, float]) -> None:
        ping = next((r for label, r in found.items() if label.endswith("| ping")), None)
        batch = ceiling_of(ceilings, "project function, batch of 500 orders")
        for label, rate in found.items():
            row = "http: " + label.split("| ", 1)[1]
            self.add(tree, row, rate, ping)
            if row == "http: batch-500" and batch:
                self.add(tree, "http: batch-500, orders/s vs the function's ceiling",
                         rate * 500, batch)  # fmt: skip

    def table(self) -> None:
        median = statistics.median
        nan = [float("nan")]
        print("| row | before /s | after /s | after / before | before vs baseline "
              "| after vs baseline |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|")
        for (tree, label), values in self.rates.items():
            if tree == "ceiling":
                print(f"| ceiling: {label} | {median(values):,.0f} | (same run) | | | |")
        for label in dict.fromkeys(label for tree, label in self.rates if tree != "ceiling"):
            before = median(self.rates.get(("before", label), nan))
            after = median(self.rates.get(("after", label), nan))
            old = median(self.ratios.get(("before", label), nan))
            new = median(self.ratios.get(("after", label), nan))
            print(f"| {label} | {before:,.0f} | {after:,.0f} | {after / before:.2f} "
                  f"| {old:.0%} | {new:.0%} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, type=Path, help="the old tree")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--skus", type=int, help="bench catalogue size")
    parser.add_argument("--clients", type=int, help="pgbench connections")
    parser.add_argument("--service-rows", default=SERVICE, help="reservations.py --rows")
    parser.add_argument("--http-rows", default=HTTP_ROWS, help="http_throughput.py --rows")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--no-service", action="store_true")
    args = parser.parse_args()
    duration = str(args.duration)
    skus = ["--skus", str(args.skus)] if args.skus else []
    clients = ["--clients", str(args.clients)] if args.clients else []
    trees = {"before": args.before.resolve(), "after": AFTER}
    results = Results()
    loads = []
    started = time.monotonic()
    try:
        for n in range(args.rounds):
            loads.append(os.getloadavg()[0])
            ceilings = run(AFTER, "bench/reservations.py", "--only", "ceiling", "--rows",
                           CEILINGS, "--repeats", "1", "--duration", duration,
                           *skus, *clients)  # fmt: skip
            for shape in ("project function, 1 line", "project function, batch of 500 orders"):
                results.add("ceiling", shape, ceiling_of(ceilings, shape))
            for name in ("before", "after") if n % 2 == 0 else ("after", "before"):
                if not args.no_service:
                    found = run(trees[name], "bench/reservations.py", "--only", "service",
                                "--rows", args.service_rows, "--repeats", "1",
                                "--duration", duration, "--processes", str(args.processes),
                                *skus)  # fmt: skip
                    results.service(name, found, ceilings)
                if not args.no_http:
                    found = run(trees[name], "bench/http_throughput.py", "--configs", "1",
                                "--rows", args.http_rows, "--repeats", "1", "--duration", duration,
                                "--no-pgbouncer", *skus)  # fmt: skip
                    results.http(name, found, ceilings)
            print(f"# round {n + 1}/{args.rounds} done, load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        delete_bench_keys()
    loads.append(os.getloadavg()[0])
    print()
    print(f"{args.rounds} rounds x {args.duration}s per run, service {args.processes} "
          f"processes, {time.monotonic() - started:.0f}s in all")  # fmt: skip
    print(
        "load average (1 min) at each round's start and at the end: "
        f"{', '.join(f'{x:.1f}' for x in loads)} on {os.cpu_count()} CPUs"
    )
    print()
    results.table()


if __name__ == "__main__":
    main()
