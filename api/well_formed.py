"""A fast path for well-formed reservation bodies (single and batch).

DRF's nested serializers cost about 0.1 ms per order (a 500-order batch spent
more time being validated than being reserved; a single reservation spent more
CPU building serializer fields than waiting for its database statement).
`well_formed_batch` and `well_formed_order` check the same rules as the views'
input serializers in plain Python and return the data when the body passes them
all; for anything else they return None and the view runs the serializer, which
produces the error answer. They only ever accept a subset of what the
serializer accepts, with the same values (tests/api/test_well_formed.py checks
that against the serializers with generated bodies), so the error messages have
one source: the serializers.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings

from inventory import services

from .fields import SKU_REGEX, WAREHOUSE_REGEX

_SKU = re.compile(SKU_REGEX.rstrip("$").lstrip("^"))
_WAREHOUSE = re.compile(WAREHOUSE_REGEX.rstrip("$").lstrip("^"))
_ORDER_KEYS = frozenset({"order_id", "lines", "expires_in"})
_LINE_KEYS = frozenset({"sku", "quantity", "warehouse"})
_SINGLE_KEYS = frozenset({"order_id", "lines", "expires_in", "ship_to"})
MAX_EXPIRES_IN = services.MAX_HOLD_SECONDS  # the longest hold, as the serializers allow


def _text(value: Any, pattern: re.Pattern | None, max_length: int) -> bool:
    # DRF's CharField trims whitespace and refuses NUL and surrogates: accept only
    # strings it would keep exactly as they are.
    return (
        type(value) is str
        and 0 < len(value) <= max_length
        and (
            pattern.fullmatch(value) is not None
            if pattern is not None
            else (value.isprintable() and value.strip() == value)
        )
    )


def _whole(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def well_formed_batch(data: Any) -> list[dict] | None:
    """The orders of a valid batch body, as the serializer would return them, or
    None when any rule might fail (then validate with the serializer)."""
    if type(data) is not dict or data.keys() != {"orders"}:
        return None
    orders = data["orders"]
    if type(orders) is not list or not 0 < len(orders) <= settings.STOCKROOM_MAX_BATCH_ORDERS:
        return None
    seen: set[str] = set()
    for order in orders:
        if type(order) is not dict or not order.keys() <= _ORDER_KEYS:
            return None
        order_id = order.get("order_id")
        if not _text(order_id, None, 100) or order_id in seen:
            return None
        seen.add(order_id)
        if "expires_in" in order and not _whole(order["expires_in"], 1, MAX_EXPIRES_IN):
            return None
        if not _well_formed_lines(order.get("lines"), warehouse_required=True):
            return None
    return orders


def _well_formed_lines(lines: Any, *, warehouse_required: bool) -> bool:
    if type(lines) is not list or not 0 < len(lines) <= settings.STOCKROOM_MAX_ORDER_LINES:
        return False
    max_quantity = settings.STOCKROOM_MAX_QUANTITY
    for line in lines:
        if type(line) is not dict:
            return False
        keys = line.keys()
        if keys != _LINE_KEYS and (warehouse_required or keys != {"sku", "quantity"}):
            return False
        if (
            not _text(line["sku"], _SKU, 64)
            or not _whole(line["quantity"], 1, max_quantity)
            or ("warehouse" in line and not _text(line["warehouse"], _WAREHOUSE, 32))
        ):
            return False
    return True


def _coordinate(value: Any, limit: float) -> bool:
    return type(value) in (int, float) and -limit <= value <= limit and value == value


def well_formed_order(data: Any) -> dict | None:
    """A valid POST /reservations/ body as the serializer would return it, or None."""
    if type(data) is not dict or not data.keys() <= _SINGLE_KEYS:
        return None
    order_id = data.get("order_id")
    if not _text(order_id, None, 100):
        return None
    if "expires_in" in data and not _whole(data["expires_in"], 1, MAX_EXPIRES_IN):
        return None
    if not _well_formed_lines(data.get("lines"), warehouse_required=False):
        return None
    if "ship_to" not in data:
        return data
    ship_to = data["ship_to"]
    if (
        type(ship_to) is not dict
        or ship_to.keys() != {"latitude", "longitude"}
        or not _coordinate(ship_to["latitude"], 90)
        or not _coordinate(ship_to["longitude"], 180)
    ):
        return None
    return {
        **data,
        "ship_to": {
            "latitude": float(ship_to["latitude"]),
            "longitude": float(ship_to["longitude"]),
        },
    }
