"""The PostgreSQL reservation engine's adapter: calls of the stock functions.

On PostgreSQL, reserving (`stockroom_reserve_orders`, one statement per order or
batch) and closing a whole order (`stockroom_close_order`) run as PL/pgSQL
functions, defined in `inventory/sql/` (loaded by migrations; migration 0003
names this file). This module passes them their arguments (the instant that
decides which holds have lapsed comes from `inventory.clock`), turns their JSON
answers into the same results the ORM path gives (model instances marked as
saved, `CommittedChange`s published after commit), and creates the inventory
rows a reservation found missing. STOCKROOM_RESERVE_ENGINE=python forces the ORM
path (`use_sql_engine`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from types import MappingProxyType
from typing import Any, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models import Q
from django.db.models.base import ModelState

from warehouses.models import Warehouse

from .. import clock, errors
from ..actors import SYSTEM_SWEEPER
from ..context import current_request_id
from ..models import (
    InventoryTransaction,
    Product,
    ReferenceType,
    Reservation,
    ReservationLine,
    ReservationStatus,
    TransactionType,
)
from ..prepared import prepared_cursor
from .bundle_lines import (
    BUNDLE_REASON_PREFIX,
    Bundle,
    bundle_compositions,
    expand_order,
    remembered_bundles,
)
from .ledger import CommittedChange, CommittedChanges, publish_on_commit
from .orders import (
    EXPIRY_REASON,
    LAPSED_BUSY_RETRIES,
    MergedOrder,
    ReservationOutcome,
    ReservationResult,
    lapsed_orders_elsewhere,
    wait_for_closers,
)
from .rows import check_known, stock_rows_create


def use_sql_engine() -> bool:
    """PostgreSQL reserves through `stockroom_reserve_orders` (migration 0003):
    one statement per order or batch. STOCKROOM_RESERVE_ENGINE=python forces the
    Python implementation (the only one on SQLite); both give the same results."""
    engine = settings.STOCKROOM_RESERVE_ENGINE
    return engine == "sql" and connection.vendor == "postgresql"


def call_stock_function(sql: str, params: Sequence[Any]) -> dict:
    """Run one of the PostgreSQL stock functions (migrations 0003-0008); its JSON answer."""
    with _function_cursor() as cursor:
        cursor.execute(sql, params)
        (payload,) = cursor.fetchone()
    # Django loads jsonb as text; json.loads here costs the same as psycopg's own
    # jsonb loader (which calls it too), so the text is kept and parsed once.
    return json.loads(payload) if isinstance(payload, str) else payload


def _function_cursor():
    """A cursor for the stock functions' calls (issue #18): bound server-side
    and prepared once per connection (`inventory.prepared`) — the call's arrays
    travel as parameters (text array literals, `array_literal`) instead of being
    quoted into the SQL text on the client and parsed back on the server."""
    # The connection itself, not the `connection` proxy (a thread-local lookup
    # per attribute).
    return prepared_cursor(connections[DEFAULT_DB_ALIAS])


def _compositions(
    requests: Sequence[MergedOrder], bundles: dict[str, Bundle]
) -> dict[str, list[list]] | None:
    """The compositions the requests' bundle lines were expanded with, as the
    reserve function checks them under its FOR SHARE lock (migration 0022):
    {bundle SKU: [[component SKU, quantity], ...]}; None when no line is a bundle's."""
    used = {sku for request in requests for sku in request.bundle_ids}
    if not used:
        return None
    return {sku: [list(part) for part in bundles[sku].components] for sku in sorted(used)}


def _call_reserve_function(
    requests: Sequence[MergedOrder], actor: str, request_id: str, bundles: dict[str, Bundle]
) -> dict:
    compositions = _compositions(requests, bundles)
    skus, codes, qtys, counts, bundle_skus = [], [], [], [], []
    for request in requests:
        items = request.lines()
        counts.append(len(items))
        for sku, code, bundle, qty in items:
            skus.append(sku)
            codes.append(code)
            qtys.append(qty)
            bundle_skus.append(bundle)
    return call_stock_function(
        "SELECT stockroom_reserve_orders(%s::text[], %s::text[], %s::timestamptz[], "
        "%s::integer[], %s::text[], %s::text[], %s::bigint[], %s, %s, %s, %s::text[], %s::jsonb)",
        [
            array_literal([r.order_id for r in requests]),
            array_literal([r.fingerprint for r in requests]),
            array_literal([_timestamp(r.expires_at) for r in requests]),
            array_literal(counts),
            array_literal(skus),
            array_literal(codes),
            array_literal(qtys),
            actor,
            request_id,
            clock.now(),  # holds expired by this instant count nowhere (migration 0012)
            array_literal(bundle_skus),  # the bundle each line was expanded from, or None (0019)
            # what those bundles were expanded with, checked under lock (migration 0022)
            json.dumps(compositions) if compositions is not None else None,
        ],
    )


def array_literal(values: Sequence[object]) -> str:
    """A PostgreSQL array literal of `values` (str, int or None), every element
    quoted (so no text is read as NULL or split at a comma or brace), NULL for
    None. The reserve function's arrays travel as such text, cast in the call's
    SQL: psycopg's list dumper inspects every element in Python and cost more
    client CPU than the rest of a one-line call's parameters together (issue #18).
    tests/database/test_array_literal.py checks PostgreSQL reads back exactly
    the values, for any text."""
    items = ("NULL" if v is None else '"' + _escape(str(v)) + '"' for v in values)
    return "{" + ",".join(items) + "}"


def _escape(text: str) -> str:
    if "\\" in text or '"' in text:
        return text.replace("\\", "\\\\").replace('"', '\\"')
    return text


def _timestamp(value: datetime | None) -> str | None:
    """An expiry as array text: ISO 8601 with its offset (always aware: from
    `inventory.clock`)."""
    return None if value is None else value.isoformat()


def _hold_changes(
    requests: Sequence[MergedOrder], answers: Sequence[list], released: Sequence[list]
) -> dict[tuple[str, str], list[tuple[datetime, int]]]:
    """Per row, the holds with an expiry that one call of the reserve function
    opened (created orders with `expires_at`; `answers`: the function's per-order
    answers, in request order) and closed (lapsed holds it released to make
    room), for the read model's write-through."""
    holds: dict[tuple[str, str], list[tuple[datetime, int]]] = {}
    for request, answer in zip(requests, answers, strict=True):
        if request.expires_at is not None and answer[0] == "created":
            for pair, qty in request.merged.items():
                holds.setdefault(pair, []).append((request.expires_at, qty))
    for sku, code, expires_at, qty, _order_id in released:
        holds.setdefault((sku, code), []).append((datetime.fromisoformat(expires_at), -qty))
    return holds


# The function's per-order refusals, as the errors the ORM path raises.
_ORDER_ERRORS = {
    "conflict": lambda order_id, detail: errors.OrderConflict(details={"order_id": order_id}),
    "insufficient": lambda order_id, detail: errors.InsufficientStock(detail),
    "inactive": lambda order_id, detail: errors.WarehouseInactive(detail),
}


# Calls of the reserve function per reservation, at most: remembered compositions
# found stale (re-read) or a bundle not remembered found missing (read), a
# composition changed meanwhile (re-read, once), component rows created,
# reserve; one spare (a plain SKU turning into a bundle meanwhile); and the
# retries of an order short only because closers hold lapsed holds' orders.
_RESERVE_CALLS = 5 + LAPSED_BUSY_RETRIES


def reserve_in_database(requests: Sequence[MergedOrder], *, actor: str) -> list[ReservationOutcome]:
    """Reserve orders with one statement (one transaction when called outside a
    transaction). When orders need inventory rows created first (a backorder SKU
    in a new warehouse), the function reserves nothing ('missing' for them,
    'deferred' for the other new orders): the rows are created, holding no locks,
    and the batch runs once more, whole and in order, so an earlier order still
    gets the stock first (docs/API.md).

    Orders naming a bundle this process remembers are expanded before the first
    call (`bundle_lines.remembered_bundles`): one statement. A remembered
    composition that is out of date is answered 'stale' (nothing done) and read
    again; that re-read does not count against the one re-read allowed to a
    composition changing while this call reads it (a second is 503)."""
    outcomes: dict[str, ReservationOutcome] = {}
    request_id = current_request_id()
    originals = {request.order_id: request for request in requests}
    bundles = remembered_bundles({sku for request in requests for sku, _ in request.merged})
    pending = [expand_order(request, bundles) for request in requests]
    from_memory = bool(bundles)
    stale_retried = False
    # (Inside a caller's transaction the rows stay locked: no waiting for closers.)
    busy_retries_left = 0 if connection.in_atomic_block else LAPSED_BUSY_RETRIES
    for attempt in range(_RESERVE_CALLS):
        payload = _call_reserve_function(pending, actor, request_id, bundles)
        if _is_stale(payload):
            # The first call's 'stale', when it was expanded from memory, is the
            # memory's: read again without counting it.
            counts = not (attempt == 0 and from_memory)
            pending, bundles = _expand_again(
                pending,
                originals,
                give_up=(counts and stale_retried) or attempt == _RESERVE_CALLS - 1,
            )
            stale_retried = stale_retried or counts
            continue
        retry = []
        wait: set = set()
        missing: set[tuple[str, str]] = set()
        created_ids: list[str] = []
        existing: list[str] = []
        # Each changed row with the holds this call opened and closed on it, for
        # the read model's write-through (built once, not copied per change).
        holds = _hold_changes(pending, payload["orders"], payload.get("released", ()))
        changes = changes_from_sql(payload["changes"], TransactionType.RESERVE, holds)
        batch = _CreatedBatch(payload, changes, actor, request_id)
        # A bundle SKU not remembered has no row of its own: it comes back
        # 'missing', and its order is expanded into its components' lines and
        # tried again. One composition query for the batch (its answer
        # remembered); a plain order never pays for it.
        bundles.update(_bundles_among_missing(payload["orders"], bundles))
        for request, (status, reservation_id, detail) in zip(
            pending, payload["orders"], strict=True
        ):
            order_id = request.order_id
            if status == "created":
                outcomes[order_id] = ReservationOutcome(
                    order_id,
                    created=True,
                    status=ReservationStatus.ACTIVE,
                    expires_at=request.expires_at,
                    build=partial(batch.result, request, reservation_id),
                )
                created_ids.append(order_id)
            elif status == "exists":
                existing.append(order_id)
            elif (
                status == "insufficient"
                and busy_retries_left
                and (held := _lapsed_held_elsewhere(detail))
            ):
                # Short only because closers hold lapsed holds' orders on its rows
                # (the function skips them, SKIP LOCKED): tried again once they
                # are done (orders.LAPSED_BUSY_RETRIES).
                wait |= held
                retry.append(request)
            elif status in _ORDER_ERRORS:
                outcomes[order_id] = ReservationOutcome(
                    order_id, error=_ORDER_ERRORS[status](order_id, detail)
                )
            elif status in ("missing", "deferred"):
                # 'missing': it needs rows that do not exist; 'deferred': not
                # tried, because another order of the batch needed rows.
                pairs, unknown = _rows_to_create(detail, bundles)
                if unknown is not None:
                    outcomes[order_id] = ReservationOutcome(order_id, error=unknown)
                elif attempt < _RESERVE_CALLS - 1:
                    missing |= pairs
                    retry.append(request)
                else:  # pragma: no cover - rows exist after stock_rows_create
                    outcomes[order_id] = ReservationOutcome(
                        order_id, error=errors.InsufficientStock([])
                    )
        busy_retries_left -= _before_retry(missing, wait)
        if existing:
            outcomes.update(_existing_outcomes(existing))
        if changes:
            # One after-commit publication: the availability cache writes the
            # rows and remembers the created orders (the gate's retry memory) in
            # one Redis call for the whole batch.
            publish_on_commit(CommittedChanges(changes, created_ids))
        if not retry:
            break
        # From the orders as they came: an order expanded with a remembered
        # bundle may name another, just read, that it was not expanded with.
        pending = [expand_order(originals[request.order_id], bundles) for request in retry]
    return [outcomes[r.order_id] for r in requests]


def _before_retry(missing: set[tuple[str, str]], wait: set) -> int:
    """What the orders tried again need first, holding no locks: their missing
    rows created, the closers they wait for done. 1 if it waited for closers."""
    if missing:
        stock_rows_create(missing)
    if wait:
        wait_for_closers(wait)
    return 1 if wait else 0


def _rows_to_create(
    detail: Sequence | None, bundles: dict[str, Bundle]
) -> tuple[set[tuple[str, str]], errors.InventoryError | None]:
    """A 'missing' order's rows to create (a bundle SKU is expanded instead), or
    the error when a SKU or warehouse is unknown."""
    pairs = {(sku, code) for sku, code in detail or () if sku not in bundles}
    try:
        if pairs:
            check_known(pairs)
    except errors.InventoryError as exc:
        return pairs, exc
    return pairs, None


def _lapsed_held_elsewhere(short_lines: Sequence[dict]) -> set:
    """For an order answered short: the orders of lapsed holds on its short rows
    that another transaction holds (`orders.lapsed_orders_elsewhere`)."""
    rows = Q()
    for line in short_lines:
        rows |= Q(inventory__product__sku=line["sku"], inventory__warehouse__code=line["warehouse"])
    return lapsed_orders_elsewhere(rows, clock.now()) if rows else set()


def _existing_outcomes(order_ids: Sequence[str]) -> dict[str, ReservationOutcome]:
    """Retried orders: their reservations, in one query."""
    return {
        reservation.order_id: ReservationOutcome(
            reservation.order_id, ReservationResult(reservation, created=False)
        )
        for reservation in Reservation.objects.filter(order_id__in=order_ids)
    }


def _is_stale(payload: dict) -> bool:
    """Whether the reserve function answered 'stale' (for every order): a bundle's
    composition differed from the one its lines were expanded with; nothing was done."""
    orders = payload["orders"]
    return bool(orders) and orders[0][0] == "stale"


def _expand_again(
    pending: Sequence[MergedOrder], originals: dict[str, MergedOrder], *, give_up: bool
) -> tuple[list[MergedOrder], dict[str, Bundle]]:
    """After a 'stale' answer: the compositions of every SKU of the orders read
    again (one query: bundles not remembered are found too, and SKUs no longer
    bundles forgotten) and the orders expanded from their lines as they came.
    `give_up`: a composition changed while this call read it, twice: a fight
    over the composition, 503 stock_busy, nothing applied."""
    if give_up:
        raise errors.StockBusy(
            "A bundle's composition changed twice while reserving; nothing was applied.",
            reason="bundle_composition_changed",
        )
    skus = {sku for r in pending for sku, _ in originals[r.order_id].merged}
    fresh = bundle_compositions(skus)
    return [expand_order(originals[r.order_id], fresh) for r in pending], fresh


def _bundles_among_missing(orders: Sequence[list], known: dict[str, Bundle]) -> dict[str, Bundle]:
    """The bundles among the SKUs the reserve function found no row for (one
    query, none when nothing was missing)."""
    skus = {
        sku
        for status, _, detail in orders
        if status == "missing"
        for sku, _ in detail or ()
        if sku not in known
    }
    return bundle_compositions(skus) if skus else {}


def changes_from_sql(
    rows: Sequence[list],
    txn_type: str,
    holds: dict[tuple[str, str], list[tuple[datetime, int]]] | None = None,
) -> tuple[CommittedChange, ...]:
    """The changed rows a stock function answered ([id, product, warehouse,
    on_hand, reserved, version, sku, code, unsellable]) as CommittedChanges to
    publish; with `holds` (per row), each change reports its hold changes (none
    when its row is not there), otherwise it reports none (unknown)."""
    return tuple(
        CommittedChange(
            inventory_id=uuid.UUID(c[0]),
            product_id=uuid.UUID(c[1]),
            warehouse_id=uuid.UUID(c[2]),
            type=txn_type,
            on_hand=c[3],
            reserved=c[4],
            version=c[5],
            sku=c[6],
            warehouse_code=c[7],
            holds=None if holds is None else tuple(holds.get((c[6], c[7]), ())),
            unsellable=c[8],
        )
        for c in rows
    )


ModelT = TypeVar("ModelT", bound=models.Model)

# Per model class: (attname, default factory) of every concrete field, as
# Model.__init__ reads them (`Field._get_default`), and the attname of each field.
_FIELD_DEFAULTS: dict[type, tuple[tuple[str, Any], ...]] = {}
_ATTNAMES: dict[tuple[type, str], str] = {}
_NONE: Mapping[str, models.Model | None] = MappingProxyType({})


def _loaded(
    model: type[ModelT], values: dict[str, Any], related: Mapping[str, models.Model | None] = _NONE
) -> ModelT:
    """A model instance built from a row a stock function wrote, marked as saved
    (Django treats it as loaded from the database): what `model(**values,
    **related)` builds — every field not in `values` at its default, each related
    instance cached under its field's name — without Model.__init__'s per-field
    machinery (building a one-line reservation's answer: 113-131 µs with it,
    61-65 without; issue #18). tests/services/test_loaded_instances.py checks
    both build the same."""
    defaults = _FIELD_DEFAULTS.get(model)
    if defaults is None:
        defaults = _FIELD_DEFAULTS[model] = tuple(
            (field.attname, field._get_default) for field in model._meta.concrete_fields
        )
    instance = model.__new__(model)
    state = instance._state = ModelState()
    state.adding = False
    state.db = "default"
    attrs = instance.__dict__
    for attname, default in defaults:
        if attname not in values:
            attrs[attname] = default()
    attrs.update(values)
    for name, other in related.items():
        attname = _ATTNAMES.get((model, name))
        if attname is None:
            attname = _ATTNAMES[(model, name)] = model._meta.get_field(name).attname
        attrs[attname] = None if other is None else other.pk
        state.fields_cache[name] = other
    return instance


class _CreatedBatch:
    """What one call of the reserve function answered, kept to build a created
    order's ReservationResult (model instances) only when someone asks for it."""

    def __init__(
        self, payload: dict, changes: tuple[CommittedChange, ...], actor: str, request_id: str
    ) -> None:
        self.payload = payload
        self.changes = changes
        self.actor = actor
        self.request_id = request_id
        self._at: datetime | None = None
        self._names: dict[tuple[uuid.UUID, uuid.UUID], tuple[str, str]] | None = None
        self._ledger: dict[str, list[list]] | None = None

    def _index(self) -> None:
        self._at = datetime.fromisoformat(self.payload["at"])
        self._names = {
            (c.product_id, c.warehouse_id): (c.sku, c.warehouse_code) for c in self.changes
        }
        self._ledger = {}
        for entry in self.payload["ledger"]:
            self._ledger.setdefault(entry[6], []).append(entry)

    def result(self, request: MergedOrder, reservation_id: str) -> ReservationResult:
        if self._ledger is None:
            self._index()
        at = self._at
        transactions = [
            _loaded(
                InventoryTransaction,
                {
                    "id": uuid.UUID(entry[0]),
                    "product_id": uuid.UUID(entry[1]),
                    "warehouse_id": uuid.UUID(entry[2]),
                    "type": TransactionType.RESERVE,
                    "on_hand_delta": 0,
                    "reserved_delta": entry[3],
                    "on_hand_after": entry[4],
                    "reserved_after": entry[5],
                    "reference_type": ReferenceType.ORDER,
                    "reference_id": entry[6],
                    "reason": entry[7],
                    "created_at": at,
                    "created_by": self.actor,
                    "request_id": self.request_id,
                },
            )
            for entry in self._ledger.get(request.order_id, [])
        ]
        reservation = _loaded(
            Reservation,
            {
                "id": uuid.UUID(reservation_id),
                "order_id": request.order_id,
                "status": ReservationStatus.ACTIVE,
                "expires_at": request.expires_at,
                "request_fingerprint": request.fingerprint,
                "created_by": self.actor,
                "created_at": at,
                "updated_at": at,
            },
        )
        _attach_new_lines(reservation, transactions, self._names, request.bundle_ids)
        return ReservationResult(reservation, created=True, transactions=transactions)


def _attach_new_lines(
    reservation: Reservation,
    transactions: Sequence[InventoryTransaction],
    names: dict[tuple[uuid.UUID, uuid.UUID], tuple[str, str]],
    bundle_ids: dict[str, object],
) -> None:
    """Give a just-created reservation its lines (from its RESERVE ledger rows, one
    per line; a bundle's component line names its bundle in the reason), as if
    prefetched: `reservation.lines.all()` then needs no query."""
    lines = []
    for txn in transactions:
        sku, code = names[(txn.product_id, txn.warehouse_id)]
        bundle_sku = (
            txn.reason[len(BUNDLE_REASON_PREFIX) :]
            if txn.reason.startswith(BUNDLE_REASON_PREFIX)
            else None
        )
        line = _loaded(
            ReservationLine,
            {"quantity": txn.reserved_delta},
            {
                "reservation": reservation,
                "product": _loaded(Product, {"id": txn.product_id, "sku": sku}),
                "warehouse": _loaded(Warehouse, {"id": txn.warehouse_id, "code": code}),
                "bundle": (
                    _loaded(
                        Product,
                        {"id": bundle_ids[bundle_sku], "sku": bundle_sku, "is_bundle": True},
                    )
                    if bundle_sku
                    else None
                ),
            },
        )
        lines.append(line)
    reservation._prefetched_objects_cache = {"lines": lines}


def close_in_database(
    order_id: str,
    txn_type: str,
    closing_status: str,
    actor: str,
    reason: str,
    placed_by: str | None,
    *,
    now: datetime,
) -> ReservationResult:
    """A whole order's release or fulfilment in one statement
    (`stockroom_close_order`, migrations 0008-0011); the same result as the ORM path.

    A hold past its `expires_at` at `now` is expired by the same statement (as the
    sweeper would) and answered 'lapsed'; an order with nothing open 'closed'.
    Both raise OrderClosed (the expiry is committed by then, unless the caller's
    own transaction rolls it back)."""
    request_id = current_request_id()
    payload = call_stock_function(
        "SELECT stockroom_close_order(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            order_id,
            txn_type,
            closing_status,
            actor,
            reason,
            request_id,
            placed_by,
            now,
            SYSTEM_SWEEPER,
            EXPIRY_REASON,
        ],
    )
    if payload["status"] == "not_found":
        raise errors.ReservationNotFound(details={"order_id": order_id})
    if payload["status"] == "short":
        raise errors.InsufficientOnHand(payload["short"])
    if payload["status"] == "closed":
        raise errors.OrderClosed(order_id, payload["order_status"])
    if payload["status"] == "lapsed":
        changes = changes_from_sql(payload["changes"], TransactionType.RELEASE)
        if changes:
            publish_on_commit(changes)
        raise errors.OrderClosed(order_id, payload["reservation"][1])
    at = datetime.fromisoformat(payload["at"])
    (
        res_id,
        status,
        expires_at,
        fingerprint,
        created_by,
        created_at,
        updated_at,
        confirmed_at,
    ) = payload["reservation"]
    reservation = _loaded(
        Reservation,
        {
            "id": uuid.UUID(res_id),
            "order_id": order_id,
            "status": status,
            "expires_at": datetime.fromisoformat(expires_at) if expires_at else None,
            "confirmed_at": datetime.fromisoformat(confirmed_at) if confirmed_at else None,
            "request_fingerprint": fingerprint,
            "created_by": created_by,
            "created_at": datetime.fromisoformat(created_at),
            "updated_at": datetime.fromisoformat(updated_at),
        },
    )
    lines = []
    for (
        line_id,
        product_id,
        warehouse_id,
        sku,
        code,
        qty,
        fulfilled,
        released,
        line_status,
        bundle_id,
        bundle_sku,
    ) in payload["lines"]:
        line = _loaded(
            ReservationLine,
            {
                "id": uuid.UUID(line_id),
                "quantity": qty,
                "quantity_fulfilled": fulfilled,
                "quantity_released": released,
                "status": line_status,
            },
            {
                "reservation": reservation,
                "product": _loaded(Product, {"id": uuid.UUID(product_id), "sku": sku}),
                "warehouse": _loaded(Warehouse, {"id": uuid.UUID(warehouse_id), "code": code}),
                "bundle": (
                    _loaded(
                        Product, {"id": uuid.UUID(bundle_id), "sku": bundle_sku, "is_bundle": True}
                    )
                    if bundle_id
                    else None
                ),
            },
        )
        lines.append(line)
    reservation._prefetched_objects_cache = {"lines": lines}
    transactions = []
    for (
        txn_id,
        product_id,
        warehouse_id,
        on_hand_delta,
        reserved_delta,
        on_hand,
        reserved,
        row_reason,
    ) in payload["ledger"]:
        txn = _loaded(
            InventoryTransaction,
            {
                "id": uuid.UUID(txn_id),
                "product_id": uuid.UUID(product_id),
                "warehouse_id": uuid.UUID(warehouse_id),
                "type": txn_type,
                "on_hand_delta": on_hand_delta,
                "reserved_delta": reserved_delta,
                "on_hand_after": on_hand,
                "reserved_after": reserved,
                "reference_type": ReferenceType.ORDER,
                "reference_id": order_id,
                "reason": row_reason,
                "created_at": at,
                "created_by": actor,
                "request_id": request_id,
            },
        )
        transactions.append(txn)
    changes = changes_from_sql(payload["changes"], txn_type)
    if changes:
        publish_on_commit(changes)
    return ReservationResult(reservation, created=False, transactions=transactions)
