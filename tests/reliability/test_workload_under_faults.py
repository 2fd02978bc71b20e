"""Short CI versions of the chaos runs (chaos/run.py runs the long ones).

Each test serves the app from gunicorn on loopback (its own processes, pointed at
the test database and a private Redis on a free port), runs a seeded workload of
concurrent HTTP clients with one fault injected, resolves the unknown outcomes
and checks every invariant from the database. The shared Redis/RabbitMQ are not
touched; PostgreSQL faults only hit backends of the test database.
"""

import pytest

from chaos.scenarios import database_url, run_hot_row, run_scenario, stack
from chaos.workload import fault_points

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SEED = 20261127


@pytest.fixture(scope="module")
def running(django_db_setup, django_db_blocker):
    """One private Redis and gunicorn for the scenarios (each fault restores them)."""
    with django_db_blocker.unblock(), stack(database_url(), workers=3) as processes:
        yield processes


# The workload runs its whole budget (CLIENTS x OPS_PER_CLIENT client operations);
# faults fire at fixed operation numbers, so every machine sees the same number
# of them. SAFETY_CAP only fails a run that hangs; it never ends one early.
CLIENTS, OPS_PER_CLIENT = 8, 60
BUDGET = CLIENTS * OPS_PER_CLIENT
SAFETY_CAP = 600
EVERY = {"redis": 120, "pg_terminate": 60, "kill_worker": 80}
REDIS_DOWN = 40


# baseline runs in chaos/run.py; here every scenario runs under a fault.
@pytest.mark.parametrize("scenario", ["redis", "pg_terminate", "kill_worker"])
def test_no_oversell_loss_or_duplicate_under_fault(scenario, running):
    report = run_scenario(
        scenario,
        seed=SEED,
        clients=CLIENTS,
        ops_per_client=OPS_PER_CLIENT,
        seconds=SAFETY_CAP,
        running=running,
        every=EVERY[scenario],
        down=REDIS_DOWN,
    )
    print(report.line())
    faults = len(fault_points(BUDGET, EVERY[scenario]))  # 3 outages, 7 rounds, 5 kills

    assert report.attempted > 30
    assert report.acknowledged > 15
    assert report.unknown_left == 0, report.details
    assert report.oversold_units == 0, report.details
    assert report.lost == 0, report.details
    assert report.duplicated == 0, report.details
    assert report.phantom == 0, report.details
    assert report.unattributed_ledger_rows == 0, report.details
    assert report.invariant_violations == 0, report.details
    assert report.cache_mismatches == 0
    if scenario == "redis":
        # The API kept answering availability from the database while Redis was away:
        # reads were sent during every outage (each outage is REDIS_DOWN operations,
        # a fifth of them reads), and every read was a 200.
        assert report.faults["redis_stopped"] == faults >= 2
        assert report.faults["outages_with_reads"] == faults, report.faults
        assert set(report.reads) == {200}, report.reads
    if scenario == "pg_terminate":
        assert report.faults["terminations"] == faults >= 2
        assert report.faults["backends_terminated"] >= faults
    if scenario == "kill_worker":
        assert report.faults["workers_killed"] == faults >= 2


def test_the_workload_fails_loudly_if_it_cannot_spend_its_budget_in_time():
    """The time limit is a safety cap, not a stopping rule: a run held at an
    operation (here by a fault that never lets it go) raises, it does not end
    quietly with fewer operations or faults than its budget promises."""
    from chaos.workload import Schedule, WorkloadTimeout, World, run_clients

    schedule = Schedule(4 * 5)
    assert schedule.hold_at(0)  # nothing may start, and nobody releases it
    with pytest.raises(WorkloadTimeout, match="0 of 20 operations done"):
        run_clients(
            base_url="http://127.0.0.1:9",  # never called: nothing starts
            key="unused",
            world=World("tmo", ["tmoS0"], [], ["CW1"]),
            seed=SEED,
            clients=4,
            ops_per_client=5,
            seconds=1,
            schedule=schedule,
        )


def test_hot_row_fails_fast_with_503_while_other_skus_are_served():
    report = run_hot_row(seed=SEED)  # 3 x 3 hot and 3 x 50 other requests, row held meanwhile
    print(report)

    # The row is held until every client is done: each hot request meets it.
    assert report.hot_statuses == {503: 9}
    assert report.hot_retry_after == {"1"}
    # lock_timeout is 1 s in this server; a routed reservation tries twice.
    assert report.hot_max_seconds < 4.0
    assert report.other_statuses.get(201, 0) >= 3
    assert set(report.other_statuses) <= {201, 409}
    assert sum(report.other_statuses.values()) == 150
    # Never stuck behind the hot row's lock (the shared CI box can be slow, so
    # the bound is loose; the hot requests each wait the whole lock_timeout).
    assert report.other_max_seconds < 2.0
    assert report.violations == 0


def test_broker_stopped_repeatedly_loses_no_stock_operation_or_reorder():
    from chaos.scenarios import run_broker

    result = run_broker(
        seed=SEED, clients=6, ops_per_client=60, seconds=SAFETY_CAP, every=90, down=30
    )
    report = result.report
    print(report.line(), result)

    assert result.broker_stopped == len(fault_points(6 * 60, 90)) >= 2
    assert report.acknowledged > 15
    assert report.unknown_left == 0, report.details
    assert report.oversold_units == 0, report.details
    assert report.lost == 0, report.details
    assert report.duplicated == 0, report.details
    assert report.phantom == 0, report.details
    assert report.invariant_violations == 0, report.details
    # Reorder work is not lost: the daily batch orders every row below its
    # threshold, exactly once (a second run adds nothing, no row has two lines).
    assert result.rows_below_threshold > 0
    assert result.rows_covered_after_batch == result.rows_below_threshold
    assert result.lines_created_by_second_batch == 0
    assert result.duplicate_open_lines == 0
