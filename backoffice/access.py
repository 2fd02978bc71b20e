"""Which warehouses a staff user may change stock in: the one source of that rule.

The rule fails closed:

* a superuser, or a user holding `backoffice.act_in_all_warehouses` (directly
  or through a group; `setup_roles` gives it to Inventory managers), acts in
  every warehouse, whatever their assignments;
* anyone else acts only in the warehouses they work at (`StaffWarehouse`,
  *Users → Works at*); with no assignment, in **no** warehouse. Removing a
  user's last assignment, or deleting the warehouse (the assignment goes with
  it), therefore narrows their access, never widens it.

`warehouse_codes_for(user)` is None for "every warehouse", else the (possibly
empty) set of codes. The back-office forms offer only those warehouses;
`require_warehouses` refuses (403) anything else, for requests that name a
warehouse some other way (a signed preview, a purchase order). Reads are not
limited.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet

from .models import ALL_WAREHOUSES, StaffWarehouse

NO_WAREHOUSE_MESSAGE = (
    "You work at no warehouse, so you cannot change stock anywhere. Ask an inventory "
    "manager to add your warehouse under Users → (you) → Works at."
)
ALL_WAREHOUSES_NEEDED_MESSAGE = (
    "Only users who may act in all warehouses can use this page (a file may name any "
    "warehouse). Use Receive stock or the purchase order for your own warehouses."
)


def acts_in_all_warehouses(user) -> bool:
    """Superusers and holders of `backoffice.act_in_all_warehouses`."""
    return bool(user.is_superuser or user.has_perm(ALL_WAREHOUSES))


def warehouse_codes_for(user) -> frozenset[str] | None:
    """None: every warehouse. Else the codes `user` works at, empty for none."""
    cached = getattr(user, "_stockroom_warehouse_codes", False)
    if cached is not False:
        return cached
    if acts_in_all_warehouses(user):
        codes = None
    else:
        codes = frozenset(
            StaffWarehouse.objects.filter(user_id=user.pk).values_list("warehouse__code", flat=True)
        )
    user._stockroom_warehouse_codes = codes
    return codes


def works_nowhere(user) -> bool:
    """True for a user who may change stock in no warehouse at all."""
    return warehouse_codes_for(user) == frozenset()


def limit_warehouses(queryset: QuerySet, user) -> QuerySet:
    """`queryset` of warehouses narrowed to those `user` may act in (maybe none)."""
    codes = warehouse_codes_for(user)
    return queryset if codes is None else queryset.filter(code__in=codes)


def may_act_in(user, code: str) -> bool:
    codes = warehouse_codes_for(user)
    return codes is None or code in codes


def require_warehouses(user, *codes: str) -> None:
    """PermissionDenied unless `user` may act in every one of `codes`."""
    if works_nowhere(user):
        raise PermissionDenied(NO_WAREHOUSE_MESSAGE)
    if not all(may_act_in(user, code) for code in codes):
        raise PermissionDenied("You do not work at this warehouse.")


def require_all_warehouses(user) -> None:
    """PermissionDenied unless `user` acts in every warehouse (CSV bulk receive)."""
    if not acts_in_all_warehouses(user):
        raise PermissionDenied(ALL_WAREHOUSES_NEEDED_MESSAGE)
