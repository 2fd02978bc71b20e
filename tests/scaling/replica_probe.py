"""Replica reads against a real streaming replica, run as its own process.

Started by tests/scaling/test_replica_reads.py with DATABASE_URL (a private
primary), DATABASE_REPLICA_URL (its hot standby) and REPLICA_PGDATA set; pytest's
own test database is not involved (Django cannot switch a running test session
to another server). Migrates the primary, then walks the steps below and prints
one JSON object with what it saw (the test asserts on it):

1. fresh replica, replay paused, new stock on the primary only: the availability
   read, the batch, the inventory list and the export answer the replica's (old)
   figures, so they were read there; a reservation that only the primary's stock
   allows succeeds (reservations never read the replica), and so does one for a
   SKU the replica still shows sold out after the cache was filled from the
   replica (the sold-out gate ignores replica-filled entries);
2. lag above STOCKROOM_REPLICA_MAX_LAG_MS (replay paused, a write on the
   primary): reads answer the primary's figures, with a log line;
3. replica stopped: reads still answer (from the primary), with a log line.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventory_site.settings.base")


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record) -> None:
        self.lines.append(record.getMessage())


def main() -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections
    from rest_framework.test import APIClient

    from api.services import api_client_create
    from inventory import availability_cache, services
    from inventory.models import Product
    from inventory_site import db_router
    from ops.pgcluster import Server, query, wait_for
    from warehouses.models import Warehouse

    call_command("migrate", verbosity=0)
    settings.STOCKROOM_REPLICA_CHECK_SECONDS = 0  # every read checks the lag
    settings.STOCKROOM_REPLICA_MAX_LAG_MS = 10**9
    log = Lines()
    logging.getLogger("stockroom.replica").addHandler(log)
    logging.getLogger("stockroom.replica").setLevel(logging.INFO)
    primary_url = os.environ["DATABASE_URL"]
    replica_url = os.environ["DATABASE_REPLICA_URL"]
    replica = Server(
        Path(os.environ["REPLICA_PGDATA"]), int(replica_url.rsplit(":", 1)[1].split("/")[0])
    )

    Warehouse.objects.create(code="RW1", name="Replica test")
    for sku in ("RP-1", "RP-2"):
        Product.objects.create(sku=sku, name=sku)
    services.stock_receive(sku="RP-1", warehouse="RW1", quantity=5, actor="system:test")
    _, key = api_client_create(name="replica-probe", scopes=["storefront", "operations"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")

    def caught_up() -> bool:
        (lsn,) = query(primary_url, "SELECT pg_current_wal_lsn()")[0]
        return query(replica_url, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn])[0][0]

    def reads() -> dict:
        availability_cache.reset_store()  # every read is a cache miss: the fill's source shows
        one = client.get("/api/v1/availability/RP-1/")
        batch = client.get("/api/v1/availability/?sku=RP-1&sku=RP-2")
        listed = client.get("/api/v1/inventory/?sku=RP-1")
        out = io.StringIO()
        sys_stdout, sys.stdout = sys.stdout, type("B", (), {"buffer": io.BytesIO()})()
        try:
            call_command("export_inventory", stderr=out)
            exported = sys.stdout.buffer.getvalue().decode()
        finally:
            sys.stdout = sys_stdout
        row = next(line for line in exported.splitlines() if line.startswith("RP-1,"))
        return {
            "statuses": [one.status_code, batch.status_code, listed.status_code],
            "availability": one.json()["available"] if one.status_code == 200 else None,
            "batch": {r["sku"]: r["available"] for r in batch.json()["results"]}
            if batch.status_code == 200
            else None,
            "list_on_hand": listed.json()["results"][0]["on_hand"]
            if listed.status_code == 200
            else None,
            "export_on_hand": int(row.split(",")[2]),
        }

    result: dict = {}
    wait_for(caught_up, 60, "replica caught up")
    # 1. Replay paused; the primary moves on. Bound huge: the replica is used.
    query(replica_url, "SELECT pg_wal_replay_pause()")
    services.stock_receive(sku="RP-1", warehouse="RW1", quantity=7, actor="system:test")
    services.stock_receive(sku="RP-2", warehouse="RW1", quantity=3, actor="system:test")
    db_router.STATS.clear()
    result["paused"] = reads()
    result["paused"]["stats"] = dict(db_router.STATS)
    result["paused"]["primary_on_hand"] = {"RP-1": 12, "RP-2": 3}
    # Guarding paths: RP-1 10 units exist only on the primary (the replica shows 5).
    db_router.STATS.clear()
    reserve = client.post(
        "/api/v1/reservations/",
        {"order_id": "RPO-1", "lines": [{"sku": "RP-1", "warehouse": "RW1", "quantity": 10}]},
        format="json",
    )
    during_reservations = dict(db_router.STATS)
    # The gate: the replica says RP-2 has no row (sold out); fill the cache from it.
    availability_cache.reset_store()
    seen = client.get("/api/v1/availability/RP-2/")
    db_router.STATS.clear()
    gated = client.post(
        "/api/v1/reservations/",
        {"order_id": "RPO-2", "lines": [{"sku": "RP-2", "warehouse": "RW1", "quantity": 2}]},
        format="json",
    )
    result["guards"] = {
        "reserve_status": reserve.status_code,
        "replica_view_of_rp2": seen.json().get("available") if seen.status_code == 200 else None,
        "gate_reserve_status": gated.status_code,
        "gate_reserve_body": gated.json(),
        "stats_during_reservations": dict(Counter(during_reservations) + db_router.STATS),
    }
    # 2. Lag over the bound: replay still paused, another write, bound 300 ms.
    settings.STOCKROOM_REPLICA_MAX_LAG_MS = 300
    services.stock_receive(sku="RP-1", warehouse="RW1", quantity=1, actor="system:test")
    wait_for(lambda: not db_router._measure()[0], 60, "measured lag above the bound")
    db_router.STATS.clear()
    log.lines.clear()
    result["lagging"] = reads()
    result["lagging"]["stats"] = dict(db_router.STATS)
    result["lagging"]["log"] = list(log.lines)
    # Back under the bound: replay resumed, caught up; reads return to the replica.
    query(replica_url, "SELECT pg_wal_replay_resume()")
    wait_for(caught_up, 60, "replica caught up")
    wait_for(db_router.replica_usable, 60, "replica usable again")
    db_router.STATS.clear()
    log.lines.clear()
    result["resumed"] = reads()
    result["resumed"]["stats"] = dict(db_router.STATS)
    # 3. The replica goes away.
    replica.stop("immediate")
    db_router.STATS.clear()
    log.lines.clear()
    result["down"] = reads()
    result["down"]["stats"] = dict(db_router.STATS)
    result["down"]["log"] = list(log.lines)
    connections.close_all()
    print("PROBE " + json.dumps(result, default=str))


if __name__ == "__main__":
    main()
