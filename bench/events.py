"""Stock events: what the triggers cost the batched reservation path, and how fast
the feed and webhooks move, in one run.

    .venv/bin/python bench/events.py [--skus 20000] [--rounds 6] [--batches 10] [--events 3000]
        [--old-emitter events/migrations/sql/0004_events_stock_emit.sql ...] [--batch-only]
        [--profile]

Uses its own database (EVENTS_BENCH_DATABASE_URL, default stockroom_events_bench),
migrated and seeded with N SKUs in one warehouse (seeded with the event trigger
disabled). Then:

* **batch path, events on vs off** — `stock_reserve_batch` with 500 one-line orders
  per call on random SKUs, `--batches` calls per round, rounds alternating between
  triggers enabled and `ALTER TABLE ... DISABLE TRIGGER` (this database only);
  with `--old-emitter`, a third kind of round runs with older trigger functions
  loaded (restored after the round), so two emitters are compared in one run;
  orders/s is the median over the rounds of each kind;
* **feed read rate** — every event through `event_feed` (pages of 1000);
* **webhook delivery rate and lag** — `--events` stock changes on 50 SKUs committed
  at a steady pace while a dispatcher thread and four lane senders deliver to a
  local threaded HTTP receiver that verifies each signature; delivery rate, and
  lag from the event's commit (its `occurred_at`) to its arrival, p50/p99.

Figures go to docs/EVENTS.md ("Measured").
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, create_database, ensure_catalogue, median, percentile, setup_django

DB = os.environ.get(
    "EVENTS_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stockroom_events_bench"
)
TRIGGERS = [
    ("inventory_inventorytransaction", "events_stock"),
    ("inventory_reservationline", "events_reservation_created"),
    ("inventory_reservation", "events_reservation_changed"),
]


def set_triggers(enabled: bool, only: str | None = None) -> None:
    """Enable or disable the event triggers (`only`: enable just the one whose name
    starts with it, e.g. "events_stock", "events_reservation")."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table, trigger in TRIGGERS:
            on = enabled and (only is None or trigger.startswith(only))
            cursor.execute(f"ALTER TABLE {table} {'ENABLE' if on else 'DISABLE'} TRIGGER {trigger}")


def load_function(path: Path) -> None:
    """(Re)define a trigger function from a SQL file (this bench database only)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(path.read_text())


def backend_cpu_seconds() -> float:
    """CPU time the PostgreSQL backend serving this connection has used (it runs on
    this machine: /proc/<pid>/stat, user + system)."""
    from django.db import connection

    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_round(skus: int, batches: int, tag: str) -> tuple[float, float]:
    """(orders/s by the wall clock, orders per CPU second of client + backend)."""
    from inventory import services
    from inventory.services import OrderRequest, ReserveLine

    orders_total = 0
    cpu_started = backend_cpu_seconds() + time.process_time()
    started = time.perf_counter()
    for b in range(batches):
        orders = [
            OrderRequest(
                order_id=f"evb-{tag}-{b}-{n}",
                lines=[ReserveLine(f"BENCH-{random.randrange(skus):07d}", "BW01", 1)],
            )
            for n in range(500)
        ]
        services.stock_reserve_batch(orders=orders, actor="system:bench")
        orders_total += len(orders)
    wall = time.perf_counter() - started
    cpu = backend_cpu_seconds() + time.process_time() - cpu_started
    return orders_total / wall, orders_total / max(cpu, 1e-9)


def feed_rate() -> tuple[int, float]:
    from events.selectors import START, decode_cursor, event_feed

    after, count = START, 0
    started = time.perf_counter()
    while True:
        page = event_feed(after=after, limit=1000)
        if not page.events:
            break
        count += len(page.events)
        after = decode_cursor(page.next_cursor)
    return count, count / (time.perf_counter() - started)


class Receiver:
    def __init__(self, secret: str) -> None:
        from standardwebhooks.webhooks import Webhook

        self.arrivals: dict[str, float] = {}
        self.lock = threading.Lock()
        receiver, hook = self, Webhook(secret)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                event = hook.verify(body, dict(self.headers))
                with receiver.lock:
                    receiver.arrivals.setdefault(event["id"], time.time())
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def webhook_run(events: int) -> dict:
    import requests
    from django.db import connection

    from events import services
    from events.models import Event
    from inventory import services as stock

    services.WebhookSubscription.objects.all().delete()  # earlier runs' receivers are gone
    sub = services.subscription_create(url="http://127.0.0.1:1/", actor="system:bench")
    receiver = Receiver(sub.secret)
    sub.url = receiver.url
    sub.save(update_fields=["url"])
    stop = threading.Event()
    before = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0

    def dispatcher():
        pool = ThreadPoolExecutor(4)
        sessions = threading.local()

        def send(lane):
            if not hasattr(sessions, "s"):
                sessions.s = requests.Session()
            try:
                services.deliver_lane(lane[0], lane[1], session=sessions.s)
            finally:
                connection.close()

        try:
            while not stop.is_set():
                lanes = services.events_dispatch()
                list(pool.map(send, lanes))
                if not lanes:
                    time.sleep(0.05)
        finally:
            pool.shutdown()
            connection.close()

    thread = threading.Thread(target=dispatcher)
    thread.start()
    started = time.perf_counter()
    for n in range(events // 3):  # a receive emits stock.changed + availability.changed
        stock.stock_receive(
            sku=f"BENCH-{n % 50:07d}", warehouse="BW01", quantity=1, actor="system:bench"
        )
    produced = time.perf_counter() - started
    expected = Event.objects.filter(id__gt=before).count()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(receiver.arrivals) < expected:
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join()
    occurred = {
        f"evt_{i}": at.timestamp()
        for i, at in Event.objects.filter(
            id__in=[int(x[4:]) for x in receiver.arrivals]
        ).values_list("id", "occurred_at")
    }
    lags = [receiver.arrivals[k] - occurred[k] for k in receiver.arrivals if k in occurred]
    receiver.server.shutdown()
    return {
        "delivered": len(receiver.arrivals),
        "produced_s": produced,
        "rate": len(receiver.arrivals) / elapsed,
        "lag_p50_ms": percentile(lags, 50) * 1000,
        "lag_p99_ms": percentile(lags, 99) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skus", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument(
        "--old-emitter",
        type=Path,
        nargs="+",
        help="frozen trigger functions (e.g. events/migrations/sql/0004_events_stock_emit.sql "
        "events/migrations/sql/0004_events_reservation_created.sql): rounds then cycle "
        "off / on / on with these functions, to compare emitters in one run",
    )
    parser.add_argument("--batch-only", action="store_true", help="skip the feed and webhooks")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also rounds with only the stock trigger and only the reservation triggers on",
    )
    args = parser.parse_args()
    os.environ.setdefault("REDIS_URL", "")
    create_database(DB)
    setup_django(DB)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    set_triggers(False)
    ensure_catalogue(args.skus, 1)
    set_triggers(True)

    # The live text of each function an old emitter replaces (restored after its rounds).
    current = [
        ROOT / "events" / "sql" / f"{path.name.split('_', 1)[1]}" for path in args.old_emitter or ()
    ] or [ROOT / "events" / "sql" / "events_stock_emit.sql"]
    kinds = ["on", "off"] + (["old"] if args.old_emitter else [])
    if args.profile:
        kinds += ["events_stock", "events_reservation"]
    rates: dict[str, list[float]] = {kind: [] for kind in kinds}
    per_cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    run = datetime.now(UTC).strftime("%H%M%S")
    for path in current:
        load_function(path)
    batch_round(args.skus, 2, f"{run}-warm")
    for r in range(args.rounds * len(kinds)):
        kind = kinds[r % len(kinds)]
        set_triggers(kind != "off", kind if kind.startswith("events_") else None)
        if kind == "old":
            for path in args.old_emitter:
                load_function(path)
        wall, cpu = batch_round(args.skus, args.batches, f"{run}-{r}")
        rates[kind].append(wall)
        per_cpu[kind].append(cpu)
        if kind == "old":
            for path in current:
                load_function(path)
    set_triggers(True)
    for path in current:
        load_function(path)
    labels = {
        "on": "events on ",
        "off": "events off",
        "old": "old emitter",
        "events_stock": "only the stock trigger",
        "events_reservation": "only the reservation triggers",
    }
    for kind in kinds:
        print(
            f"batch path, {labels[kind]}: {median(rates[kind]):,.0f} orders/s, "
            f"{median(per_cpu[kind]):,.0f} orders per CPU s  "
            f"(rounds {[round(x) for x in rates[kind]]}; per CPU s "
            f"{[round(x) for x in per_cpu[kind]]})"
        )
    for kind in (k for k in kinds if k != "off"):
        wall_cost = (1 - median(rates[kind]) / median(rates["off"])) * 100
        cpu_cost = (1 - median(per_cpu[kind]) / median(per_cpu["off"])) * 100
        print(
            f"cost, {labels[kind].strip()}: {wall_cost:.1f} % by the wall clock, "
            f"{cpu_cost:.1f} % in CPU per order (client + backend)"
        )
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")
    if args.batch_only:
        return
    count, rate = feed_rate()
    print(f"feed read: {count:,} events at {rate:,.0f} events/s")
    hooks = webhook_run(args.events)
    print(
        f"webhooks: {hooks['delivered']:,} delivered at {hooks['rate']:,.0f}/s; "
        f"lag commit->arrival p50 {hooks['lag_p50_ms']:,.0f} ms, p99 {hooks['lag_p99_ms']:,.0f} ms"
    )


if __name__ == "__main__":
    main()
