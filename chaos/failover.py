"""Primary failover under the seeded workload: pg_auto_failover, SIGKILL, the checker.

    .venv/bin/python -m chaos.failover --mode sync --mode async --kills 3 --ops 3000

Brings up a pg_auto_failover formation on private loopback ports
(`ops/autofailover.py`: monitor, primary, secondary; the machine's cluster on
5432 is not touched), migrates its database, serves the app from gunicorn with
the multi-host URL (`target_session_attrs=read-write`) and runs the chaos
workload (chaos/workload.py) over it. At every `every`-th client operation it
SIGKILLs the primary's postmaster while requests are in flight (the clients are
not held: they run into the switch), measures the failover (kill → the other
node accepts writes) and, while the clients go on, waits until the old primary
has rejoined as a secondary (so every kill finds a replicated pair).

Afterwards: every unknown outcome is resolved by sending the same request
again, and chaos/checker.py checks that no acknowledged operation was lost or
doubled, nothing oversold, ledger and balances agree. Also reported: every
answer seen (a 500 is a failure of the run), 503s without Retry-After, the
first acknowledged write after each failover (the app reconnects by itself),
and, per kill, the WAL the standby had not yet replayed when the primary died
(asynchronous replication's loss window, in bytes).

`--mode sync` (default): both nodes in the replication quorum, so a commit is
acknowledged only once the standby has it. `--mode async`: out of the quorum.
Prints one JSON report per mode (also to `--json`), exits non-zero when a
synchronous run lost or doubled an acknowledged operation, or any run saw a 500.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# pg_auto_failover's monitor settings (ms) for --fast-detection; the defaults are
# 20000 / 30000 / 5000 / 2 retries.
FAST_DETECTION = {
    "pgautofailover.node_considered_unhealthy_timeout": 5000,
    "pgautofailover.primary_demote_timeout": 10000,
    "pgautofailover.health_check_period": 1000,
    "pgautofailover.health_check_retry_delay": 500,
}


@dataclass
class FailoverReport:
    mode: str
    kill: str = "postmaster"
    kills: int = 0
    failover_seconds: list = field(default_factory=list)  # kill → a primary writable again
    outcomes: list = field(default_factory=list)  # per kill: failover or restarted in place
    rejoin_seconds: list = field(default_factory=list)  # kill → old primary a secondary again
    # a primary writable again → the app's first acknowledged write (the reconnect)
    first_ack_after_seconds: list = field(default_factory=list)
    unreplayed_wal_bytes: list = field(default_factory=list)  # standby behind at the kill
    statuses: dict = field(default_factory=dict)  # first answer of every write
    read_statuses: dict = field(default_factory=dict)
    server_errors: int = 0  # 500s (writes and reads)
    unavailable_without_retry_after: int = 0
    acknowledged_after_last_failover: int = 0
    checker: dict = field(default_factory=dict)
    clean: bool = False

    def figures(self) -> dict:
        f = self.failover_seconds
        return {
            "failover_p50_s": round(statistics.median(f), 2) if f else None,
            "failover_max_s": round(max(f), 2) if f else None,
            "first_ack_p50_s": round(statistics.median(self.first_ack_after_seconds), 2)
            if self.first_ack_after_seconds
            else None,
        }


class _Watch(threading.Thread):
    """Waits, from the moment of the kill, until a node accepts writes again."""

    def __init__(self, formation, started: float) -> None:
        super().__init__(name="failover-watch", daemon=True)
        self.formation, self.started = formation, started
        self.value: tuple[str, float] | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            new = self.formation.wait_writable(timeout=180)
            self.value = (new, time.monotonic() - self.started)
        except BaseException as exc:
            self.error = exc

    def result(self) -> tuple[str, float]:
        self.join()
        if self.error is not None:
            raise self.error
        return self.value


def run_mode(formation, *, mode: str, kill: str, seed: int, clients: int, ops_per_client: int,
             every: int, workers: int, seconds: float) -> FailoverReport:  # fmt: skip
    from django.db import connections

    from chaos.checker import check
    from chaos.scenarios import api_key, setup_world, stack
    from chaos.workload import OK, Schedule, fault_points, resolve_unknowns, run_clients
    from ops.pgcluster import query

    formation.set_sync(mode == "sync")
    formation.wait_healthy()
    prefix = f"fo{mode[0]}{seed}x"
    connections.close_all()
    world = setup_world(prefix)
    client_pk, key = api_key(prefix)
    connections.close_all()
    report = FailoverReport(mode=mode, kill=kill)
    kills: list[float] = []
    errors: list[BaseException] = []
    schedule = Schedule(clients * ops_per_client)
    window = max(1, every // 4)

    def fault() -> None:
        try:
            for at in fault_points(schedule.budget, every):
                if not schedule.hold_at(at):
                    return
                try:
                    primary = formation.primary()
                    standby = next(n for n in ("node1", "node2") if n != primary)
                    try:  # how far the standby is behind right now (async: the loss window)
                        (lsn,) = query(formation.node_url(primary), "SELECT pg_current_wal_lsn()")[
                            0
                        ]
                        (behind,) = query(
                            formation.node_url(standby),
                            "SELECT pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())",
                            [lsn],
                        )[0]
                        report.unreplayed_wal_bytes.append(max(0, int(behind)))
                    except Exception:
                        report.unreplayed_wal_bytes.append(None)
                    started = time.monotonic()
                    if kill == "node":
                        formation.kill_primary_node()
                    else:
                        formation.kill_primary_postmaster()
                    kills.append(started)
                    switch = _Watch(formation, started)  # measures from the kill on
                finally:
                    schedule.release()  # the clients run into the switch
                # `window` operations meet the outage (503s, reconnects); the rest wait
                # for a writable primary, so every kill has clients after it too.
                held = schedule.hold_at(at + window)
                try:
                    new, seconds = switch.result()
                    report.failover_seconds.append(round(seconds, 3))
                    report.outcomes.append("failover" if new != primary else "restarted in place")
                finally:
                    if held:
                        schedule.release()
                # The lost node comes back and rejoins as a secondary (pg_rewind) while
                # the clients go on; the next kill waits for a replicated pair.
                if kill == "node":
                    formation.restart_node(primary)
                formation.wait_healthy(timeout=300)
                report.rejoin_seconds.append(round(time.monotonic() - started, 3))
        except BaseException as exc:
            errors.append(exc)
            schedule.release()

    with stack(formation.uri(), workers=workers, threads=4) as (_redis, server):
        thread = threading.Thread(target=fault, name="fault-failover", daemon=True)
        thread.start()
        try:
            run = run_clients(base_url=server.url, key=key, world=world, seed=seed,
                              clients=clients, ops_per_client=ops_per_client,
                              seconds=seconds, schedule=schedule)  # fmt: skip
        finally:
            schedule.close()
            thread.join(timeout=400)
        if errors:
            raise RuntimeError(f"the failover fault failed: {errors[0]!r}") from errors[0]
        formation.wait_healthy(timeout=300)
        time.sleep(1.0)  # requests still in flight on the server
        first = [op.attempts[0] for op in run.ops if op.attempts]
        report.statuses = dict(Counter(f"{s}:{c}" if c else str(s) for s, c, _, _ in first))
        report.read_statuses = {str(k): v for k, v in run.reads.items()}
        every_answer = [a for op in run.ops for a in op.attempts]
        report.server_errors = sum(1 for s, _, _, _ in every_answer if s == 500) + run.reads.get(
            500, 0
        )
        report.unavailable_without_retry_after = sum(
            1 for s, _, retry, _ in every_answer if s == 503 and not retry
        )
        acks = sorted(t for op in run.ops for s, _, _, t in op.attempts[:1] if op.outcome == OK
                      and isinstance(s, int) and s < 300)  # fmt: skip
        back = [k + s for k, s in zip(kills, report.failover_seconds, strict=False)]
        for writable in back:
            after = [t - writable for t in acks if t > writable]
            if after:
                report.first_ack_after_seconds.append(round(min(after), 3))
        if back:
            report.acknowledged_after_last_failover = sum(1 for t in acks if t > back[-1])
        report.kills = len(kills)
        resolve_unknowns(base_url=server.url, key=key, run=run)
        connections.close_all()  # the checker's own connection: find the new primary
        checked = check(scenario=f"failover-{mode}", seed=seed, world=world, run=run,
                        client_pk=client_pk, base_url=server.url, key=key)  # fmt: skip
    report.checker = {k: v for k, v in checked.__dict__.items() if k != "details"}
    report.checker["details"] = checked.details[:20]
    report.clean = (
        report.server_errors == 0
        and report.unavailable_without_retry_after == 0
        and report.kills > 0
        and len(report.failover_seconds) == report.kills
        and report.acknowledged_after_last_failover > 0
        and checked.unknown_left == 0
        and checked.oversold_units == 0
        and (mode == "async" or checked.clean)
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", action="append", choices=["sync", "async"])
    parser.add_argument(
        "--kill",
        choices=["postmaster", "node"],
        default="postmaster",
        help="postmaster: SIGKILL the primary's postmaster (its keeper may restart it "
        "before the monitor fails over); node: SIGKILL its keeper too (a lost machine: "
        "the monitor must fail over; the node is started again to rejoin)",
    )
    parser.add_argument(
        "--fast-detection",
        action="store_true",
        help="monitor: node unhealthy after 5 s (default 20 s), demote timeout 10 s "
        "(default 30 s), health checks every 1 s (default 5 s)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kills", type=int, default=3, help="failovers per mode")
    parser.add_argument("--ops", type=int, default=2000, help="client operations per mode")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--base-port", type=int, help="default: 26100 or the next free")
    parser.add_argument("--max-seconds", type=float, default=1800, help="safety cap per mode")
    parser.add_argument("--json", help="also write the reports to this file")
    args = parser.parse_args(argv)
    from ops.autofailover import AutoFailover

    formation = AutoFailover(
        base_port=args.base_port,
        dbname="stockroom_failover",
        monitor_settings=FAST_DETECTION if args.fast_detection else None,
    )
    reports = []
    started = time.monotonic()
    with formation:
        print(f"formation up in {time.monotonic() - started:.1f}s: {formation.uri()}", flush=True)
        os.environ.update({
            "DJANGO_SETTINGS_MODULE": "inventory_site.settings.base",
            "DATABASE_URL": formation.uri(),
            "DJANGO_DEBUG": "false",
            "STOCKROOM_AVAILABILITY_CACHE": "false",
            "LOG_LEVEL": "WARNING",
        })  # fmt: skip
        for name in ("REDIS_URL", "CELERY_BROKER_URL", "DATABASE_REPLICA_URL"):
            os.environ.pop(name, None)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        ops_per_client = -(-args.ops // args.clients)
        every = max(1, -(-ops_per_client * args.clients // (args.kills + 1)))
        for mode in args.mode or ["sync", "async"]:
            report = run_mode(formation, mode=mode, kill=args.kill, seed=args.seed,
                              clients=args.clients, ops_per_client=ops_per_client,
                              every=every, workers=args.workers,
                              seconds=args.max_seconds)  # fmt: skip
            line = asdict(report) | report.figures()
            print(json.dumps(line, default=str), flush=True)
            reports.append(line)
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2, default=str))
    return 0 if all(r["clean"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
