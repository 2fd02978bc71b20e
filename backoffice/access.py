"""Which warehouses a staff user may change stock in (`StaffWarehouse`).

`warehouse_codes_for(user)` is None for "every warehouse" (superusers, and
users assigned to none), else the set of codes. The back-office forms offer
only those warehouses; `require_warehouses` refuses (403) anything else, for
requests that name a warehouse some other way (a signed preview, a purchase
order). Reads are not limited.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet

from .models import StaffWarehouse


def warehouse_codes_for(user) -> frozenset[str] | None:
    if user.is_superuser:
        return None
    cached = getattr(user, "_stockroom_warehouse_codes", False)
    if cached is not False:
        return cached
    codes = frozenset(
        StaffWarehouse.objects.filter(user_id=user.pk).values_list("warehouse__code", flat=True)
    )
    user._stockroom_warehouse_codes = codes or None
    return user._stockroom_warehouse_codes


def limit_warehouses(queryset: QuerySet, user) -> QuerySet:
    """`queryset` of warehouses narrowed to those `user` works at."""
    codes = warehouse_codes_for(user)
    return queryset if codes is None else queryset.filter(code__in=codes)


def may_act_in(user, code: str) -> bool:
    codes = warehouse_codes_for(user)
    return codes is None or code in codes


def require_warehouses(user, *codes: str) -> None:
    """PermissionDenied unless `user` works at every one of `codes`."""
    if not all(may_act_in(user, code) for code in codes):
        raise PermissionDenied("You do not work at this warehouse.")
