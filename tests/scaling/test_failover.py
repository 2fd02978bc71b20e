"""Primary failover with pg_auto_failover under the chaos workload (issue #21 item 2).

The short CI version of `chaos/failover.py` (the long runs: `chaos/run.py
--scenario failover`, docs/SCALING.md). In a child process (this session's
Django is bound to the test database): a monitor, a primary and a secondary on
private loopback ports (ops/autofailover.py), the app on gunicorn with the
multi-host URL, a seeded workload, and the primary **node** SIGKILLed (keeper and
postmaster: a lost machine, so the monitor has to fail over; its failure
detection shortened by `--fast-detection` to keep the test short) while
requests are in flight; then the checker. Synchronous replication first (nothing
acknowledged may be lost or doubled), then asynchronous (reported, not
asserted: its loss window is what the run measures). Everything is stopped and
removed afterwards; the machine's cluster on 5432 is not touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# kill → a primary accepts writes again; measured 16-17 s with --fast-detection on a
# loaded 2-core machine (docs/measurements/2026-12-01_FAILOVER.md)
FAILOVER_BOUND_SECONDS = 60


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    if not shutil.which("pg_autoctl") or os.geteuid() != 0:
        pytest.skip("needs pg_autoctl (postgresql-15-auto-failover) and root")
    out = tmp_path_factory.mktemp("failover") / "reports.json"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE", "REDIS_", "CELERY_", "STOCKROOM_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "chaos.failover", "--mode", "sync", "--mode", "async",
         "--kill", "node", "--fast-detection", "--kills", "1", "--ops", "240", "--clients", "4",
         "--workers", "2", "--seed", "20261201", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert out.exists(), done.stdout[-3000:] + done.stderr[-5000:]
    return {r["mode"]: r for r in json.loads(out.read_text())}


def test_synchronous_failover_loses_and_doubles_nothing(reports):
    sync = reports["sync"]
    checker = sync["checker"]
    assert sync["kills"] == 1
    assert sync["outcomes"] == ["failover"]  # the other node took over
    assert sync["failover_seconds"][0] < FAILOVER_BOUND_SECONDS
    assert checker["acknowledged"] > 20
    assert checker["unknown_left"] == 0, checker["details"]
    assert checker["lost"] == 0, checker["details"]
    assert checker["duplicated"] == 0, checker["details"]
    assert checker["phantom"] == 0, checker["details"]
    assert checker["oversold_units"] == 0, checker["details"]
    assert checker["invariant_violations"] == 0, checker["details"]
    assert sync["clean"], sync


def test_clients_see_503_with_retry_after_never_500_and_reconnect(reports):
    for mode in ("sync", "async"):
        report = reports[mode]
        assert report["server_errors"] == 0, report["statuses"]
        assert report["unavailable_without_retry_after"] == 0, report["statuses"]
        # Writes were acknowledged again after the switch, by the same gunicorn workers.
        assert report["acknowledged_after_last_failover"] > 0
        assert report["first_ack_after_seconds"], report


def test_asynchronous_failover_is_measured(reports):
    report = reports["async"]
    assert report["kills"] == 1
    assert report["failover_seconds"][0] < FAILOVER_BOUND_SECONDS
    assert report["checker"]["oversold_units"] == 0
    assert report["checker"]["unknown_left"] == 0
    print("async loss window:", report["unreplayed_wal_bytes"], "bytes unreplayed at the kill;",
          report["checker"]["lost"], "acknowledged operations lost")  # fmt: skip
