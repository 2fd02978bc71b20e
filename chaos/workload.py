"""A seeded, concurrent workload over the HTTP API, recording every operation's outcome.

Each client is a thread with its own `requests.Session` and its own
`random.Random(seed, client)`, so a seed reproduces the mix of requests (the
interleaving, of course, is up to the scheduler). Every write carries a unique
handle that the checker finds again in the database: the order id for a
reservation, an `Idempotency-Key` (and, for receive/adjust/transfer, the same
string as the reference id) for everything else.

Outcomes: `ok` (2xx: acknowledged), `failed` (a definite 4xx, or 503
`stock_busy`: nothing applied), `unknown` (timeout, dropped connection, any
other 5xx). Unknowns are resolved at the end by sending the same request again
until it answers definitely.

The workload runs until its operation budget is spent (`clients` *
`ops_per_client`); the time limit is only a safety cap that fails the run
loudly. Every client operation (reads included) takes a number from a shared
`Schedule` before it starts and reports its end; faults are scheduled by those
numbers, not by the clock (see `Schedule`), so how many faults a run sees is
fixed by its budget and does not depend on the machine's speed.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests

OK, FAILED, UNKNOWN = "ok", "failed", "unknown"

# Relative weights of the operations in the mix.
MIX = {
    "reserve": 28,
    "release": 6,
    "release_partial": 5,
    "fulfill": 7,
    "fulfill_partial": 6,
    "receive": 10,
    "adjust": 8,
    "transfer": 8,
    "read": 22,
}


class WorkloadTimeout(RuntimeError):
    """The safety cap passed before the operation budget was spent."""


class Schedule:
    """Operation numbers shared by the clients and a fault thread.

    Clients call `begin()` before each operation (it returns the operation's
    number, 0, 1, 2, … in the order they start) and `end()` after it. A fault
    thread calls `hold_at(n)`: operations numbered n or later wait until it
    calls `release()`; `hold_at` returns once operation n is the next to start
    (every earlier one has started; they may still be in flight, so a fault
    lands among running requests). `wait_completed(n)` waits until n
    operations have ended: after `hold_at(n)`, that means none is in flight.
    So "a fault at every k-th operation, Redis down for M operations" is the
    same number of faults on any machine for a given budget.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.cond = threading.Condition()
        self.issued = 0
        self.completed = 0
        self.gate: int | None = None
        self.closed = False  # the clients are done (or gave up)

    # --- clients ---------------------------------------------------------

    def begin(self, deadline: float) -> int:
        with self.cond:
            while self.gate is not None and self.issued >= self.gate and not self.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WorkloadTimeout(
                        f"held at operation {self.issued} of {self.budget} past the time cap"
                    )
                self.cond.wait(remaining)
            if time.monotonic() > deadline:
                raise WorkloadTimeout(
                    f"{self.issued} of {self.budget} operations started within the time cap"
                )
            number = self.issued
            self.issued += 1
            self.cond.notify_all()
            return number

    def end(self) -> None:
        with self.cond:
            self.completed += 1
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.gate = None
            self.cond.notify_all()

    # --- the fault thread ------------------------------------------------

    def hold_at(self, n: int) -> bool:
        """Hold operations numbered ≥ n (or ≥ the next one, if n has started);
        wait until every earlier one has started. False if the clients finished
        first (nothing is held then)."""
        with self.cond:
            if self.closed:
                return False
            self.gate = max(n, self.issued)
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.closed or self.issued >= self.gate)
            if self.closed:
                self.gate = None
                return False
            return True

    def release(self) -> None:
        with self.cond:
            self.gate = None
            self.cond.notify_all()

    def wait_started(self, n: int) -> bool:
        """Wait (holding nothing) until n operations have started."""
        with self.cond:
            self.cond.wait_for(lambda: self.closed or self.issued >= n)
            return self.issued >= n

    def wait_completed(self, n: int) -> bool:
        with self.cond:
            self.cond.wait_for(lambda: self.closed or self.completed >= n)
            return self.completed >= n


def fault_points(budget: int, every: int) -> list[int]:
    """The operation numbers at which a fault fires: every, 2·every, … < budget."""
    return list(range(every, budget, every)) if every > 0 else []


@dataclass
class Op:
    kind: str
    handle: str  # order id (reserve) or Idempotency-Key
    method: str
    path: str
    body: dict | None
    outcome: str = UNKNOWN
    status: int | None = None
    code: str = ""
    response: Any = None
    resolved: bool = False  # the outcome came from the end-of-run retry
    # (status or exception name, error code, Retry-After, monotonic end) of every send
    attempts: list = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.kind == "reserve" else {"Idempotency-Key": self.handle}


@dataclass
class World:
    prefix: str
    skus: list[str]
    backorder_skus: list[str]
    warehouses: list[str]

    @property
    def all_skus(self) -> list[str]:
        return self.skus + self.backorder_skus


@dataclass
class Run:
    ops: list[Op] = field(default_factory=list)
    reads: Counter = field(default_factory=Counter)
    read_log: list[tuple[int, object]] = field(default_factory=list)  # (op number, status)
    orders: list[dict] = field(default_factory=list)  # acknowledged reservations
    lock: threading.Lock = field(default_factory=threading.Lock)

    def counts(self) -> Counter:
        return Counter(op.outcome for op in self.ops)


def classify(response: requests.Response) -> tuple[str, str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    code = body["error"]["code"] if isinstance(body, dict) and "error" in body else ""
    if 200 <= response.status_code < 300:
        return OK, code, body
    if 400 <= response.status_code < 500 and code != "idempotency_in_progress":
        return FAILED, code, body
    if response.status_code == 503 and code == "stock_busy":
        return FAILED, code, body  # lock_timeout: the transaction rolled back
    return UNKNOWN, code or f"http_{response.status_code}", body


class Client(threading.Thread):
    def __init__(
        self, *, index, base_url, key, world, run, seed, max_ops, deadline, timeout, schedule
    ):
        super().__init__(name=f"chaos-client-{index}", daemon=True)
        self.index = index
        self.base_url = base_url
        self.world = world
        self.run_ = run
        self.rng = random.Random(f"{seed}:{index}")
        self.max_ops = max_ops
        self.deadline = deadline
        self.timeout = timeout
        self.schedule = schedule
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Token {key}", "Content-Type": "application/json"}
        )
        self.n = 0
        self.error: BaseException | None = None

    def handle(self) -> str:
        self.n += 1
        return f"{self.world.prefix}{self.index}-{self.n}"

    def run(self) -> None:
        try:
            kinds, weights = zip(*MIX.items(), strict=True)
            for _ in range(self.max_ops):
                number = self.schedule.begin(self.deadline)
                try:
                    self.one(kinds, weights, number)
                finally:
                    self.schedule.end()
        except BaseException as exc:  # surfaced by the runner
            self.error = exc
        finally:
            self.session.close()

    def one(self, kinds, weights, number: int) -> None:
        kind = self.rng.choices(kinds, weights)[0]
        if kind == "read":
            self.read(number)
            return
        op = getattr(self, "make_" + kind.removesuffix("_partial"))(kind)
        if op is None:
            return
        send(self.session, self.base_url, op, self.timeout)
        with self.run_.lock:
            self.run_.ops.append(op)
            if op.kind == "reserve" and op.outcome == OK and op.response:
                self.run_.orders.append(op.response)

    # --- requests --------------------------------------------------------

    def read(self, number: int) -> None:
        sku = self.rng.choice(self.world.all_skus)
        try:
            response = self.session.get(
                f"{self.base_url}/api/v1/availability/{sku}/", timeout=self.timeout
            )
            status = response.status_code
            if status == 200 and response.json()["available"] < 0:
                status = "negative"
        except requests.RequestException:
            status = "error"
        with self.run_.lock:
            self.run_.reads[status] += 1
            self.run_.read_log.append((number, status))

    def make_reserve(self, kind) -> Op:
        rng, w = self.rng, self.world
        lines = []
        for sku in rng.sample(w.all_skus, rng.choice([1, 1, 2])):
            line = {"sku": sku, "quantity": rng.randint(1, 3)}
            if rng.random() < 0.7:
                line["warehouse"] = rng.choice(w.warehouses)
            lines.append(line)
        order_id = self.handle()
        return Op(
            kind,
            order_id,
            "POST",
            "/api/v1/reservations/",
            {"order_id": order_id, "lines": lines},
        )

    def _pick_order(self) -> dict | None:
        with self.run_.lock:
            orders = self.run_.orders
            if not orders:
                return None
            return orders[self.rng.randrange(len(orders))]

    def make_release(self, kind) -> Op | None:
        return self._close(kind, "release")

    def make_fulfill(self, kind) -> Op | None:
        return self._close(kind, "fulfill")

    def _close(self, kind: str, action: str) -> Op | None:
        order = self._pick_order()
        if order is None:
            return None
        body: dict = {}
        if kind.endswith("_partial"):
            line = self.rng.choice(order["lines"])
            body = {
                "lines": [{"sku": line["sku"], "warehouse": line["warehouse"], "quantity": 1}],
                "reason": "chaos partial",
            }
        return Op(
            kind,
            self.handle(),
            "POST",
            f"/api/v1/reservations/{order['order_id']}/{action}/",
            body,
        )

    def make_receive(self, kind) -> Op:
        key = self.handle()
        return Op(
            kind,
            key,
            "POST",
            "/api/v1/stock/receive/",
            {
                "sku": self.rng.choice(self.world.all_skus),
                "warehouse": self.rng.choice(self.world.warehouses),
                "quantity": self.rng.randint(1, 6),
                "reference": {"type": "purchase_order", "id": key},
            },
        )

    def make_adjust(self, kind) -> Op:
        key = self.handle()
        return Op(
            kind,
            key,
            "POST",
            "/api/v1/stock/adjust/",
            {
                "sku": self.rng.choice(self.world.all_skus),
                "warehouse": self.rng.choice(self.world.warehouses),
                "delta": self.rng.choice([-3, -2, -1, 1, 2]),
                "reason": "chaos adjust",
                "reference": {"type": "manual", "id": key},
            },
        )

    def make_transfer(self, kind) -> Op:
        key = self.handle()
        source, destination = self.rng.sample(self.world.warehouses, 2)
        return Op(
            kind,
            key,
            "POST",
            "/api/v1/stock/transfer/",
            {
                "source": source,
                "destination": destination,
                "lines": [
                    {
                        "sku": self.rng.choice(self.world.all_skus),
                        "quantity": self.rng.randint(1, 2),
                    }
                ],
                "reference": {"type": "transfer", "id": key},
            },
        )


def send(session: requests.Session, base_url: str, op: Op, timeout: float) -> None:
    try:
        response = session.request(
            op.method, base_url + op.path, json=op.body, headers=op.headers, timeout=timeout
        )
    except requests.RequestException as exc:
        op.outcome, op.code, op.status = UNKNOWN, exc.__class__.__name__, None
        op.attempts.append((op.code, "", None, time.monotonic()))
        return
    op.status = response.status_code
    op.outcome, op.code, op.response = classify(response)
    op.attempts.append((op.status, op.code, response.headers.get("Retry-After"), time.monotonic()))


def run_clients(
    *,
    base_url,
    key,
    world,
    seed,
    clients,
    ops_per_client,
    seconds,
    timeout=10.0,
    schedule: Schedule | None = None,
) -> Run:
    """Run the clients until `clients` * `ops_per_client` operations are done.

    `seconds` is a safety cap, not a stopping rule: a run that has not spent its
    budget by then raises (WorkloadTimeout), it never ends quietly short."""
    run = Run()
    schedule = schedule or Schedule(clients * ops_per_client)
    deadline = time.monotonic() + seconds
    threads = [
        Client(
            index=i,
            base_url=base_url,
            key=key,
            world=world,
            run=run,
            seed=seed,
            max_ops=ops_per_client,
            deadline=deadline,
            timeout=timeout,
            schedule=schedule,
        )
        for i in range(clients)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()) + 4 * timeout + 30)
    finally:
        schedule.close()
    errors = [t.error for t in threads if t.error is not None]
    timeouts = [e for e in errors if isinstance(e, WorkloadTimeout)]
    if timeouts:
        raise WorkloadTimeout(
            f"the workload did not spend its budget within the {seconds:.0f} s safety cap: "
            f"{timeouts[0]} ({schedule.completed} of {schedule.budget} operations done)"
        ) from timeouts[0]
    if errors:
        raise RuntimeError(f"a client crashed: {errors[0]!r}") from errors[0]
    if any(t.is_alive() for t in threads):
        raise WorkloadTimeout("a client did not finish in time")
    return run


def resolve_unknowns(*, base_url, key, run: Run, attempts: int = 20, timeout=10.0) -> int:
    """Send every unknown op again (same order id / Idempotency-Key) until it is definite.

    Returns how many stayed unknown (the checker counts those as violations).
    """
    session = requests.Session()
    session.headers.update({"Authorization": f"Token {key}", "Content-Type": "application/json"})
    pending = [op for op in run.ops if op.outcome == UNKNOWN]
    try:
        for attempt in range(attempts):
            if not pending:
                break
            for op in pending:
                send(session, base_url, op, timeout)
                op.resolved = True
            pending = [op for op in pending if op.outcome == UNKNOWN]
            if pending:
                time.sleep(min(0.5 * (attempt + 1), 3))
    finally:
        session.close()
    return len(pending)
