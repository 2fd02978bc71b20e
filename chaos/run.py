"""The long chaos runs: seeded HTTP workload against gunicorn, one fault per scenario.

    .venv/bin/python chaos/run.py --seed 1 --ops 100000 --clients 16
    .venv/bin/python chaos/run.py --scenario redis --ops 20000
    .venv/bin/python chaos/run.py --scenario failover --ops 5000 --kills 5   # pg_auto_failover

Uses its own database (`--database`, default stockroom_chaos on 127.0.0.1; it is
dropped and re-created at the start of a run, never any other), a private Redis
on a free loopback port and gunicorn on loopback, all started and stopped here.
`--ops` is the number of client operations per scenario (reads included in the
mix; reads are not counted as operations in the report). Faults are scheduled by
operation number, not by time: `--fault-every N` fires the scenario's fault at
every N-th client operation (defaults per scenario in chaos/scenarios.py), and
Redis (or the broker) stays down for `--down-ops` operations; so a given
`--ops` always sees the same number of faults. The clients run until the budget
is spent; `--max-seconds` is only a safety cap, and a scenario that hits it
fails. Prints one report line per scenario and exits non-zero if any invariant
was broken.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCENARIOS = ["baseline", "redis", "pg_terminate", "kill_worker"]


def recreate_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    assert name.startswith("stockroom_chaos"), "chaos/run.py only drops databases it owns"
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--scenario", action="append", choices=[*SCENARIOS, "hot_row", "broker", "failover"]
    )
    parser.add_argument(
        "--failover-kill",
        choices=["postmaster", "node"],
        default="node",
        help="failover: what is SIGKILLed (chaos/failover.py)",
    )
    parser.add_argument("--kills", type=int, default=5, help="failover: kills per mode")
    parser.add_argument("--ops", type=int, default=100_000, help="client operations per scenario")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument(
        "--fault-every",
        type=int,
        help="client operations between faults (default per scenario: "
        "redis 150, pg_terminate 40, kill_worker 100, broker 100)",
    )
    parser.add_argument(
        "--down-ops", type=int, help="client operations Redis/the broker stays down (default 50)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=3600,
        help="safety cap per scenario (a scenario that reaches it fails)",
    )
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/stockroom_chaos")
    parser.add_argument("--json", help="also write the reports to this file")
    args = parser.parse_args()

    if args.scenario and "failover" in args.scenario:
        # Its own PostgreSQL formation (pg_auto_failover), not --database.
        if args.scenario != ["failover"]:
            parser.error("--scenario failover runs alone (it brings up its own cluster)")
        from chaos import failover

        return failover.main(
            ["--mode", "sync", "--mode", "async", "--kill", args.failover_kill,
             "--kills", str(args.kills), "--ops", str(args.ops), "--clients", str(args.clients),
             "--workers", str(args.workers), "--seed", str(args.seed),
             "--max-seconds", str(args.max_seconds)]
            + (["--json", args.json] if args.json else [])
        )  # fmt: skip
    recreate_database(args.database)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "inventory_site.settings.base",
            "DATABASE_URL": args.database,
            "DJANGO_DEBUG": "false",
            "STOCKROOM_AVAILABILITY_CACHE": "false",
            "LOG_LEVEL": "WARNING",
        }
    )
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from chaos.scenarios import run_broker, run_hot_row, run_scenario

    reports, clean = [], True
    for name in args.scenario or [*SCENARIOS, "hot_row", "broker"]:
        started = time.monotonic()
        if name == "broker":
            broker = run_broker(
                seed=args.seed,
                clients=args.clients,
                ops_per_client=-(-args.ops // args.clients),
                seconds=args.max_seconds,
                every=args.fault_every,
                down=args.down_ops,
                db_url=args.database,
            )
            ok = (
                broker.report.clean
                and broker.rows_covered_after_batch == broker.rows_below_threshold
                and broker.lines_created_by_second_batch == 0
                and broker.duplicate_open_lines == 0
            )
            print(
                f"{broker.report.line()} below_threshold={broker.rows_below_threshold} "
                f"ordered_by_batch={broker.rows_covered_after_batch} "
                f"second_batch_lines={broker.lines_created_by_second_batch} "
                f"duplicate_open_lines={broker.duplicate_open_lines}",
                flush=True,
            )
            reports.append(
                {k: v for k, v in broker.report.__dict__.items() if k != "details"}
                | {k: v for k, v in broker.__dict__.items() if k != "report"}
                | {"clean": ok}
            )
            clean &= ok
            continue
        if name == "hot_row":
            hot = run_hot_row(seed=args.seed, db_url=args.database)
            ok = (
                set(hot.hot_statuses) == {503}
                and hot.hot_retry_after == {"1"}
                and set(hot.other_statuses) <= {201, 409}
                and not hot.violations
            )
            print(f"hot_row        {hot} {time.monotonic() - started:.1f}s", flush=True)
            reports.append(
                {
                    "scenario": "hot_row",
                    **hot.__dict__,
                    "hot_retry_after": sorted(hot.hot_retry_after),
                }
            )
            clean &= ok
            continue
        # Clients run until the op budget is spent; --max-seconds only caps it (raises).
        report = run_scenario(
            name,
            seed=args.seed,
            clients=args.clients,
            ops_per_client=-(-args.ops // args.clients),
            seconds=args.max_seconds,
            db_url=args.database,
            workers=args.workers,
            every=args.fault_every,
            down=args.down_ops,
        )
        print(report.line(), flush=True)
        if not report.clean:
            print("  details:", report.details[:20], flush=True)
        clean &= report.clean
        reports.append(
            {k: v for k, v in report.__dict__.items() if k != "details"} | {"clean": report.clean}
        )
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2, default=str))
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
