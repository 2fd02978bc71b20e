"""The reference-model state machine: the real API against `model.Model`.

Every rule sends real requests through DRF's test client (in-process, real
PostgreSQL and Redis; the test runs as a transactional test, so after-commit
callbacks — the cache write-through, the gate's order memory, reorder checks —
run for real at each commit), computes what the documented contract says the
answer must be, and compares. After every step `check()` compares every stock
row's balances and allowance, the ledger (sums and row counts per row and
type), every order and its lines, and availability three ways (the batch API
read twice — the second answer comes from the cache —, one single-SKU read,
and the uncached selector `availability_from_database`) with the model.
Bundles (issue #16): `reserve_bundle` reserves the model's bundles (model.py,
`BUNDLES`) alone, together and with a component sold alone; the close rules
act on them by bundle SKU too; lines are compared with their `bundle`.

Time: `inventory.clock` (`clock.advance`). The machine moves time only in
whole QUANTUM steps and holds last whole QUANTUM multiples, so the wall-clock
time an example takes (well under QUANTUM / 2, checked) can never move a hold
across its expiry: the answer does not depend on the speed of the machine.
"""

from __future__ import annotations

import copy
import datetime
import json
import socket
import time
from collections import Counter
from contextlib import contextmanager

from django.apps import apps
from django.conf import settings
from django.db import connection
from django.test import override_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from api.services import api_client_create, forget_authenticated_clients
from inventory import availability_cache, clock, selectors, services
from inventory.models import Product
from inventory.selectors import forget_active_warehouses
from inventory.services.bundle_lines import forget_bundles

from ..conftest import _flush_client
from .model import BUNDLES, CLOSEST_FIRST, SHIP_TO, SKUS, WAREHOUSES, Model, Outcome, error, ok

# --- Contract switches: each names a part of issue #13 being built in parallel.
# The committed version models the full contract; while developing on a branch
# without the feature, set the switch False locally (never commit it False).
CONTRACT_HAS_CONFIRM = True  # POST /reservations/{id}/confirm/ (#13 item 3)

QUANTUM = 3600  # seconds; every clock move and hold length is a multiple of it
MAX_EXAMPLE_SECONDS = QUANTUM / 2

ORDER_IDS = st.sampled_from([f"o{i}" for i in range(1, 7)])
SKU_NAMES = [sku for sku, _, _ in SKUS]
SKU = st.sampled_from(SKU_NAMES)
WH = st.sampled_from(WAREHOUSES)
QTY = st.integers(1, 4)
HOLD = st.sampled_from([None, None, QUANTUM, 2 * QUANTUM])
# Orders with bundle lines have ids of their own (no other reserve rule repeats them).
BUNDLE_ORDER_IDS = st.sampled_from(["b1", "b2", "b3"])
BUNDLE = st.sampled_from(sorted(BUNDLES))
KEYS = st.sampled_from([None, None, "k1", "k2"])

# How often each kind of answer was seen (printed by the tests with -s when
# STOCKROOM_MODEL_STATS is set): a rule that never succeeds tests little.
OUTCOMES: Counter[str] = Counter()

_APPS = ("inventory", "warehouses", "api", "purchasing", "backoffice")

API = "/api/v1"


class Caller:
    """One API client: JSON in, response out (DRF's APIClient, in-process)."""

    def __init__(self, name: str, scope: str):
        from rest_framework.test import APIClient

        self.name = name
        _, self.key = api_client_create(name=name, scopes=[scope])
        self.client = APIClient()

    def _headers(self, headers):
        out = {"HTTP_AUTHORIZATION": f"Token {self.key}"}
        for name, value in (headers or {}).items():
            out["HTTP_" + name.upper().replace("-", "_")] = value
        return out

    def get(self, path, params=None):
        return self.client.get(API + path, params or {}, **self._headers(None))

    def send(self, method, path, body=None, headers=None):
        data = json.dumps(body) if body is not None else ""
        return getattr(self.client, method)(
            API + path, data=data, content_type="application/json", **self._headers(headers)
        )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def _json(response) -> dict:
    try:
        return response.json()
    except ValueError:
        return {"_raw": response.content.decode(errors="replace")}


def _mismatch(what: str, got, expected) -> str:
    return f"{what}: system {got!r} != model {expected!r}"


def _line_order(line: tuple) -> tuple:
    """Sort key of a line tuple: a plain line's bundle (None) sorts before a
    bundle's SKU (a bundle's line and the component's own can be alike but for it)."""
    return tuple("" if v is None else v for v in line)


class StockroomMachine(RuleBasedStateMachine):
    """Drives /api/v1 and the services against `Model`; see the module doc."""

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.overrides: list = []
        self.started = time.monotonic()
        self._reset_world()
        self.t0 = clock.now()  # model second 0
        self.step = 0
        # API Idempotency-Key records: (client, key) -> (path, body, status, answer)
        self.api_keys: dict[tuple[str, str], tuple] = {}
        # Receipts idempotent by reference: (ref, sku, wh) -> (quantity, answer)
        self.receipts: dict[tuple[str, str, str], tuple[int, dict]] = {}
        # Service-level keys of release/fulfil: (op, order, client, key) -> lines
        self.close_keys: dict[tuple, object] = {}
        # The last reservation request per order id, to send it again.
        self.requests: dict[str, tuple[str, dict]] = {}

    # --- the world ----------------------------------------------------------

    def _reset_world(self) -> None:
        from django_redis import get_redis_connection

        from ..factories import ProductFactory, WarehouseFactory

        clock.reset()
        tables = sorted(
            model._meta.db_table
            for label in _APPS
            for model in apps.get_app_config(label).get_models(include_auto_created=True)
        )
        tables = sorted(set(tables) & set(connection.introspection.table_names()))
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        availability_cache.reset_store()
        _flush_client(get_redis_connection("default")).flushdb()
        forget_active_warehouses()
        forget_authenticated_clients()
        forget_bundles()  # the bundles are made again, with new product ids
        WarehouseFactory(code="BER", name="Berlin", latitude=52.52, longitude=13.405)
        WarehouseFactory(code="HAM", name="Hamburg", latitude=53.55, longitude=9.993)
        for sku, policy, limit in SKUS:
            ProductFactory(sku=sku, stock_policy=policy, backorder_limit=limit)
        for sku, components in sorted(BUNDLES.items()):
            services.product_create(
                sku=sku,
                name=sku,
                components=[{"sku": c, "quantity": q} for c, q in sorted(components.items())],
            )
        self.shop = Caller("shop", "storefront")
        self.wms = Caller("wms", "operations")
        self.callers = {"shop": self.shop, "wms": self.wms}

    def _override(self, **values) -> None:
        override = override_settings(**values)
        override.enable()
        self.overrides.append(override)

    def teardown(self) -> None:
        while self.overrides:
            self.overrides.pop().disable()
        availability_cache.reset_store()
        clock.reset()

    @initialize(
        engine=st.sampled_from(["sql", "python"]),
        stock=st.lists(st.integers(0, 6), min_size=len(SKUS) * 2, max_size=len(SKUS) * 2),
    )
    def start(self, engine: str, stock: list[int]) -> None:
        """Both reservation engines (the PL/pgSQL function and the ORM path); some
        stock to start with (received through the API like any other)."""
        self.set_engine(engine)
        pairs = [(sku, wh) for sku in SKU_NAMES for wh in WAREHOUSES]
        for (sku, wh), quantity in zip(pairs, stock, strict=True):
            if quantity:
                self.do_receive(sku, wh, quantity, None, None)

    def set_engine(self, engine: str) -> None:
        self._override(STOCKROOM_RESERVE_ENGINE=engine, STOCKROOM_API_THROTTLE_RATE="1000000/min")

    # --- comparing ----------------------------------------------------------

    def expect(self, what: str, response, outcome: Outcome) -> dict:
        body = _json(response)
        got_code = body.get("error", {}).get("code") if isinstance(body, dict) else None
        OUTCOMES[f"{what.split()[0]} -> {response.status_code} {got_code or ''}".strip()] += 1
        assert response.status_code == outcome.status and outcome.allows(got_code), _mismatch(
            f"{what} answer", (response.status_code, got_code, body), (outcome.status, outcome.code)
        )
        if outcome.code is not None:
            assert set(body["error"]) == {"code", "message", "details"}, body
            if outcome.details is not None and got_code == outcome.code:
                details = body["error"]["details"]
                for name, value in outcome.details.items():
                    got = details.get(name)
                    if name == "lines":
                        got, value = _sorted_lines(got), _sorted_lines(value)
                    assert got == value, _mismatch(f"{what} details.{name}", got, value)
        return body

    def check_expires(self, what: str, value: str | None, expected: int | None) -> None:
        if expected is None:
            assert value is None, _mismatch(f"{what} expires_at", value, None)
            return
        assert value is not None, _mismatch(f"{what} expires_at", value, expected)
        got = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        lag = (got - (self.t0 + datetime.timedelta(seconds=expected))).total_seconds()
        assert 0 <= lag < MAX_EXAMPLE_SECONDS, _mismatch(
            f"{what} expires_at (seconds after t0)", (got - self.t0).total_seconds(), expected
        )

    def check_reservation(self, what: str, body: dict, order_id: str) -> None:
        order = self.model.orders[order_id]
        assert body["order_id"] == order_id, body
        assert body["status"] == order.status, _mismatch(f"{what} status", body, order.status)
        got = sorted(
            (
                (
                    x["sku"],
                    x["warehouse"],
                    x["quantity"],
                    x["quantity_fulfilled"],
                    x["quantity_released"],
                    x["status"],
                    x.get("bundle"),
                )
                for x in body["lines"]
            ),
            key=_line_order,
        )
        expected = sorted((line.as_tuple() for line in order.lines.values()), key=_line_order)
        assert got == expected, _mismatch(f"{what} lines", got, expected)
        self.check_expires(what, body["expires_at"], order.expires_at)

    def sync_expiries(self) -> None:
        """Take over the expiries the system made of lapsed holds.

        The contract lets a lapsed hold be released (line status expired, or
        fulfilled if part of it shipped) at any moment after it lapsed: the
        whole order (sweeper, close, confirm) or single lines (a reservation
        that needs their units; the order stays active while other lines are
        open). For every open line of an order the model holds as lapsed, if
        the database shows exactly what that line's expiry leaves, the model
        expires the line too; anything else (the order's status included) is
        left for `check()` to compare."""
        from inventory.models import ReservationLine

        lapsed = self.model.lapsed_orders()
        if not lapsed:
            return
        found = {
            (
                x.reservation.order_id,
                x.product.sku,
                x.warehouse.code,
                x.bundle.sku if x.bundle_id else "",
            ): (
                x.product.sku,
                x.warehouse.code,
                x.quantity,
                x.quantity_fulfilled,
                x.quantity_released,
                x.status,
                x.bundle.sku if x.bundle_id else None,
            )
            for x in ReservationLine.objects.filter(
                reservation__order_id__in=lapsed
            ).select_related("reservation", "product", "warehouse", "bundle")
        }
        for order_id in lapsed:
            for key, line in sorted(self.model.orders[order_id].lines.items()):
                if line.open == 0:
                    continue
                if found.get((order_id, *key)) == line.expired().as_tuple():
                    self.model.expire_line(order_id, key)

    @invariant()
    def check(self) -> None:
        """Everything the system holds equals the model (after every step)."""
        elapsed = time.monotonic() - self.started
        assert elapsed < MAX_EXAMPLE_SECONDS, (
            f"the example ran {elapsed:.0f} s of wall-clock time; the quantised clock "
            f"needs less than {MAX_EXAMPLE_SECONDS:.0f} s (lower the step count)"
        )
        self.step += 1
        self.sync_expiries()
        self.check_database()
        self.check_availability()

    def check_database(self) -> None:
        m = self.model
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT p.sku, w.code, i.on_hand, i.reserved, i.backorder_allowance,
                       i.reorder_threshold, i.damaged, i.quality_control
                FROM inventory_inventory i
                JOIN inventory_product p ON p.id = i.product_id
                JOIN warehouses_warehouse w ON w.id = i.warehouse_id
                """
            )
            rows = {(sku, wh): rest for sku, wh, *rest in cursor.fetchall()}
            cursor.execute(
                """
                SELECT p.sku, w.code, t.type, COUNT(*), SUM(t.on_hand_delta), SUM(t.reserved_delta),
                       SUM(t.damaged_delta), SUM(t.quality_control_delta)
                FROM inventory_inventorytransaction t
                JOIN inventory_product p ON p.id = t.product_id
                JOIN warehouses_warehouse w ON w.id = t.warehouse_id
                GROUP BY 1, 2, 3
                """
            )
            ledger = cursor.fetchall()
            cursor.execute(
                """
                SELECT r.order_id, r.status, r.expires_at, p.sku, w.code, l.quantity,
                       l.quantity_fulfilled, l.quantity_released, l.status, bp.sku
                FROM inventory_reservation r
                JOIN inventory_reservationline l ON l.reservation_id = r.id
                JOIN inventory_product p ON p.id = l.product_id
                JOIN warehouses_warehouse w ON w.id = l.warehouse_id
                LEFT JOIN inventory_product bp ON bp.id = l.bundle_id
                """
            )
            lines = cursor.fetchall()
        # Balances, allowance and thresholds per stock row.
        expected_rows = m.rows()
        for (sku, wh), (on_hand, reserved, allowance, threshold, damaged, qc) in rows.items():
            states = (m.damaged[(sku, wh)], m.quality_control[(sku, wh)])
            assert (damaged, qc) == states, _mismatch(
                f"stock row {sku}@{wh} (damaged, quality_control)", (damaged, qc), states
            )
            assert (on_hand, reserved) == expected_rows.get((sku, wh), (0, 0)), _mismatch(
                f"stock row {sku}@{wh} (on_hand, reserved)",
                (on_hand, reserved),
                expected_rows.get((sku, wh), (0, 0)),
            )
            assert allowance == m.allowance(sku), _mismatch(
                f"stock row {sku}@{wh} backorder_allowance (product policy {m.policy[sku]})",
                allowance,
                m.allowance(sku),
            )
            assert threshold == m.threshold[(sku, wh)], _mismatch(
                f"stock row {sku}@{wh} reorder_threshold", threshold, m.threshold[(sku, wh)]
            )
        missing = sorted(set(expected_rows) - set(rows))
        assert not missing, f"stock rows missing from the database: {missing}"
        # The ledger: per row, the sums are the balances; per type, the row counts.
        sums: dict[tuple[str, str], list[int]] = {}
        counts = {}
        state_sums: dict[tuple[str, str], list[int]] = {}
        for sku, wh, kind, count, on_hand, reserved, damaged, qc in ledger:
            total = sums.setdefault((sku, wh), [0, 0])
            total[0] += on_hand
            total[1] += reserved
            states = state_sums.setdefault((sku, wh), [0, 0])
            states[0] += damaged
            states[1] += qc
            counts[(sku, wh, kind)] = count
        for key, (damaged, qc) in state_sums.items():
            expected_states = (m.damaged[key], m.quality_control[key])
            assert (damaged, qc) == expected_states, _mismatch(
                f"ledger state sums of {key[0]}@{key[1]} (damaged, quality_control)",
                (damaged, qc),
                expected_states,
            )
        for key in set(sums) | set(expected_rows):
            got = tuple(sums.get(key, (0, 0)))
            assert got == expected_rows.get(key, (0, 0)), _mismatch(
                f"ledger sums of {key[0]}@{key[1]} (on_hand, reserved)",
                got,
                expected_rows.get(key, (0, 0)),
            )
        expected_counts = {k: v for k, v in m.ledger_rows.items() if v}
        assert counts == expected_counts, _mismatch(
            "ledger rows per (sku, warehouse, type)",
            sorted(counts.items()),
            sorted(expected_counts.items()),
        )
        # Orders and their lines.
        orders: dict[str, tuple] = {}
        for order_id, status, expires_at, *line in lines:
            entry = orders.setdefault(order_id, (status, expires_at, []))
            entry[2].append(tuple(line))
        assert set(orders) == set(m.orders), _mismatch(
            "order ids", sorted(orders), sorted(m.orders)
        )
        for order_id, (status, expires_at, got_lines) in orders.items():
            order = m.orders[order_id]
            assert status == order.status, _mismatch(
                f"order {order_id} status", status, order.status
            )
            expected_lines = sorted(
                (line.as_tuple() for line in order.lines.values()), key=_line_order
            )
            got_sorted = sorted(got_lines, key=_line_order)
            assert got_sorted == expected_lines, _mismatch(
                f"order {order_id} lines", got_sorted, expected_lines
            )
            self.check_expires(
                f"order {order_id}",
                expires_at.isoformat() if expires_at else None,
                order.expires_at,
            )
        # Products' policies.
        for sku, policy, limit in Product.objects.filter(sku__in=SKU_NAMES).values_list(
            "sku", "stock_policy", "backorder_limit"
        ):
            assert (policy, limit) == m.policy[sku], _mismatch(
                f"product {sku} policy", (policy, limit), m.policy[sku]
            )

    def check_availability(self, *, cache_down: bool = False) -> None:
        """Availability as the model says: the batch read twice (the second from
        the cache), one single-SKU read, and the uncached selector."""
        m = self.model
        expected = {sku: m.availability(sku) for sku in SKU_NAMES}
        for attempt in ("first", "second"):
            response = self.shop.get("/availability/", {"sku": SKU_NAMES})
            assert response.status_code == 200, _json(response)
            body = response.json()
            assert body["unknown_skus"] == [], body
            assert sorted(r["sku"] for r in body["results"]) == SKU_NAMES, body
            for result in body["results"]:
                _compare_availability(
                    f"GET /availability/ ({attempt} read) {result['sku']}",
                    result,
                    expected[result["sku"]],
                )
        sku = SKU_NAMES[self.step % len(SKU_NAMES)]
        response = self.shop.get(f"/availability/{sku}/")
        assert response.status_code == 200, _json(response)
        _compare_availability(f"GET /availability/{sku}/", response.json(), expected[sku])
        for sku, found in selectors.availability_from_database(SKU_NAMES).items():
            _compare_availability(
                f"availability_from_database {sku}",
                {
                    "sku": sku,
                    "available": found.available,
                    "status": found.status,
                    "warehouses": [
                        {"code": w.code, "available": w.available} for w in found.warehouses
                    ],
                    "ships_in_days": found.ships_in_days,
                },
                expected[sku],
            )

    # --- stock operations (the operations client) ----------------------------

    def stock_call(self, path: str, body: dict, key: str | None, outcome_fn, apply_fn, check_fn):
        """POST a stock operation, with an optional Idempotency-Key: a key seen
        before with the same request replays the first answer exactly; with
        another request (or endpoint) it is 422; a failed request keeps nothing."""
        headers = {"Idempotency-Key": key} if key else None
        response = self.wms.send("post", path, body, headers)
        self.sync_expiries()
        stored = self.api_keys.get(("wms", key)) if key else None
        if stored is not None:
            if stored[:2] == (path, body):
                assert response.status_code == stored[2], _json(response)
                assert response.json() == stored[3], _mismatch(
                    f"replay of {path} with key {key}", response.json(), stored[3]
                )
                assert response.get("Idempotent-Replayed") == "true"
                return
            self.expect(f"{path} with a used key", response, error(422, "idempotency_conflict"))
            return
        outcome = outcome_fn()
        answer = self.expect(path, response, outcome)
        if outcome.code is None:
            apply_fn()
            check_fn(answer)
            if key:
                self.api_keys[("wms", key)] = (path, body, response.status_code, answer)

    def check_transactions(self, what: str, answer: dict, expected: list[tuple]) -> None:
        """`expected`: (sku, wh, type, on_hand_delta, reserved_delta) per ledger row;
        the rows' `*_after` must be the model's balances now."""
        assert answer["replayed"] is False, answer
        got = sorted(
            (t["sku"], t["warehouse"], t["type"], t["on_hand_delta"], t["reserved_delta"])
            for t in answer["transactions"]
        )
        assert got == sorted(expected), _mismatch(f"{what} transactions", got, sorted(expected))
        for t in answer["transactions"]:
            key = (t["sku"], t["warehouse"])
            after = (t["on_hand_after"], t["reserved_after"])
            assert after == self.model.rows().get(key, (0, 0)), _mismatch(
                f"{what} {key} after", after, self.model.rows().get(key, (0, 0))
            )
            assert t["created_by"] == "client:wms", t

    def do_receive(self, sku: str, wh: str, quantity: int, key: str | None, ref: str | None):
        body = {"sku": sku, "warehouse": wh, "quantity": quantity}
        if ref:
            body["reference"] = {"type": "purchase_order", "id": ref}
            previous = self.receipts.get((ref, sku, wh))
            if previous is not None and not key:
                # Idempotent by reference + SKU + warehouse: the first receipt again.
                response = self.wms.send("post", "/stock/receive/", body)
                self.sync_expiries()
                if previous[0] != quantity:
                    self.expect("receive again", response, error(422, "idempotency_conflict"))
                    return
                assert response.status_code == 200, _json(response)
                answer = response.json()
                assert answer["replayed"] is True, answer
                assert answer["transactions"] == previous[1]["transactions"], answer
                return

        def applied(answer):
            self.check_transactions("receive", answer, [(sku, wh, "RECEIVE", quantity, 0)])
            if ref and not key:
                self.receipts[(ref, sku, wh)] = (quantity, answer)

        self.stock_call(
            "/stock/receive/",
            body,
            key,
            lambda: ok(201),
            lambda: self.model.receive(sku, wh, quantity),
            applied,
        )

    def do_adjust(self, sku, wh, counted, delta, expected_on_hand, key):
        body = {"sku": sku, "warehouse": wh, "reason": "model"}
        if counted is not None:
            body["counted"] = counted
        else:
            body["delta"] = delta
        if expected_on_hand is not None:
            body["expected_on_hand"] = expected_on_hand
        holder = {}

        def outcome():
            before = self.model.on_hand[(sku, wh)]
            holder["new"] = counted if counted is not None else before + delta
            holder["delta"] = holder["new"] - before
            return self.model.adjust_outcome(sku, wh, holder["new"], expected_on_hand)

        def applied(answer):
            expected = [(sku, wh, "ADJUST", holder["delta"], 0)] if holder["delta"] else []
            self.check_transactions("adjust", answer, expected)

        self.stock_call(
            "/stock/adjust/",
            body,
            key,
            outcome,
            lambda: self.model.adjust(sku, wh, holder["new"]),
            applied,
        )

    def do_transfer(self, source: str, lines: dict[str, int], key: str | None):
        destination = next(wh for wh in WAREHOUSES if wh != source)
        body = {
            "source": source,
            "destination": destination,
            "lines": [{"sku": sku, "quantity": qty} for sku, qty in sorted(lines.items())],
        }

        def applied(answer):
            expected = []
            for sku, qty in lines.items():
                expected += [
                    (sku, source, "TRANSFER", -qty, 0),
                    (sku, destination, "TRANSFER", qty, 0),
                ]
            self.check_transactions("transfer", answer, expected)

        self.stock_call(
            "/stock/transfer/",
            body,
            key,
            lambda: self.model.transfer_outcome(source, lines),
            lambda: self.model.transfer(source, destination, lines),
            applied,
        )

    @rule(
        sku=SKU,
        wh=WH,
        quantity=st.integers(1, 6),
        mode=st.sampled_from(["plain", "plain", "key", "reference"]),
        key=st.sampled_from(["g1", "g2"]),
        ref=st.sampled_from(["PO-1", "PO-2"]),
    )
    def receive(self, sku, wh, quantity, mode, key, ref):
        self.do_receive(
            sku, wh, quantity, key if mode == "key" else None, ref if mode == "reference" else None
        )

    @rule(
        sku=SKU,
        wh=WH,
        counted=st.one_of(st.none(), st.integers(0, 8)),
        delta=st.sampled_from([-3, -1, 1, 2]),
        cas=st.booleans(),
        key=st.sampled_from([None, None, "g1", "g3"]),
        data=st.data(),
    )
    def adjust(self, sku, wh, counted, delta, cas, key, data):
        expected_on_hand = None
        if cas:  # compare-and-set: usually what is there, sometimes stale
            expected_on_hand = self.model.on_hand[(sku, wh)] + data.draw(st.sampled_from([0, 0, 1]))
        self.do_adjust(
            sku, wh, counted, None if counted is not None else delta, expected_on_hand, key
        )

    @rule(
        source=WH,
        lines=st.dictionaries(SKU, QTY, min_size=1, max_size=2),
        key=st.sampled_from([None, None, "g2", "g4"]),
    )
    def transfer(self, source, lines, key):
        self.do_transfer(source, lines, key)

    # --- stock states and transfers in two steps (issue #15) --------------------

    def do_move(self, sku: str, wh: str, source: str, target: str, quantity: int, key):
        body = {
            "sku": sku,
            "warehouse": wh,
            "from_state": source,
            "to_state": target,
            "quantity": quantity,
            "reason": "model",
        }
        holder = {}

        def applied(answer):
            d = holder["deltas"]
            [t] = answer["transactions"]
            got = (t["type"], t["on_hand_delta"], t["damaged_delta"], t["quality_control_delta"])
            expected = (d["type"], d["on_hand"], d["damaged"], d["quality_control"])
            assert got == expected, _mismatch("move ledger row", got, expected)
            self.check_transactions("move", answer, [(sku, wh, d["type"], d["on_hand"], 0)])

        self.stock_call(
            "/stock/move/",
            body,
            key,
            lambda: self.model.move_outcome(sku, wh, source, quantity),
            lambda: holder.update(deltas=self.model.move(sku, wh, source, target, quantity)),
            applied,
        )

    @rule(
        sku=SKU,
        wh=WH,
        move=st.sampled_from(
            [
                ("sellable", "damaged"),
                ("sellable", "quality_control"),
                ("quality_control", "sellable"),
                ("quality_control", "damaged"),
                ("damaged", "sellable"),
                ("damaged", "written_off"),
                ("quality_control", "written_off"),
                ("sellable", "written_off"),
            ]
        ),
        quantity=st.integers(1, 3),
        key=st.sampled_from([None, None, None, "s1"]),
    )
    def move_state(self, sku, wh, move, quantity, key):
        self.do_move(sku, wh, move[0], move[1], quantity, key)

    def do_return(self, return_id: str, lines: list[tuple[str, str, int, str]]) -> None:
        merged: dict[tuple[str, str, str], int] = {}
        for sku, wh, qty, disposition in lines:
            merged[(sku, wh, disposition)] = merged.get((sku, wh, disposition), 0) + qty
        normalised = tuple(
            sorted((sku, wh, qty, disposition) for (sku, wh, disposition), qty in merged.items())
        )
        body = {
            "return_id": return_id,
            "lines": [
                {"sku": sku, "warehouse": wh, "quantity": qty, "disposition": disposition}
                for sku, wh, qty, disposition in lines
            ],
        }
        response = self.wms.send("post", "/returns/", body)
        self.sync_expiries()
        outcome = self.model.return_outcome(return_id, normalised)
        answer = self.expect(f"return {return_id}", response, outcome)
        if outcome.status == 201:
            rows = self.model.receive_return(return_id, normalised)
            got = sorted(
                (t["sku"], t["warehouse"], t["type"], t["on_hand_delta"], t["damaged_delta"],
                 t["quality_control_delta"])
                for t in answer["transactions"]
            )  # fmt: skip
            expected = sorted(
                (sku, wh, "RETURN", d["on_hand"], d["damaged"], d["quality_control"])
                for (sku, wh), d in rows.items()
            )
            assert got == expected, _mismatch(f"return {return_id} transactions", got, expected)
        elif outcome.status == 200:
            assert answer["replayed"] is True, answer

    @rule(
        return_id=st.sampled_from(["R1", "R2", "R3"]),
        lines=st.lists(
            st.tuples(
                SKU, WH, QTY, st.sampled_from(["restock", "damaged", "quality_control", "dispose"])
            ),
            min_size=1,
            max_size=2,
        ),
    )
    def customer_return(self, return_id, lines):
        self.do_return(return_id, lines)

    def do_ship(self, transfer_id: str, source: str, lines: dict[str, int]) -> None:
        destination = next(wh for wh in WAREHOUSES if wh != source)
        body = {
            "transfer_id": transfer_id,
            "source": source,
            "destination": destination,
            "lines": [{"sku": sku, "quantity": qty} for sku, qty in sorted(lines.items())],
        }
        response = self.wms.send("post", "/transfers/", body)
        self.sync_expiries()
        outcome = self.model.ship_outcome(transfer_id, source, lines)
        answer = self.expect(f"ship {transfer_id}", response, outcome)
        if outcome.status == 201:
            self.model.ship(transfer_id, source, destination, lines)
            expected = [(sku, source, "TRANSFER", -qty, 0) for sku, qty in lines.items()]
            self.check_transactions(f"ship {transfer_id}", answer, expected)
            assert answer["status"] == "shipped", answer
        elif outcome.status == 200:
            assert answer["replayed"] is True, answer

    @rule(
        transfer_id=st.sampled_from(["T1", "T2", "T3"]),
        source=WH,
        lines=st.dictionaries(SKU, QTY, min_size=1, max_size=2),
    )
    def ship_transfer(self, transfer_id, source, lines):
        self.do_ship(transfer_id, source, lines)

    def do_receive_transfer(self, transfer_id: str, received: dict[str, int], reason: str):
        body = {}
        if received:
            body["lines"] = [
                {"sku": sku, "quantity_received": q} for sku, q in sorted(received.items())
            ]
        if reason:
            body["reason"] = reason
        response = self.wms.send("post", f"/transfers/{transfer_id}/receive/", body)
        self.sync_expiries()
        outcome = self.model.receive_transfer_outcome(transfer_id, received, reason)
        answer = self.expect(f"receive transfer {transfer_id}", response, outcome)
        if outcome.status == 201:
            self.model.receive_transfer(transfer_id, received)
            transit = self.model.transfers[transfer_id]
            assert answer["status"] == transit.status, answer
            got = sorted((x["sku"], x["quantity_received"]) for x in answer["lines"])
            assert got == sorted(transit.arrived.items()), _mismatch(
                f"receive transfer {transfer_id} lines", got, sorted(transit.arrived.items())
            )
        elif outcome.status == 200:
            assert answer["replayed"] is True, answer

    @rule(
        data=st.data(),
        reason=st.sampled_from(["", "broken in the truck", "broken in the truck"]),
    )
    def receive_transfer(self, data, reason):
        """Mostly a transfer the model knows (in transit or received), its own
        SKUs at most what was shipped or one more; sometimes any id or SKU."""
        known = sorted(self.model.transfers)
        if known and data.draw(st.integers(0, 5), label="known transfer?"):
            transfer_id = data.draw(st.sampled_from(known), label="transfer id")
            shipped = self.model.transfers[transfer_id].lines
            short = data.draw(
                st.dictionaries(
                    st.sampled_from(sorted(shipped)), st.integers(0, 4), max_size=len(shipped)
                ),
                label="received",
            )
        else:
            transfer_id = data.draw(st.sampled_from(["T1", "T2", "T3"]), label="transfer id")
            short = data.draw(st.dictionaries(SKU, st.integers(0, 4), max_size=2), label="received")
        self.do_receive_transfer(transfer_id, short, reason)

    # --- catalogue ------------------------------------------------------------

    def do_set_policy(self, sku: str, policy: str, limit: int, via: str) -> None:
        outcome = None
        if via == "api":
            body = {"stock_policy": policy}
            if policy != "normal":
                body["backorder_limit"] = limit
            response = self.wms.send("patch", f"/products/{sku}/", body)
            self.sync_expiries()
            outcome = self.model.policy_outcome(sku, policy, limit)
            answer = self.expect(f"PATCH /products/{sku}/", response, outcome)
            if outcome.code is None:
                self.model.set_policy(sku, policy, limit)
                got = (answer["stock_policy"], answer["backorder_limit"])
                assert got == self.model.policy[sku], _mismatch(
                    "product answer", got, self.model.policy[sku]
                )
            return
        from inventory import errors

        try:
            services.product_set_stock_policy(
                product=Product.objects.get(sku=sku), stock_policy=policy, backorder_limit=limit
            )
            code = None
        except errors.InventoryError as exc:
            code = exc.code
        self.sync_expiries()
        outcome = self.model.policy_outcome(sku, policy, limit)
        assert outcome.allows(code), _mismatch("product_set_stock_policy", code, outcome.code)
        if code is None:
            self.model.set_policy(sku, policy, limit)

    @rule(
        sku=SKU,
        policy=st.sampled_from(["normal", "backorder", "preorder"]),
        limit=st.integers(0, 4),
        via=st.sampled_from(["api", "service"]),
    )
    def set_policy(self, sku, policy, limit, via):
        self.do_set_policy(sku, policy, limit, via)

    @rule(sku=SKU, wh=WH, threshold=st.integers(0, 6))
    def set_reorder_threshold(self, sku, wh, threshold):
        response = self.wms.send(
            "patch", f"/inventory/{sku}/{wh}/", {"reorder_threshold": threshold}
        )
        self.sync_expiries()
        answer = self.expect("PATCH /inventory/", response, ok(200))
        self.model.threshold[(sku, wh)] = threshold
        on_hand, reserved = self.model.rows().get((sku, wh), (0, 0))
        got = (
            answer["on_hand"],
            answer["reserved"],
            answer["backorder_allowance"],
            answer["reorder_threshold"],
        )
        expected = (on_hand, reserved, self.model.allowance(sku), threshold)
        assert got == expected, _mismatch("PATCH /inventory/ answer", got, expected)

    # --- reservations ---------------------------------------------------------

    def do_reserve(
        self,
        order_id: str,
        lines: list[tuple[str, str | None, int]],
        ship_to: str | None = None,
        expires_in: int | None = None,
    ) -> None:
        """POST /reservations/: lines naming their warehouse, or routed ones."""
        body = {
            "order_id": order_id,
            "lines": [
                {"sku": sku, "quantity": qty, **({"warehouse": wh} if wh else {})}
                for sku, wh, qty in lines
            ],
        }
        if ship_to:
            body["ship_to"] = SHIP_TO[ship_to]
        if expires_in:
            body["expires_in"] = expires_in
        response = self.shop.send("post", "/reservations/", body)
        self.sync_expiries()
        m = self.model
        routed = any(wh is None for _, wh, _ in lines)
        merged: dict[tuple[str, str], int] = {}
        for sku, wh, qty in lines:
            if wh:
                merged[(sku, wh)] = merged.get((sku, wh), 0) + qty
        unknown = sorted({sku for sku, _, _ in lines} - set(SKU_NAMES) - set(BUNDLES))
        existing = m.orders.get(order_id)
        what = f"reserve {order_id} {'routed' if routed else 'named'}"
        if existing is not None:
            same = (
                m.same_routed_request(existing, lines)
                if routed
                else m.same_named_request(existing, merged)
            )
            if not same:
                self.expect(what, response, error(409, "order_conflict", {"order_id": order_id}))
                return
            answer = self.expect(what, response, ok(200))
            self.check_reservation(what, answer, order_id)
            return
        if unknown:
            self.expect(what, response, error(400, "unknown_sku", {"skus": unknown}))
            return
        plan = m.route(lines, ship_to) if routed else merged
        # Bundle lines are checked as their components, summed per stock row.
        short = (
            plan
            if isinstance(plan, list)
            else (None if routed else m.named_shortage(m.expand(merged)[0]))
        )
        if short:
            # With a bundle line the sold-out gate may answer first, naming the
            # bundle in bundle units, where the database names the components'
            # totals: both are the contract, so only the code is compared.
            details = None if any(sku in BUNDLES for sku, _, _ in lines) else {"lines": short}
            self.expect(what, response, error(409, "insufficient_stock", details))
            return
        answer = self.expect(what, response, ok(201))
        m.create_order(order_id, plan, m.now + expires_in if expires_in else None)
        self.requests[order_id] = (
            "single",
            {"lines": lines, "ship_to": ship_to, "expires_in": expires_in},
        )
        self.check_reservation(what, answer, order_id)

    def do_reserve_batch(self, orders: list[tuple[str, list[tuple[str, str, int]], int | None]]):
        """POST /reservations/batch/: each order all-or-nothing, in request order."""
        body = {
            "orders": [
                {
                    "order_id": order_id,
                    "lines": [{"sku": s, "warehouse": w, "quantity": q} for s, w, q in lines],
                    **({"expires_in": expires_in} if expires_in else {}),
                }
                for order_id, lines, expires_in in orders
            ]
        }
        response = self.shop.send("post", "/reservations/batch/", body)
        self.sync_expiries()
        answer = self.expect("batch", response, ok(200))
        m = self.model
        assert [r["order_id"] for r in answer["results"]] == [o[0] for o in orders], answer
        tally = {"created": 0, "exists": 0, "failed": 0}
        for (order_id, lines, expires_in), result in zip(orders, answer["results"], strict=True):
            what = f"batch order {order_id}"
            merged: dict[tuple[str, str], int] = {}
            for sku, wh, qty in lines:
                merged[(sku, wh)] = merged.get((sku, wh), 0) + qty
            existing = m.orders.get(order_id)
            if existing is not None and m.same_named_request(existing, merged):
                expected = ("exists", 200, existing.status, None)
            elif existing is not None:
                expected = (
                    "error",
                    409,
                    None,
                    error(409, "order_conflict", {"order_id": order_id}),
                )
            elif short := m.named_shortage(m.expand(merged)[0]):
                details = None if any(sku in BUNDLES for sku, _ in merged) else {"lines": short}
                expected = ("error", 409, None, error(409, "insufficient_stock", details))
            else:
                m.create_order(order_id, merged, m.now + expires_in if expires_in else None)
                self.requests[order_id] = ("batch", {"lines": lines, "expires_in": expires_in})
                expected = ("created", 201, "active", None)
            outcome, status_code, status, err = expected
            got = (result["outcome"], result["status_code"], result["status"])
            assert got == (outcome, status_code, status), _mismatch(what, result, expected[:3])
            tally["failed" if outcome == "error" else outcome] += 1
            OUTCOMES[
                f"batch order -> {result['status_code']} {err.code if err else ''}".strip()
            ] += 1
            if err is not None:
                assert result["error"]["code"] == err.code, _mismatch(what, result, err.code)
                for name, value in (err.details or {}).items():
                    got_value = result["error"]["details"].get(name)
                    if name == "lines":
                        got_value, value = _sorted_lines(got_value), _sorted_lines(value)
                    assert got_value == value, _mismatch(f"{what} details.{name}", got_value, value)
                assert result["expires_at"] is None, result
            else:
                assert result["error"] is None, result
                self.check_expires(what, result["expires_at"], m.orders[order_id].expires_at)
        assert {k: answer[k] for k in tally} == tally, _mismatch("batch counts", answer, tally)

    def some_order(self, data) -> str:
        """Mostly an order the model knows, sometimes any id (maybe unknown)."""
        known = sorted(self.model.orders)
        if known and data.draw(st.integers(0, 5), label="known order?"):
            return data.draw(st.sampled_from(known), label="order id")
        return data.draw(ORDER_IDS, label="order id")

    def _repeat_or(self, order_id: str, repeat: bool, kinds: tuple[str, ...]):
        previous = self.requests.get(order_id)
        if repeat and previous is not None and previous[0] in kinds:
            return previous[1]
        return None

    @rule(
        order_id=ORDER_IDS,
        lines=st.dictionaries(SKU, st.tuples(WH, QTY), min_size=1, max_size=2),
        expires_in=HOLD,
        repeat=st.booleans(),
        unknown=st.integers(0, 15),
    )
    def reserve_named(self, order_id, lines, expires_in, repeat, unknown):
        previous = self._repeat_or(order_id, repeat, ("single", "batch"))
        if previous is not None and all(wh for _, wh, _ in previous["lines"]):
            self.do_reserve(order_id, previous["lines"], None, previous["expires_in"])
            return
        request = [(sku, wh, qty) for sku, (wh, qty) in sorted(lines.items())]
        if unknown == 0 and order_id not in self.model.orders:
            request.append(("ZZ-UNKNOWN", "BER", 1))
        self.do_reserve(order_id, request, None, expires_in)

    @rule(
        order_id=ORDER_IDS,
        lines=st.dictionaries(SKU, QTY, min_size=1, max_size=2),
        ship_to=st.sampled_from(sorted(CLOSEST_FIRST, key=str)),
        expires_in=HOLD,
        repeat=st.booleans(),
    )
    def reserve_routed(self, order_id, lines, ship_to, expires_in, repeat):
        previous = self._repeat_or(order_id, repeat, ("single",))
        if previous is not None:
            self.do_reserve(
                order_id, previous["lines"], previous["ship_to"], previous["expires_in"]
            )
            return
        request = [(sku, None, qty) for sku, qty in sorted(lines.items())]
        self.do_reserve(order_id, request, ship_to, expires_in)

    @rule(data=st.data())
    def reserve_batch(self, data):
        ids = data.draw(st.lists(ORDER_IDS, min_size=1, max_size=3, unique=True), label="order ids")
        orders = []
        for order_id in ids:
            previous = self._repeat_or(order_id, data.draw(st.booleans()), ("batch", "single"))
            if previous is not None and all(wh for _, wh, _ in previous["lines"]):
                orders.append((order_id, previous["lines"], previous["expires_in"]))
                continue
            lines = data.draw(st.dictionaries(SKU, st.tuples(WH, QTY), min_size=1, max_size=2))
            orders.append(
                (order_id, [(s, w, q) for s, (w, q) in sorted(lines.items())], data.draw(HOLD))
            )
        self.do_reserve_batch(orders)

    @rule(
        order_id=BUNDLE_ORDER_IDS,
        bundles=st.dictionaries(BUNDLE, st.tuples(WH, st.integers(1, 2)), min_size=1, max_size=2),
        alone=st.dictionaries(SKU, st.tuples(WH, QTY), max_size=1),
        expires_in=HOLD,
        repeat=st.booleans(),
        batch=st.integers(0, 2),
    )
    def reserve_bundle(self, order_id, bundles, alone, expires_in, repeat, batch):
        """Bundles (issue #16): one or two bundles by SKU, maybe with a component
        sold alone in the same order; one POST or a batch of one."""
        previous = self._repeat_or(order_id, repeat, ("single", "batch"))
        if previous is not None:
            lines, expires_in = previous["lines"], previous["expires_in"]
        else:
            lines = [(s, w, q) for s, (w, q) in sorted({**bundles, **alone}.items())]
        if batch == 0:
            self.do_reserve_batch([(order_id, lines, expires_in)])
        else:
            self.do_reserve(order_id, lines, None, expires_in)

    # --- confirm, release, fulfil ---------------------------------------------

    def do_confirm(self, order_id: str, expires_in: int | None) -> None:
        body = {"expires_in": expires_in} if expires_in else {}
        response = self.shop.send("post", f"/reservations/{order_id}/confirm/", body)
        self.sync_expiries()
        outcome = self.model.confirm_outcome(order_id)
        answer = self.expect(f"confirm {order_id}", response, outcome)
        if outcome.code is None:
            self.model.confirm(order_id, expires_in)
            self.check_reservation(f"confirm {order_id}", answer, order_id)

    @precondition(lambda self: CONTRACT_HAS_CONFIRM)
    @rule(expires_in=st.sampled_from([None, QUANTUM, 3 * QUANTUM]), data=st.data())
    def confirm(self, expires_in, data):
        self.do_confirm(self.some_order(data), expires_in)

    def do_close(
        self,
        op: str,
        order_id: str,
        line: tuple[str, str, int] | None,
        caller: str = "shop",
        key: str | None = None,
    ) -> None:
        """Release or fulfil, the whole order (line None) or one line; with an
        Idempotency-Key, a repeat with the same lines answers 200 again and
        changes nothing, other lines under the key are 422."""
        path = f"/reservations/{order_id}/{'release' if op == 'RELEASE' else 'fulfill'}/"
        body = (
            {"lines": [{"sku": line[0], "warehouse": line[1], "quantity": line[2]}]} if line else {}
        )
        response = self.callers[caller].send(
            "post", path, body, {"Idempotency-Key": key} if key else None
        )
        self.sync_expiries()
        what = f"{op.lower()} {order_id} {line or 'whole'}" + (f" key {key}" if key else "")
        # A client's Idempotency-Key names one request across every endpoint:
        # the same key on another order, operation or line is 422.
        stored_key = (caller, key)
        if key and stored_key in self.close_keys:
            if self.close_keys[stored_key] == (op, order_id, line):
                answer = self.expect(f"replayed {what}", response, ok(200))
                assert answer["order_id"] == order_id, answer
            else:
                self.expect(what, response, error(422, "idempotency_conflict"))
            return
        outcome = self.model.close_outcome(order_id, op, line)
        answer = self.expect(what, response, outcome)
        if outcome.code is None:
            self.model.close(order_id, op, line)
            self.check_reservation(what, answer, order_id)
            if key:
                self.close_keys[stored_key] = (op, order_id, line)

    @rule(
        op=st.sampled_from(["RELEASE", "FULFILL"]),
        caller=st.sampled_from(["shop", "wms"]),
        key=KEYS,
        data=st.data(),
    )
    def close_whole(self, op, caller, key, data):
        self.do_close(op, self.some_order(data), None, caller, key)

    @rule(
        op=st.sampled_from(["RELEASE", "FULFILL"]),
        caller=st.sampled_from(["shop", "wms"]),
        key=KEYS,
        data=st.data(),
    )
    def close_partial(self, op, caller, key, data):
        order_id = self.some_order(data)
        order = self.model.orders.get(order_id)
        held = sorted(order.lines) if order is not None else []
        if held and data.draw(st.integers(0, 4)):
            sku, wh, bundle = data.draw(st.sampled_from(held))
            if bundle and data.draw(st.integers(0, 3)):
                sku = bundle  # by bundle SKU, in bundle units (docs/API.md)
        else:
            sku, wh = data.draw(SKU), data.draw(WH)
        quantity = data.draw(st.integers(1, 3))
        self.do_close(op, order_id, (sku, wh, quantity), caller, key)

    # --- time, sweeper, Redis -------------------------------------------------

    def do_advance(self, seconds: int) -> None:
        clock.advance(seconds)
        self.model.advance(seconds)

    @rule(quanta=st.sampled_from([1, 1, 2, 4]))
    def advance_clock(self, quanta):
        self.do_advance(quanta * QUANTUM)

    def do_sweep(self, via: str = "service") -> None:
        lapsed = self.model.lapsed_orders()
        if via == "task":
            from purchasing.tasks import expire_reservations_task

            count = expire_reservations_task()
        else:
            count = services.reservations_expire()
        self.sync_expiries()
        assert count == len(lapsed), _mismatch("orders expired by the sweeper", count, lapsed)
        left = self.model.lapsed_orders()
        assert left == [], f"lapsed orders the sweeper left as they were: {left}"

    @rule(via=st.sampled_from(["service", "task"]))
    def sweep(self, via):
        self.do_sweep(via)

    def do_flush_redis(self) -> None:
        """Redis emptied (a restart). Through a client with a patient socket
        timeout (tests.conftest._flush_client): a FLUSHDB on a loaded machine may
        outlast the app's 0.2 s, and that is no finding about the system."""
        from django_redis import get_redis_connection

        _flush_client(get_redis_connection("default")).flushdb()

    @rule()
    def flush_redis(self):
        self.do_flush_redis()

    @contextmanager
    def redis_unreachable(self):
        """The cache pointed at a port nothing listens on (connections refused)."""
        caches = copy.deepcopy(settings.CACHES)
        caches["default"]["LOCATION"] = f"redis://127.0.0.1:{_closed_port()}/0"
        with override_settings(CACHES=caches):
            availability_cache.reset_store()
            try:
                yield
            finally:
                availability_cache.reset_store()
        availability_cache.reset_store()

    @rule(data=st.data())
    def redis_outage(self, data):
        """Redis unreachable for a few operations; the database answers, and every
        answer is what the model says. It comes back empty (a restart) if
        something was written meanwhile (a lost write-through is within the
        documented 60 s staleness bound, which the model does not wait out)."""
        wrote = False
        with self.redis_unreachable():
            for _ in range(data.draw(st.integers(1, 3), label="operations")):
                kind = data.draw(st.sampled_from(["read", "receive", "reserve", "close"]))
                if kind == "read":
                    self.check_availability(cache_down=True)
                elif kind == "receive":
                    self.do_receive(data.draw(SKU), data.draw(WH), data.draw(QTY), None, None)
                elif kind == "reserve":
                    lines = data.draw(
                        st.dictionaries(SKU, st.tuples(WH, QTY), min_size=1, max_size=2)
                    )
                    self.do_reserve(
                        data.draw(ORDER_IDS),
                        [(s, w, q) for s, (w, q) in sorted(lines.items())],
                        None,
                        data.draw(HOLD),
                    )
                else:
                    self.do_close(
                        data.draw(st.sampled_from(["RELEASE", "FULFILL"])),
                        data.draw(ORDER_IDS),
                        None,
                    )
                wrote = wrote or kind != "read"
            self.check_availability(cache_down=True)
        if wrote:
            self.do_flush_redis()


def _sorted_lines(lines):
    if not isinstance(lines, list):
        return lines
    return sorted(lines, key=lambda x: json.dumps(x, sort_keys=True))


def _compare_availability(what: str, got: dict, expected: dict) -> None:
    listed = {w["code"]: w["available"] for w in got["warehouses"]}
    shown = {code: n for code, n in listed.items() if n}
    summary = {"available": got["available"], "status": got["status"], "warehouses": shown}
    assert summary == expected, _mismatch(what, summary, expected)
    # A listed warehouse with nothing available is a row that exists; fine.
    assert all(n >= 0 for n in listed.values()), got
    assert got["ships_in_days"] is None, got
