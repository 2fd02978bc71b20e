"""The invariant checker: balances, ledger and every recorded operation, from the database.

Runs in a process with Django configured for the same database as the server.
Scoped to one world (its SKUs, order ids and keys share the world's prefix), so
scenarios can run one after another in one database.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field

import requests
from django.db import connection

from .workload import FAILED, OK, UNKNOWN, Run, World

EXPECTED_ROWS = {"receive": 1, "adjust": 1, "transfer": 2}
REFERENCE_TYPE = {"receive": "purchase_order", "adjust": "manual", "transfer": "transfer"}


@dataclass
class Report:
    scenario: str
    seed: int
    attempted: int = 0
    acknowledged: int = 0
    failed: int = 0
    unknown_resolved: int = 0
    unknown_left: int = 0
    oversold_units: int = 0
    lost: int = 0
    duplicated: int = 0
    phantom: int = 0  # unacknowledged (failed) operations that left an effect
    unattributed_ledger_rows: int = 0
    invariant_violations: int = 0
    cache_mismatches: int = 0
    reads: dict = field(default_factory=dict)
    outcome_codes: dict = field(default_factory=dict)
    seconds: float = 0.0
    faults: dict = field(default_factory=dict)
    details: list = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.oversold_units
            or self.lost
            or self.duplicated
            or self.phantom
            or self.unattributed_ledger_rows
            or self.invariant_violations
            or self.cache_mismatches
            or self.unknown_left
        )

    def line(self) -> str:
        return (
            f"{self.scenario:<14} seed={self.seed} attempted={self.attempted} "
            f"acknowledged={self.acknowledged} failed={self.failed} "
            f"unknown→resolved={self.unknown_resolved} unresolved={self.unknown_left} "
            f"oversold_units={self.oversold_units} lost={self.lost} "
            f"duplicated={self.duplicated} phantom={self.phantom} "
            f"unattributed={self.unattributed_ledger_rows} "
            f"violations={self.invariant_violations} cache_mismatches={self.cache_mismatches} "
            f"reads={dict(self.reads)} faults={self.faults} {self.seconds:.1f}s"
        )


def _rows(sql: str, params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# Every stock row, recomputed from what the CHECK constraints do not guard: on
# hand from the ledger, reserved from the open (active) reservation lines, the
# allowance in force from the product's stock policy (docs/RELIABILITY.md,
# "The checker"). The row's own on_hand / reserved / backorder_allowance are
# only compared with those, never trusted for the oversell test.
STOCK_ROW_AUDIT_SQL = """
    WITH ledger AS (
        SELECT product_id, warehouse_id,
               SUM(on_hand_delta) AS on_hand, SUM(reserved_delta) AS reserved,
               SUM(damaged_delta) AS damaged, SUM(quality_control_delta) AS quality_control
        FROM inventory_inventorytransaction GROUP BY product_id, warehouse_id
    ), lines AS (
        SELECT inventory_id,
               SUM(quantity - quantity_fulfilled - quantity_released)
                   FILTER (WHERE status = 'active') AS open,
               COUNT(*) FILTER (
                   WHERE status <> 'active'
                     AND quantity <> quantity_fulfilled + quantity_released
               ) AS closed_with_open_quantity
        FROM inventory_reservationline GROUP BY inventory_id
    )
    SELECT p.sku, w.code,
           i.on_hand, i.reserved, i.backorder_allowance,
           COALESCE(l.on_hand, 0), COALESCE(l.reserved, 0),
           COALESCE(r.open, 0), COALESCE(r.closed_with_open_quantity, 0),
           CASE WHEN p.stock_policy = 'normal' THEN 0 ELSE p.backorder_limit END,
           i.damaged, i.quality_control,
           COALESCE(l.damaged, 0), COALESCE(l.quality_control, 0)
    FROM inventory_inventory i
    JOIN inventory_product p ON p.id = i.product_id
    JOIN warehouses_warehouse w ON w.id = i.warehouse_id
    LEFT JOIN ledger l ON l.product_id = i.product_id AND l.warehouse_id = i.warehouse_id
    LEFT JOIN lines r ON r.inventory_id = i.id
    WHERE p.sku LIKE %s
    ORDER BY p.sku, w.code
"""


@dataclass
class RowProblems:
    sku: str
    warehouse: str
    problems: list[str]
    oversold_units: int = 0  # how far the ledger's availability is below the policy's floor


def stock_row_problems(sku_like: str = "%") -> list[RowProblems]:
    """Stock rows (of SKUs matching `sku_like`) that break an invariant, each with
    what it breaks. Empty when everything holds.

    * oversold: ledger good units (on hand - damaged - quality control, each
      from the ledger) - open reserved < -(the allowance the product's policy
      allows: 0 for normal, backorder_limit otherwise);
    * states (issue #15): ledger damaged / quality control < 0 or more than
      ledger on hand, and the stored columns differ from the ledger's sums;
    * negative: ledger on hand < 0, or ledger/open reserved < 0 (and the same
      for the stored columns);
    * stale allowance: the row's backorder_allowance differs from the policy's;
    * drift: stored on_hand/reserved differ from the ledger, stored or ledger
      reserved from the open lines, or a closed line still holds quantity.
    """
    found = []
    for (
        sku,
        code,
        on_hand,
        reserved,
        allowance,
        ledger_on_hand,
        ledger_reserved,
        open_reserved,
        closed_open,
        policy_allowance,
        damaged,
        quality_control,
        ledger_damaged,
        ledger_quality_control,
    ) in _rows(STOCK_ROW_AUDIT_SQL, [sku_like]):
        problems, oversold = [], 0
        ledger_good = ledger_on_hand - ledger_damaged - ledger_quality_control
        if ledger_good - open_reserved < -policy_allowance:
            oversold = -policy_allowance - (ledger_good - open_reserved)
            problems.append(
                f"oversold by {oversold}: ledger good units {ledger_good} (on hand "
                f"{ledger_on_hand} - damaged {ledger_damaged} - quality control "
                f"{ledger_quality_control}) - open reserved {open_reserved} < "
                f"-{policy_allowance} (policy allowance)"
            )
        if ledger_damaged < 0 or ledger_quality_control < 0:
            problems.append(
                f"state < 0 (ledger damaged {ledger_damaged}, quality control "
                f"{ledger_quality_control})"
            )
        if ledger_damaged + ledger_quality_control > ledger_on_hand:
            problems.append(
                f"unsellable states {ledger_damaged + ledger_quality_control} > ledger on hand "
                f"{ledger_on_hand}"
            )
        if damaged != ledger_damaged:
            problems.append(f"damaged {damaged} != ledger {ledger_damaged}")
        if quality_control != ledger_quality_control:
            problems.append(f"quality control {quality_control} != ledger {ledger_quality_control}")
        if ledger_on_hand < 0 or on_hand < 0:
            problems.append(f"on hand < 0 (ledger {ledger_on_hand}, row {on_hand})")
        if ledger_reserved < 0 or reserved < 0 or open_reserved < 0:
            problems.append(
                f"reserved < 0 (ledger {ledger_reserved}, lines {open_reserved}, row {reserved})"
            )
        if allowance != policy_allowance:
            problems.append(f"stale allowance {allowance} (policy allows {policy_allowance})")
        if on_hand != ledger_on_hand:
            problems.append(f"on hand {on_hand} != ledger {ledger_on_hand}")
        if reserved != ledger_reserved:
            problems.append(f"reserved {reserved} != ledger {ledger_reserved}")
        if ledger_reserved != open_reserved:
            problems.append(f"ledger reserved {ledger_reserved} != open lines {open_reserved}")
        if closed_open:
            problems.append(f"{closed_open} closed line(s) still hold quantity")
        if problems:
            found.append(RowProblems(sku, code, problems, oversold))
    return found


# Two-step transfers (issue #15 item 3), per transfer and SKU: what the lines say
# (shipped, received) and what the ledger rows with reference (transfer, id) say
# happened at the source and at the destination. Recomputed from the ledger, not
# from the transfer's status alone.
TRANSFER_AUDIT_SQL = """
    WITH lines AS (
        SELECT t.transfer_id, t.status, t.source_id, t.destination_id, l.product_id,
               l.quantity_shipped, l.quantity_received
        FROM inventory_transfer t JOIN inventory_transferline l ON l.transfer_id = t.id
    ), ledger AS (
        SELECT reference_id, product_id, warehouse_id,
               SUM(on_hand_delta) FILTER (WHERE type = 'TRANSFER') AS moved,
               SUM(on_hand_delta) FILTER (WHERE type = 'WRITE_OFF') AS written_off,
               SUM(on_hand_delta) FILTER (WHERE type NOT IN ('TRANSFER', 'WRITE_OFF'))
                   AS other,
               SUM(reserved_delta + damaged_delta + quality_control_delta) AS states
        FROM inventory_inventorytransaction
        WHERE reference_type = 'transfer'
          AND reference_id IN (SELECT transfer_id FROM lines)
        GROUP BY 1, 2, 3
    )
    SELECT x.transfer_id, p.sku, x.status, x.quantity_shipped, x.quantity_received,
           COALESCE(s.moved, 0), COALESCE(s.written_off, 0), COALESCE(s.other, 0),
           COALESCE(s.states, 0),
           COALESCE(d.moved, 0), COALESCE(d.written_off, 0), COALESCE(d.other, 0),
           COALESCE(d.states, 0)
    FROM lines x
    JOIN inventory_product p ON p.id = x.product_id
    LEFT JOIN ledger s ON s.reference_id = x.transfer_id AND s.product_id = x.product_id
                      AND s.warehouse_id = x.source_id
    LEFT JOIN ledger d ON d.reference_id = x.transfer_id AND d.product_id = x.product_id
                      AND d.warehouse_id = x.destination_id
    WHERE p.sku LIKE %s
    ORDER BY x.transfer_id, p.sku
"""


def transfer_problems(sku_like: str = "%") -> list[tuple[str, str, list[str]]]:
    """Two-step transfers whose ledger does not account for their lines:
    (transfer id, sku, problems). Units shipped left the source (TRANSFER rows
    there sum to -shipped, nothing else); while in transit nothing reached the
    destination; once received, TRANSFER rows there sum to +shipped and
    WRITE_OFF rows to -(shipped - received). Units are neither made nor lost
    in transit without a ledger row saying so."""
    found = []
    for (
        transfer_id, sku, status, shipped, received,
        src_moved, src_written, src_other, src_states,
        dst_moved, dst_written, dst_other, dst_states,
    ) in _rows(TRANSFER_AUDIT_SQL, [sku_like]):  # fmt: skip
        problems = []
        if src_moved != -shipped or src_written or src_other or src_states:
            problems.append(
                f"source ledger {src_moved:+} (write-offs {src_written}, other {src_other}, "
                f"states {src_states}) for {shipped} shipped"
            )
        if status == "shipped":
            expected = (0, 0, None)
        else:
            expected = (shipped, -(shipped - (received or 0)), received)
        if (dst_moved, dst_written) != expected[:2] or dst_other or dst_states:
            problems.append(
                f"destination ledger {dst_moved:+} / write-offs {dst_written} (other "
                f"{dst_other}, states {dst_states}) for status {status}, shipped {shipped}, "
                f"received {received}"
            )
        if status != "shipped" and received is None:
            problems.append(f"status {status} without a received quantity")
        if status == "shipped" and received is not None:
            problems.append(f"in transit with a received quantity {received}")
        if status == "received" and received != shipped:
            problems.append(f"received in full but {received} of {shipped} arrived")
        if problems:
            found.append((transfer_id, sku, problems))
    return found


def balance_violations(world: World) -> tuple[int, int, list]:
    """(violations, oversold units, details) over the world's stock rows."""
    rows = stock_row_problems(world.prefix + "%")
    violations = sum(len(r.problems) for r in rows)
    oversold = sum(r.oversold_units for r in rows)
    return violations, oversold, [(r.sku, r.warehouse, r.problems) for r in rows]


def check(  # noqa: C901 -- one flat pass per invariant, each reported separately
    *, scenario: str, seed: int, world: World, run: Run, client_pk, base_url: str, key: str
) -> Report:
    report = Report(scenario=scenario, seed=seed)
    outcomes = Counter(op.outcome for op in run.ops)
    report.attempted = len(run.ops)
    report.acknowledged = outcomes[OK]
    report.failed = outcomes[FAILED]
    report.unknown_left = outcomes[UNKNOWN]
    report.unknown_resolved = sum(1 for op in run.ops if op.resolved and op.outcome != UNKNOWN)
    report.reads = dict(run.reads)
    report.outcome_codes = dict(Counter(f"{op.kind}:{op.code or op.status}" for op in run.ops))

    v, oversold, details = balance_violations(world)
    report.invariant_violations += v
    report.oversold_units = oversold
    report.details += details

    like = world.prefix + "%"
    # Every ledger row of the world's SKUs: id, type, reference id.
    ledger = _rows(
        """
        SELECT t.id::text, t.type, t.reference_type, t.reference_id
        FROM inventory_inventorytransaction t JOIN inventory_product p ON p.id = t.product_id
        WHERE p.sku LIKE %s
        """,
        [like],
    )
    by_reference: dict[tuple[str, str], list[str]] = {}
    for tid, ttype, _rtype, rid in ledger:
        by_reference.setdefault((ttype, rid), []).append(tid)
    applied = dict(
        _rows(
            "SELECT key, result FROM inventory_appliedoperation WHERE key LIKE %s",
            [f"%:key:api:{client_pk}:{world.prefix}%"],
        )
    )
    lines_per_order = dict(
        _rows(
            """
            SELECT r.order_id, COUNT(l.id) FROM inventory_reservation r
            JOIN inventory_reservationline l ON l.reservation_id = r.id
            WHERE r.order_id LIKE %s GROUP BY r.order_id
            """,
            [like],
        )
    )
    attributed: set[str] = {
        tid
        for (ttype, rid), ids in by_reference.items()
        if ttype == "RECEIVE" and rid.startswith(world.prefix + "seed")
        for tid in ids
    }

    for op in run.ops:
        if op.kind == "reserve":
            ids = by_reference.get(("RESERVE", op.handle), [])
            expected = lines_per_order.get(op.handle, 0)
            if op.outcome == OK:
                if not ids or not expected:
                    report.lost += 1
                    report.details.append(("lost", op.kind, op.handle))
                elif len(ids) > expected:
                    report.duplicated += 1
                    report.details.append(("duplicated", op.kind, op.handle, len(ids)))
                attributed.update(ids)
            elif op.outcome == FAILED and (ids or expected):
                report.phantom += 1
                report.details.append(("phantom", op.kind, op.handle, op.code))
        elif op.kind in EXPECTED_ROWS:
            ttype = op.kind.upper()
            ids = by_reference.get((ttype, op.handle), [])
            record = applied.get(f"{op.kind}:key:api:{client_pk}:{op.handle}")
            if op.outcome == OK:
                if not ids or record is None:
                    report.lost += 1
                    report.details.append(("lost", op.kind, op.handle))
                elif len(ids) > EXPECTED_ROWS[op.kind]:
                    report.duplicated += 1
                    report.details.append(("duplicated", op.kind, op.handle, len(ids)))
                attributed.update(ids)
            elif op.outcome == FAILED and (ids or record is not None):
                report.phantom += 1
                report.details.append(("phantom", op.kind, op.handle, op.code))
        else:  # release / fulfill, whole or partial, always under an Idempotency-Key
            action = op.kind.removesuffix("_partial")
            order_id = op.path.rstrip("/").split("/")[-2]
            record = applied.get(f"{action}:order:{order_id}:key:api:{client_pk}:{op.handle}")
            if op.outcome == OK:
                if record is None:
                    report.lost += 1
                    report.details.append(("lost", op.kind, op.handle))
                else:
                    if isinstance(record, str):
                        record = json.loads(record)
                    ids = record["transactions"]
                    known = set(by_reference.get((action.upper(), order_id), []))
                    if any(tid not in known for tid in ids):
                        report.lost += 1
                        report.details.append(("lost", op.kind, op.handle))
                    attributed.update(ids)
            elif op.outcome == FAILED and record is not None:
                report.phantom += 1
                report.details.append(("phantom", op.kind, op.handle, op.code))

    unattributed = [row for row in ledger if row[0] not in attributed]
    report.unattributed_ledger_rows = len(unattributed)
    report.details += [("unattributed", *row) for row in unattributed[:20]]
    report.cache_mismatches = cache_mismatches(world, base_url, key)
    events = event_feed_problems(like)  # issue 14: one event per committed change
    report.invariant_violations += len(events)
    report.details += events[:20]
    return report


def cache_mismatches(world: World, base_url: str, key: str, wait: float = 15.0) -> int:
    """SKUs whose availability over the API (the Redis read model) differs from the
    database's, after waiting up to `wait` seconds for the read model to converge."""
    from inventory.selectors import availability_from_database

    deadline = time.monotonic() + wait
    skus = world.all_skus
    while True:
        truth = availability_from_database(skus)
        expected = {
            sku: (a.available, sorted((w.code, w.available) for w in a.warehouses))
            for sku, a in truth.items()
        }
        response = requests.get(
            f"{base_url}/api/v1/availability/",
            params=[("sku", s) for s in skus],
            headers={"Authorization": f"Token {key}"},
            timeout=10,
        )
        response.raise_for_status()
        served = {
            r["sku"]: (r["available"], sorted((w["code"], w["available"]) for w in r["warehouses"]))
            for r in response.json()["results"]
        }
        mismatched = [sku for sku in skus if served.get(sku) != expected[sku]]
        if not mismatched or time.monotonic() > deadline:
            return len(mismatched)
        time.sleep(0.5)


def event_feed_problems(sku_like: str = "%") -> list[tuple]:
    """Issue 14's invariant: every committed ledger row of these SKUs is in exactly
    one `stock.changed` event of the feed, and every such event names only
    committed ledger rows. Returns (problem, ledger id, times seen) per offence."""
    rows = _rows(
        """
        WITH ledger AS (
            SELECT t.id::text AS id FROM inventory_inventorytransaction t
            JOIN inventory_product p ON p.id = t.product_id WHERE p.sku LIKE %s
        ), seen AS (
            SELECT x.id, count(*) AS n
            FROM events_event e
            CROSS JOIN LATERAL jsonb_array_elements_text(events_payload(e) -> 'ledger_ids') AS x(id)
            WHERE e.type = 'stock.changed' AND e.sku LIKE %s
            GROUP BY x.id
        )
        SELECT coalesce(l.id, s.id), coalesce(s.n, 0), l.id IS NOT NULL
        FROM ledger l FULL JOIN seen s ON s.id = l.id
        WHERE l.id IS NULL OR s.n IS DISTINCT FROM 1
        """,
        [sku_like, sku_like],
    )
    return [
        ("event_without_ledger_row" if not known else "ledger_row_events", tid, n)
        for tid, n, known in rows
    ]
