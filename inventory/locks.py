"""Row locks for stock changes, in one place so the deadlock rule can be checked here.

The rule: one global order. Every transaction that changes stock takes its locks
in this order, each step optional, never going back to an earlier step:

  key. the idempotency key of the operation (`lock_idempotency_key`, taken by
     `services.idempotency.run_idempotent` before its body touches a row): a
     concurrent duplicate waits here, then replays its twin, instead of waiting on
     the twin's stock rows and running its own body against the stock the twin
     left. Only a duplicate of the same operation contends for a key, and it takes
     the same steps in the same order. An operation that books several keyed
     changes in one transaction (a purchase-order receipt: each line's
     `stock_receive`; the back office's receive page) takes them after its own
     first locks (the PO row; the page's inventory rows): those keys name that
     operation alone, and its duplicates queue on its first lock, so nothing can
     hold such a key while waiting for what the holder has. Bulk receive takes no
     key lock (it inserts the keys after locking its rows; the keys' unique index
     has the last word), so it never waits for one either;
  0. the purchase order it books a delivery against (receipts of one PO are
     serialised; `purchasing.services`), or the two-step transfer it receives
     (`lock_transfer`: receipts of one transfer are serialised;
     `services.transfers`);
  1. products, by primary key: FOR SHARE to create missing inventory rows
     (`services.stock_rows_create`, the one way rows are born; the allowance comes
     from the product under this lock), or the product UPDATE of a stock-policy
     change (`product_set_stock_policy`), which conflicts with FOR SHARE;
     bundle products FOR SHARE by a reservation naming bundles (`lock_bundles`;
     the SQL engine's step 0), before its Reservation row, so the composition it
     expanded with cannot change until it commits; a composition change
     (`bundle_set_components`) takes its bundle's row FOR UPDATE as its first and
     only contested lock (what it writes after, BundleComponent rows, no
     reservation or stock path locks), so the two queue on one row, never cycle;
  2. at most one Reservation row (the order it acts on);
  3. inventory rows, all in one statement, ordered by primary key
     (`lock_inventory_rows`; bulk work: `ORDER BY id FOR NO KEY UPDATE` per chunk).

Consequences: rows are created before any inventory row is locked (a transaction
holding inventory locks that finds a row missing rolls back and creates it first,
`services.rows.in_transaction`; a purchase-order receipt and a cycle count create all
their rows up front); two transactions always acquire overlapping locks in the
same order and cannot deadlock, whatever order an order's lines, a delivery's or
a count's SKUs arrive in. A deadlock or serialization failure that happens all
the same (a path outside this rule, the database's own choices) is retried by
`services.retry_busy` and never reaches a user as anything but 503 `stock_busy`.
`FOR NO KEY UPDATE` is enough (we never change keys) and does not block the
foreign-key share locks that ledger and reservation-line inserts take.
"""

import hashlib
from collections.abc import Iterable
from functools import reduce
from operator import or_

from django.db import connection
from django.db.models import Q

from .models import Inventory, Reservation, Transfer


def lock_idempotency_key(key: str) -> None:
    """Hold an operation's idempotency key until the transaction ends (step "key").

    A transaction-scoped advisory lock on 64 bits of the key's sha256 (the
    single-bigint key space: the webhook lanes' two-integer locks never collide
    with it). Two operations under one key queue here; two keys that share the 64
    bits (never, in practice) would only queue one after the other. On SQLite
    (one writer at a time) there is nothing to lock."""
    if connection.vendor != "postgresql":
        return
    number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [number])


def lock_bundles(ids: Iterable[object]) -> None:
    """Lock bundles' product rows FOR SHARE, in primary-key order (step 1): a
    composition change (FOR UPDATE of the bundle) waits for this transaction, and
    one that committed before is seen by what this transaction reads next. On
    SQLite (one writer at a time) there is nothing to lock."""
    ids = sorted(set(ids), key=str)
    if not ids or connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM inventory_product WHERE id = ANY(%s::uuid[]) ORDER BY id FOR SHARE",
            [[str(i) for i in ids]],
        )


def lock_inventory_rows(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Inventory]:
    """Lock the inventory rows for (sku, warehouse code) pairs, in primary-key order.

    Returns the locked rows keyed by (sku, code); pairs without a row are absent.
    """
    pairs = sorted(set(pairs))
    if not pairs:
        return {}
    condition = reduce(or_, (Q(product__sku=sku, warehouse__code=code) for sku, code in pairs))
    rows = (
        Inventory.objects.select_for_update(no_key=True, of=("self",))
        .select_related("product", "warehouse")
        .filter(condition)
        .order_by("pk")
    )
    return {(row.product.sku, row.warehouse.code): row for row in rows}


def lock_reservation(order_id: str, placed_by: str | None = None) -> Reservation | None:
    """Lock one order's reservation row (serialises release/fulfil of the same order).
    With `placed_by`, only if that actor placed the order."""
    found = Reservation.objects.select_for_update(no_key=True, of=("self",)).filter(
        order_id=order_id
    )
    if placed_by is not None:
        found = found.filter(created_by=placed_by)
    return found.first()


def lock_transfer(transfer_id: str) -> Transfer | None:
    """Lock one two-step transfer's row (step 0: receipts of the same transfer wait)."""
    return (
        Transfer.objects.select_for_update(no_key=True, of=("self",))
        .select_related("source", "destination")
        .filter(transfer_id=transfer_id)
        .first()
    )
