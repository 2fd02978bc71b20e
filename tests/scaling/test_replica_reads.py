"""Replica reads (issue #21 item 3) against a real streaming replica.

A private primary (initdb) and a hot standby cloned from it (pg_basebackup -R),
on their own loopback ports and data directory (ops/pgcluster.py), stopped and
removed afterwards; the machine's cluster is not touched. The app runs in a
child process (tests/scaling/replica_probe.py) configured for that pair, since
this session's Django is bound to the test database: see the probe's docstring
for the steps. Replay is paused (`pg_wal_replay_pause()`) so the replica's
figures differ from the primary's: which figures an answer shows tells which
server it was read from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PGBIN = Path("/usr/lib/postgresql/15/bin")

REPLICA_ON_HAND = {"RP-1": 5}  # before replay was paused
PRIMARY_ON_HAND = {"RP-1": 12}  # after the receive on the primary only


@pytest.fixture(scope="module")
def probe():
    if not (PGBIN / "initdb").exists() or os.geteuid() != 0:
        pytest.skip("needs the PostgreSQL 15 server binaries and root (runs them as postgres)")
    from ops.pgcluster import PrivateCluster

    with PrivateCluster(prefix="stockroom-replica-test-") as primary:
        primary.create_database("stockroom_replica")
        with primary.replica() as replica:
            env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("DJANGO_", "DATABASE", "REDIS_", "CELERY_", "STOCKROOM_"))
            }
            env.update(
                DJANGO_SETTINGS_MODULE="inventory_site.settings.base",
                DJANGO_DEBUG="false",
                DATABASE_URL=primary.url("stockroom_replica"),
                DATABASE_REPLICA_URL=replica.url("stockroom_replica"),
                REPLICA_PGDATA=str(replica.pgdata),
                STOCKROOM_API_THROTTLE_RATE="100000/min",
                LOG_LEVEL="WARNING",
                PYTHONPATH=str(ROOT),
            )
            done = subprocess.run(
                [sys.executable, str(Path(__file__).with_name("replica_probe.py"))],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-5000:]
    return json.loads(lines[-1].removeprefix("PROBE "))


def test_reads_go_to_the_replica_when_it_is_fresh_enough(probe):
    seen = probe["paused"]
    assert seen["statuses"] == [200, 200, 200]
    # Every read path answered the replica's figures (replay paused before the receive).
    assert seen["availability"] == REPLICA_ON_HAND["RP-1"]
    assert seen["batch"]["RP-1"] == REPLICA_ON_HAND["RP-1"]
    assert seen["list_on_hand"] == REPLICA_ON_HAND["RP-1"]
    assert seen["export_on_hand"] == REPLICA_ON_HAND["RP-1"]
    assert seen["stats"].get("replica", 0) > 0


def test_stock_decisions_never_read_the_replica(probe):
    guards = probe["guards"]
    # 10 units exist only on the primary: the reservation was decided there.
    assert guards["reserve_status"] == 201
    # The cache was filled from the replica (RP-2 sold out there), yet the sold-out
    # gate let the reservation through to the primary, where the 3 units are.
    assert guards["replica_view_of_rp2"] == 0
    assert guards["gate_reserve_status"] == 201, guards["gate_reserve_body"]
    assert guards["stats_during_reservations"].get("replica", 0) == 0


def test_reads_fall_back_to_the_primary_above_the_lag_bound(probe):
    seen = probe["lagging"]
    assert seen["statuses"] == [200, 200, 200]
    on_primary = PRIMARY_ON_HAND["RP-1"] - 10 + 1  # reserved 10 (available), received 1
    assert seen["availability"] == on_primary
    assert seen["list_on_hand"] == PRIMARY_ON_HAND["RP-1"] + 1
    assert seen["export_on_hand"] == PRIMARY_ON_HAND["RP-1"] + 1
    assert seen["stats"].get("replica", 0) == 0
    assert seen["stats"].get("primary_because_lag", 0) > 0
    assert any("lag" in line and "primary" in line for line in seen["log"]), seen["log"]


def test_reads_return_to_the_replica_once_caught_up(probe):
    seen = probe["resumed"]
    assert seen["list_on_hand"] == PRIMARY_ON_HAND["RP-1"] + 1
    assert seen["stats"].get("replica", 0) > 0


def test_reads_fall_back_to_the_primary_when_the_replica_is_down(probe):
    seen = probe["down"]
    assert seen["statuses"] == [200, 200, 200]
    assert seen["list_on_hand"] == PRIMARY_ON_HAND["RP-1"] + 1
    assert seen["export_on_hand"] == PRIMARY_ON_HAND["RP-1"] + 1
    assert seen["stats"].get("replica", 0) == 0
    assert any("down" in line for line in seen["log"]), seen["log"]
