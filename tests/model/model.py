"""The reference model: the documented stock contract, in memory, in plain Python.

No Django, no database: what docs/API.md and issue #13 promise, written as
simply as possible, so that `machine.py` can compare the real system with it
after every step. Time is the test clock's offset in whole seconds (`now`),
quantised by the machine (see `machine.QUANTUM`).

Where the contract leaves the system a choice, the model does not guess:

* a hold past its `expires_at` ("lapsed") counts nowhere for availability,
  the gate, routing and reservations, but it may be *released* (status
  `expired`) at any moment after it lapsed: the whole order by the sweeper or
  by a close or confirm of that order, single lines by a reservation that
  needs their units (docs/API.md "Checkout holds": whole holds on that stock
  row; the order stays `active` while it has lines open elsewhere). The
  machine observes which lapsed lines the system has released (`expire_line`)
  before it computes what a step should have answered;
* operations the contract does not exempt from lapsed holds (adjust, transfer,
  stock-policy change) see the stock rows as they are, i.e. lapsed holds not
  yet released still count as reserved there.

Bundles (issue #16, docs/API.md "Reserving a bundle"): `BUNDLES` over the SKUs
above (B in both, so a row can be wanted by two bundles and sold alone in one
order). An order line of n bundle units in a warehouse is n x quantity of each
component there, on lines of their own (a line's key is (sku, warehouse,
bundle or "")), checked summed per stock row with the order's other lines.
Release/fulfil by a bundle SKU takes whole bundle units from that bundle's
lines; a component's SKU acts only on the line where it was sold alone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

WAREHOUSES = ("BER", "HAM")
# (sku, stock policy, backorder limit) at the start of every example.
SKUS = (("A", "normal", 0), ("B", "normal", 0), ("C", "backorder", 3))
# bundle SKU -> {component SKU: quantity per bundle unit}
BUNDLES = {"KIT": {"A": 1, "B": 2}, "DUO": {"B": 1, "C": 1}}
LOW_STOCK_UNITS = 5  # settings.STOCKROOM_LOW_STOCK_UNITS

# Closest warehouse first, per `ship_to` choice (no ship_to: all equally close, by code).
SHIP_TO = {
    None: None,
    "hannover": {"latitude": 52.37, "longitude": 9.73},  # Hamburg 132 km, Berlin 250 km
    "potsdam": {"latitude": 52.39, "longitude": 13.06},  # Berlin 27 km, Hamburg 240 km
}
CLOSEST_FIRST = {None: ("BER", "HAM"), "hannover": ("HAM", "BER"), "potsdam": ("BER", "HAM")}

ACTIVE, RELEASED, FULFILLED, EXPIRED = "active", "released", "fulfilled", "expired"


@dataclass
class Line:
    sku: str
    warehouse: str
    quantity: int
    fulfilled: int = 0
    released: int = 0
    status: str = ACTIVE
    bundle: str = ""  # the bundle SKU this component line was reserved for

    @property
    def open(self) -> int:
        return self.quantity - self.fulfilled - self.released

    def expired(self) -> Line:
        """This line as its hold's expiry leaves it (what is open released)."""
        return Line(
            self.sku,
            self.warehouse,
            self.quantity,
            self.fulfilled,
            self.released + self.open,
            FULFILLED if self.fulfilled else EXPIRED,
            self.bundle,
        )

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.sku, self.warehouse, self.bundle)

    def as_tuple(self) -> tuple:
        return (
            self.sku,
            self.warehouse,
            self.quantity,
            self.fulfilled,
            self.released,
            self.status,
            self.bundle or None,
        )


@dataclass
class Order:
    order_id: str
    lines: dict[tuple[str, str, str], Line]  # (sku, warehouse, bundle or "")
    expires_at: int | None  # model seconds, or None (no hold expiry / confirmed)
    status: str = ACTIVE
    request: dict[tuple[str, str], int] | None = None  # merged request lines (bundles)

    def held(self) -> dict[tuple[str, str], int]:
        """What the order was reserved with, merged per (sku, warehouse): the
        request itself for an order with bundle lines."""
        if self.request is not None:
            return dict(self.request)
        return {(line.sku, line.warehouse): line.quantity for line in self.lines.values()}

    def held_per_sku(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in self.lines.values():
            out[line.sku] = out.get(line.sku, 0) + line.quantity
        return out

    @property
    def has_open(self) -> bool:
        return any(line.open > 0 for line in self.lines.values())


@dataclass
class Outcome:
    """What the system must answer: HTTP status, error code (None on success) and
    the error's details the contract fixes (None: not compared)."""

    status: int
    code: str | None = None
    details: dict | None = None
    codes: frozenset[str] = frozenset()  # alternative codes the contract allows

    def allows(self, code: str | None) -> bool:
        return code == self.code or code in self.codes


def ok(status: int = 200) -> Outcome:
    return Outcome(status)


def error(status: int, code: str, details: dict | None = None, *also: str) -> Outcome:
    return Outcome(status, code, details, frozenset(also))


def order_status(lines, closing: str) -> str:
    """`inventory.services.orders.order_status`, as documented."""
    lines = list(lines)
    if any(line.open > 0 for line in lines):
        return ACTIVE
    if any(line.fulfilled > 0 for line in lines):
        return FULFILLED
    if any(line.status == EXPIRED for line in lines):
        return EXPIRED
    return closing


@dataclass
class Transit:
    """A two-step transfer: shipped (in transit) until received."""

    source: str
    destination: str
    lines: dict[str, int]  # sku -> shipped
    status: str = "shipped"
    arrived: dict[str, int] | None = None  # sku -> received, once received


@dataclass
class Model:
    now: int = 0
    policy: dict[str, tuple[str, int]] = field(default_factory=dict)
    on_hand: Counter = field(default_factory=Counter)  # (sku, wh) -> units
    # Stock states (issue #15): units of on hand that cannot be sold.
    damaged: Counter = field(default_factory=Counter)  # (sku, wh) -> units
    quality_control: Counter = field(default_factory=Counter)  # (sku, wh) -> units
    # Returns by return id: the normalised lines (sku, wh, quantity, disposition).
    returns: dict[str, tuple] = field(default_factory=dict)
    # Two-step transfers by transfer id (issue #15 item 3).
    transfers: dict[str, Transit] = field(default_factory=dict)
    threshold: Counter = field(default_factory=Counter)  # (sku, wh) -> reorder threshold
    orders: dict[str, Order] = field(default_factory=dict)
    # (sku, wh, ledger type) -> number of ledger rows
    ledger_rows: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for sku, policy, limit in SKUS:
            self.policy.setdefault(sku, (policy, limit))

    # --- reading -----------------------------------------------------------

    def allowance(self, sku: str) -> int:
        policy, limit = self.policy[sku]
        return 0 if policy == "normal" else limit

    def lapsed(self, order: Order) -> bool:
        return (
            order.status == ACTIVE and order.expires_at is not None and order.expires_at <= self.now
        )

    def reserved(self, sku: str, wh: str, *, live_only: bool = False) -> int:
        """Open quantity of active orders on the row (what the row's `reserved`
        column holds); `live_only`: without lapsed holds (what counts for sale)."""
        total = 0
        for order in self.orders.values():
            if order.status != ACTIVE or (live_only and self.lapsed(order)):
                continue
            for line in order.lines.values():
                if (line.sku, line.warehouse) == (sku, wh):
                    total += line.open
        return total

    def good(self, sku: str, wh: str) -> int:
        """On hand that can ship: neither damaged nor held for quality control."""
        return self.on_hand[(sku, wh)] - self.damaged[(sku, wh)] - self.quality_control[(sku, wh)]

    def free(self, sku: str, wh: str) -> int:
        """Sellable: good units not held by live holds (negative when backordered)."""
        return self.good(sku, wh) - self.reserved(sku, wh, live_only=True)

    def reservable(self, sku: str, wh: str) -> int:
        return self.free(sku, wh) + self.allowance(sku)

    def availability(self, sku: str) -> dict:
        """GET /availability/{sku}/ as documented (warehouses: code -> available > 0)."""
        per = {wh: max(self.free(sku, wh), 0) for wh in WAREHOUSES}
        available = sum(per.values())
        policy, _ = self.policy[sku]
        allowance = self.allowance(sku)
        if available > 0:
            level = sum(self.threshold[(sku, wh)] for wh in WAREHOUSES) or LOW_STOCK_UNITS
            status = "low_stock" if available <= level else "in_stock"
        elif allowance > 0 and any(self.free(sku, wh) + allowance > 0 for wh in WAREHOUSES):
            status = "preorder" if policy == "preorder" else "backorder"
        else:
            status = "out_of_stock"
        return {
            "available": available,
            "status": status,
            "warehouses": {wh: n for wh, n in per.items() if n > 0},
        }

    # --- time and expiry ----------------------------------------------------

    def advance(self, seconds: int) -> None:
        self.now += seconds

    def lapsed_orders(self) -> list[str]:
        return sorted(oid for oid, order in self.orders.items() if self.lapsed(order))

    def expire(self, order_id: str) -> None:
        """Release what a lapsed order still holds (status expired), as the
        sweeper does: one RELEASE ledger row per line with something open."""
        order = self.orders[order_id]
        assert self.lapsed(order), order_id
        self._close(order, None, "RELEASE", EXPIRED)

    def expire_line(self, order_id: str, key: tuple[str, str, str]) -> None:
        """Release one line of a lapsed order, as a reservation that needs its
        units does (docs/API.md "Checkout holds": whole holds on that stock row;
        the order stays active while it has lines open elsewhere)."""
        order = self.orders[order_id]
        assert self.lapsed(order) and order.lines[key].open > 0, (order_id, key)
        order.lines[key] = order.lines[key].expired()
        self.ledger_rows[(*key[:2], "RELEASE")] += 1
        order.status = order_status(order.lines.values(), EXPIRED)

    def sweep(self) -> int:
        lapsed = self.lapsed_orders()
        for order_id in lapsed:
            self.expire(order_id)
        return len(lapsed)

    # --- stock operations ---------------------------------------------------

    def receive(self, sku: str, wh: str, quantity: int) -> None:
        self.on_hand[(sku, wh)] += quantity
        self.ledger_rows[(sku, wh, "RECEIVE")] += 1

    def adjust_outcome(
        self, sku: str, wh: str, new_on_hand: int, expected_on_hand: int | None
    ) -> Outcome:
        on_hand = self.on_hand[(sku, wh)]
        if expected_on_hand is not None and expected_on_hand != on_hand:
            return error(
                409,
                "stock_changed",
                {
                    "sku": sku,
                    "warehouse": wh,
                    "expected_on_hand": expected_on_hand,
                    "on_hand": on_hand,
                },
            )
        if new_on_hand < 0:
            return error(400, "invalid_quantity")
        reserved = self.reserved(sku, wh)
        unsellable = self.damaged[(sku, wh)] + self.quality_control[(sku, wh)]
        if new_on_hand < unsellable:
            return error(
                409,
                "below_reserved",
                {
                    "sku": sku,
                    "warehouse": wh,
                    "damaged": self.damaged[(sku, wh)],
                    "quality_control": self.quality_control[(sku, wh)],
                    "requested_on_hand": new_on_hand,
                },
            )
        if new_on_hand - unsellable - reserved < -self.allowance(sku):
            return error(
                409,
                "below_reserved",
                {
                    "sku": sku,
                    "warehouse": wh,
                    "reserved": reserved,
                    "requested_on_hand": new_on_hand,
                },
            )
        return ok(201)

    def adjust(self, sku: str, wh: str, new_on_hand: int) -> None:
        if new_on_hand != self.on_hand[(sku, wh)]:
            self.on_hand[(sku, wh)] = new_on_hand
            self.ledger_rows[(sku, wh, "ADJUST")] += 1

    def transfer_outcome(self, source: str, lines: dict[str, int]) -> Outcome:
        short = []
        for sku, qty in sorted(lines.items()):
            movable = self.good(sku, source) - self.reserved(sku, source)
            if qty > movable:
                short.append(
                    {
                        "sku": sku,
                        "warehouse": source,
                        "requested": qty,
                        "available": max(movable, 0),
                    }
                )
        if short:
            return error(409, "insufficient_stock", {"lines": short})
        return ok(201)

    def transfer(self, source: str, destination: str, lines: dict[str, int]) -> None:
        for sku, qty in lines.items():
            self.on_hand[(sku, source)] -= qty
            self.on_hand[(sku, destination)] += qty
            self.ledger_rows[(sku, source, "TRANSFER")] += 1
            self.ledger_rows[(sku, destination, "TRANSFER")] += 1

    def policy_outcome(self, sku: str, policy: str, limit: int) -> Outcome:
        allowance = 0 if policy == "normal" else limit
        for wh in WAREHOUSES:
            if self.good(sku, wh) - self.reserved(sku, wh) < -allowance:
                return error(409, "allowance_below_backorders")
        return ok(200)

    def set_policy(self, sku: str, policy: str, limit: int) -> None:
        self.policy[sku] = (policy, 0 if policy == "normal" else limit)

    # --- stock states (issue #15) ---------------------------------------------

    def move_outcome(self, sku: str, wh: str, source: str, quantity: int) -> Outcome:
        """POST /stock/move/ out of `source` (sellable, damaged, quality_control)."""
        if source == "sellable":
            good = self.good(sku, wh)
            free = good - self.reserved(sku, wh) + self.allowance(sku)
            if quantity > good or quantity > free:
                line = {
                    "sku": sku,
                    "warehouse": wh,
                    "state": source,
                    "requested": quantity,
                    "available": max(min(good, free), 0),
                }
                return error(409, "insufficient_stock", {"lines": [line]})
            return ok(201)
        held = self._state(source)[(sku, wh)]
        if quantity > held:
            line = {
                "sku": sku,
                "warehouse": wh,
                "state": source,
                "requested": quantity,
                "available": held,
            }
            return error(409, "insufficient_state", {"lines": [line]})
        return ok(201)

    def _state(self, state: str) -> Counter:
        return self.damaged if state == "damaged" else self.quality_control

    def move(self, sku: str, wh: str, source: str, target: str, quantity: int) -> dict:
        """Apply a move; returns the ledger row's deltas (type and per state)."""
        deltas = {"on_hand": 0, "damaged": 0, "quality_control": 0}
        if source != "sellable":
            self._state(source)[(sku, wh)] -= quantity
            deltas[source] -= quantity
        if target == "written_off":
            self.on_hand[(sku, wh)] -= quantity
            deltas["on_hand"] -= quantity
            kind = "WRITE_OFF"
        else:
            if target != "sellable":
                self._state(target)[(sku, wh)] += quantity
                deltas[target] += quantity
            kind = "MOVE"
        self.ledger_rows[(sku, wh, kind)] += 1
        return {"type": kind, **deltas}

    def return_outcome(self, return_id: str, lines: tuple) -> Outcome:
        previous = self.returns.get(return_id)
        if previous is None:
            return ok(201)
        if previous == lines:
            return ok(200)
        return error(409, "return_conflict", {"return_id": return_id})

    def receive_return(self, return_id: str, lines: tuple) -> dict[tuple[str, str], dict]:
        """Book a return: per stock row the RETURN row's deltas (dispose: none)."""
        self.returns[return_id] = lines
        rows: dict[tuple[str, str], dict] = {}
        for sku, wh, qty, disposition in lines:
            if disposition == "dispose":
                continue
            deltas = rows.setdefault((sku, wh), {"on_hand": 0, "damaged": 0, "quality_control": 0})
            self.on_hand[(sku, wh)] += qty
            deltas["on_hand"] += qty
            if disposition in ("damaged", "quality_control"):
                self._state(disposition)[(sku, wh)] += qty
                deltas[disposition] += qty
        for sku, wh in rows:
            self.ledger_rows[(sku, wh, "RETURN")] += 1
        return rows

    # --- transfers in two steps (issue #15 item 3) ------------------------------

    def ship_outcome(self, transfer_id: str, source: str, lines: dict[str, int]) -> Outcome:
        previous = self.transfers.get(transfer_id)
        if previous is not None:
            if (previous.source, previous.lines) == (source, lines):
                return ok(200)
            return error(409, "transfer_conflict", {"transfer_id": transfer_id})
        return self.transfer_outcome(source, lines)

    def ship(self, transfer_id: str, source: str, destination: str, lines: dict[str, int]):
        self.transfers[transfer_id] = Transit(source, destination, dict(lines))
        for sku, qty in lines.items():
            self.on_hand[(sku, source)] -= qty
            self.ledger_rows[(sku, source, "TRANSFER")] += 1

    def arrived(self, transfer_id: str, received: dict[str, int]) -> dict[str, int]:
        shipped = self.transfers[transfer_id].lines
        return {sku: received.get(sku, qty) for sku, qty in shipped.items()}

    def receive_transfer_outcome(
        self, transfer_id: str, received: dict[str, int], reason: str
    ) -> Outcome:
        transit = self.transfers.get(transfer_id)
        if transit is None:
            return error(404, "not_found")
        if any(sku not in transit.lines or q > transit.lines[sku] for sku, q in received.items()):
            return error(400, "exceeds_shipped")
        arrived = self.arrived(transfer_id, received)
        short = any(arrived[sku] < qty for sku, qty in transit.lines.items())
        if short and not reason:
            return error(400, "reason_required")
        if transit.status != "shipped":
            if transit.arrived == arrived:
                return ok(200)
            return error(409, "transfer_not_in_transit", {"status": transit.status})
        return ok(201)

    def receive_transfer(self, transfer_id: str, received: dict[str, int]) -> None:
        transit = self.transfers[transfer_id]
        arrived = self.arrived(transfer_id, received)
        for sku, qty in transit.lines.items():
            key = (sku, transit.destination)
            self.on_hand[key] += qty
            self.ledger_rows[(*key, "TRANSFER")] += 1
            if arrived[sku] < qty:
                self.on_hand[key] -= qty - arrived[sku]
                self.ledger_rows[(*key, "WRITE_OFF")] += 1
        short = any(arrived[sku] < qty for sku, qty in transit.lines.items())
        transit.status = "received_short" if short else "received"
        transit.arrived = arrived

    # --- reservations -------------------------------------------------------

    def same_named_request(self, order: Order, merged: dict[tuple[str, str], int]) -> bool:
        """A request naming every line's warehouse repeats the order iff its
        merged lines are the ones held (`_reservation_fingerprint`)."""
        return merged == order.held()

    def same_routed_request(self, order: Order, lines: list[tuple[str, str | None, int]]) -> bool:
        """A routed request repeats the order iff per SKU the same total, and
        each line that names a warehouse is held there (`routing._same_request`)."""
        wanted: dict[str, int] = {}
        wanted_at: dict[tuple[str, str], int] = {}
        for sku, wh, qty in lines:
            wanted[sku] = wanted.get(sku, 0) + qty
            if wh:
                wanted_at[(sku, wh)] = wanted_at.get((sku, wh), 0) + qty
        held_at = order.held()
        return wanted == order.held_per_sku() and all(
            held_at.get(k, 0) >= q for k, q in wanted_at.items()
        )

    def named_shortage(self, merged: dict[tuple[str, str], int]) -> list[dict]:
        short = []
        for (sku, wh), qty in sorted(merged.items()):
            can = self.reservable(sku, wh)
            if qty > can:
                short.append(
                    {"sku": sku, "warehouse": wh, "requested": qty, "available": max(can, 0)}
                )
        return short

    def route(
        self, lines: list[tuple[str, str | None, int]], ship_to: str | None
    ) -> dict[tuple[str, str], int] | list[dict]:
        """docs/API.md "Routing" for two warehouses: the merged lines to reserve,
        or the short lines (warehouse null) of a 409."""
        demand: dict[str, int] = {}
        for sku, _, qty in lines:
            demand[sku] = demand.get(sku, 0) + qty
        closest = CLOSEST_FIRST[ship_to]
        supply = {sku: {wh: max(self.reservable(sku, wh), 0) for wh in closest} for sku in demand}
        short = [
            {
                "sku": sku,
                "warehouse": None,
                "requested": qty,
                "available": sum(supply[sku].values()),
            }
            for sku, qty in sorted(demand.items())
            if sum(supply[sku].values()) < qty
        ]
        if short:
            return short
        candidates = [wh for wh in closest if any(supply[sku][wh] for sku in demand)]
        single = [wh for wh in candidates if all(supply[s][wh] >= q for s, q in demand.items())]
        chosen = single[:1] or candidates
        merged: dict[tuple[str, str], int] = {}
        for sku, qty in sorted(demand.items()):
            whole = next((wh for wh in chosen if supply[sku][wh] >= qty), None)
            if whole is not None:
                merged[(sku, whole)] = qty
                continue
            remaining = qty
            for wh in chosen:
                take = min(supply[sku][wh], remaining)
                if take > 0:
                    merged[(sku, wh)] = take
                    remaining -= take
        return merged

    @staticmethod
    def expand(
        request: dict[tuple[str, str], int],
    ) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str, str], int]]:
        """A named request's bundle lines as their components' lines: the
        order's total per stock row (what is checked) and its lines (sku,
        warehouse, bundle or "") -> quantity (what is written)."""
        totals: dict[tuple[str, str], int] = {}
        parts: dict[tuple[str, str, str], int] = {}
        for (sku, wh), qty in request.items():
            bundle = BUNDLES.get(sku)
            for component, per in (bundle or {sku: 1}).items():
                totals[(component, wh)] = totals.get((component, wh), 0) + qty * per
                key = (component, wh, sku if bundle else "")
                parts[key] = parts.get(key, 0) + qty * per
        return totals, parts

    def create_order(
        self, order_id: str, merged: dict[tuple[str, str], int], expires_at: int | None
    ) -> Order:
        """`merged`: the request's lines per (sku, warehouse), bundle SKUs among them."""
        _, parts = self.expand(merged)
        order = Order(
            order_id,
            {key: Line(key[0], key[1], qty, bundle=key[2]) for key, qty in sorted(parts.items())},
            expires_at,
            request=dict(merged) if any(sku in BUNDLES for sku, _ in merged) else None,
        )
        self.orders[order_id] = order
        for sku, wh, _ in parts:
            self.ledger_rows[(sku, wh, "RESERVE")] += 1
        return order

    # --- confirm, release, fulfil -------------------------------------------

    def closed_status(self, order: Order) -> str | None:
        """The status a close or confirm reports for an order that holds nothing
        (a lapsed hold counts as expired: what its expiry would leave), else None."""
        if self.lapsed(order):
            probe = [line.expired() if line.open else line for line in order.lines.values()]
            return order_status(probe, EXPIRED)
        if not order.has_open:
            return order.status
        return None

    def close_outcome(self, order_id: str, op: str, line: tuple[str, str, int] | None) -> Outcome:
        """Whole-order (line None) or one-line release/fulfil (op RELEASE/FULFILL)."""
        order = self.orders.get(order_id)
        if order is None:
            return error(404, "not_found")
        closed = self.closed_status(order)
        if line is None:
            if closed is not None:
                return error(409, "order_closed", {"status": closed})
            take = {key: held.open for key, held in order.lines.items() if held.open > 0}
        elif line[0] in BUNDLES:
            return self._bundle_close_outcome(order, op, line, closed)
        else:
            sku, wh, qty = line
            held = order.lines.get((sku, wh, ""))
            open_qty = held.open if held is not None and closed is None else 0
            if qty > open_qty:
                details = {
                    "lines": [{"sku": sku, "warehouse": wh, "requested": qty, "held": open_qty}]
                }
                if closed is not None:  # nothing open at all: either answer is a 409
                    return error(409, "exceeds_reservation", None, "order_closed")
                return error(409, "exceeds_reservation", details)
            take = {(sku, wh, ""): qty}
        return self._fulfil_outcome(op, take)

    def _fulfil_outcome(self, op: str, take: dict[tuple[str, str, str], int]) -> Outcome:
        """A fulfilment is checked against each row's on hand with the total it
        takes from the row (several lines of one order may share a row)."""
        if op == "FULFILL":
            # Only good units ship (issue #15): details report them as on_hand. Lines
            # sharing a row (a bundle's and the component's own) are checked summed.
            per_row: dict[tuple[str, str], int] = {}
            for (sku, wh, _), qty in take.items():
                per_row[(sku, wh)] = per_row.get((sku, wh), 0) + qty
            short = [
                {"sku": sku, "warehouse": wh, "requested": qty, "on_hand": self.good(sku, wh)}
                for (sku, wh), qty in sorted(per_row.items())
                if qty > self.good(sku, wh)
            ]
            if short:
                details = {"lines": short} if len(per_row) == len(take) else None
                return error(409, "insufficient_on_hand", details)
        return ok(200)

    def bundle_units_open(self, order: Order, bundle: str, wh: str) -> int:
        """Whole units of `bundle` the order holds open in `wh`."""
        lines = [order.lines.get((c, wh, bundle)) for c in BUNDLES[bundle]]
        if any(line is None for line in lines):
            return 0
        return min(line.open // BUNDLES[bundle][line.sku] for line in lines)

    def bundle_take(self, line: tuple[str, str, int]) -> dict[tuple[str, str, str], int]:
        bundle, wh, qty = line
        return {(c, wh, bundle): qty * per for c, per in BUNDLES[bundle].items()}

    def _bundle_close_outcome(
        self, order: Order, op: str, line: tuple[str, str, int], closed: str | None
    ) -> Outcome:
        """Release/fulfil of N units by bundle SKU in one warehouse: more than the
        open whole units is 409 exceeds_reservation (details not modelled)."""
        bundle, wh, qty = line
        held = self.bundle_units_open(order, bundle, wh) if closed is None else 0
        if qty > held:
            if closed is not None:
                return error(409, "exceeds_reservation", None, "order_closed")
            return error(409, "exceeds_reservation")
        outcome = self._fulfil_outcome(op, self.bundle_take(line))
        return error(409, outcome.code) if outcome.code else outcome

    def close(self, order_id: str, op: str, line: tuple[str, str, int] | None) -> None:
        order = self.orders[order_id]
        self._close(order, line, op, RELEASED if op == "RELEASE" else FULFILLED)

    def _close(self, order: Order, line: tuple[str, str, int] | None, op: str, closing: str):
        if line is None:
            take = {key: held.open for key, held in order.lines.items() if held.open > 0}
        elif line[0] in BUNDLES:
            take = self.bundle_take(line)
        else:
            take = {(line[0], line[1], ""): line[2]}
        for key, qty in take.items():
            held = order.lines[key]
            if op == "FULFILL":
                held.fulfilled += qty
                self.on_hand[key[:2]] -= qty
            else:
                held.released += qty
            if held.open == 0:
                held.status = FULFILLED if held.fulfilled else closing
            self.ledger_rows[(*key[:2], op)] += 1
        order.status = order_status(order.lines.values(), closing)

    def confirm_outcome(self, order_id: str) -> Outcome:
        order = self.orders.get(order_id)
        if order is None:
            return error(404, "not_found")
        closed = self.closed_status(order)
        if closed is not None:
            return error(409, "order_closed", {"status": closed})
        return ok(200)

    def confirm(self, order_id: str, expires_in: int | None) -> None:
        order = self.orders[order_id]
        order.expires_at = None if expires_in is None else self.now + expires_in

    # --- what the database should hold -----------------------------------------

    def rows(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(sku, wh) -> (on_hand, reserved) for every row with something in it."""
        out = {}
        for sku, _, _ in SKUS:
            for wh in WAREHOUSES:
                values = (self.on_hand[(sku, wh)], self.reserved(sku, wh))
                if values != (0, 0):
                    out[(sku, wh)] = values
        return out
