"""Row locks for stock changes, in one place so the deadlock rule can be checked here.

The rule: every transaction that changes stock locks
  1. at most one Reservation row (the order it acts on), then
  2. inventory rows, all in one statement, ordered by primary key.
Two transactions therefore always acquire overlapping inventory locks in the
same order and cannot deadlock, whatever order an order's lines arrive in.
`FOR NO KEY UPDATE` is enough (we never change keys) and does not block the
foreign-key share locks that ledger and reservation-line inserts take.
"""

from collections.abc import Iterable
from functools import reduce
from operator import or_

from django.db.models import Q

from .models import Inventory, Reservation


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
