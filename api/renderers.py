"""The fast path's hand-built answers: serializers define the schema, the fast
path renders it.

The output serializers in api/views/ (AvailabilityOutput, ReservationOutput,
BatchResultOutput, ConfirmResultOutput) are what the OpenAPI schema documents;
building their representation through DRF costs more CPU than the database or
Redis work behind a hot call, so the views answer with the plain dicts built
here. Each function returns exactly what its serializer would write; the tests
that check they agree are tests/api/test_renderers.py (every renderer against its
serializer), tests/api/test_availability.py::
test_answers_are_built_exactly_as_the_documented_serializer_writes_them and
tests/api/test_reservations.py::
test_the_direct_representation_equals_the_documented_serializer. Change a
serializer and its renderer together.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from inventory import selectors, services


class _DefaultZoneDateTimeField(serializers.DateTimeField):
    """DRF's DateTimeField writing in the default time zone (settings.TIME_ZONE)
    instead of asking for the current one: nothing in the project activates
    another zone, so both are the same, and DRF's question goes through
    asgiref's thread-local (an attribute lookup that fails and is caught), most
    of the CPU of rendering a reservation (issue #18). The serializers it is
    checked against keep DRF's own field."""

    def default_timezone(self):
        return timezone.get_default_timezone() if settings.USE_TZ else None


_DATETIME = _DefaultZoneDateTimeField()


def _when(value):
    """A datetime as the API writes it (DRF's DateTimeField), or None."""
    return _DATETIME.to_representation(value) if value else None


def availability_data(found: selectors.SkuAvailability) -> dict:
    """AvailabilityOutput's representation, built directly: for a 100-SKU answer
    the nested serializers cost ~10 ms of CPU, more than the Redis read.
    tests/api/test_availability.py checks it equals the serializer's output."""
    ships = found.ships_in_days
    return {
        "sku": found.sku,
        "available": found.available,
        "status": found.status,
        "warehouses": [{"code": w.code, "available": w.available} for w in found.warehouses],
        "ships_in_days": {"min": ships["min"], "max": ships["max"]} if ships else None,
    }


def reservation_data(reservation) -> dict:
    """ReservationOutput's representation, built directly: serializer instances
    (with their fields deep-copied per call) cost more CPU than the reservation's
    own database statement. tests/api/test_reservations.py checks it equals the
    serializer's output."""
    return {
        "order_id": reservation.order_id,
        "status": reservation.status,
        "lines": [_reservation_line(line) for line in reservation.lines.all()],
        "expires_at": _when(reservation.expires_at),
        "confirmed_at": _when(reservation.confirmed_at),
        "created_at": _DATETIME.to_representation(reservation.created_at),
    }


def _reservation_line(line) -> dict:
    data = {
        "sku": line.product.sku,
        "warehouse": line.warehouse.code,
        "quantity": line.quantity,
        "quantity_fulfilled": line.quantity_fulfilled,
        "quantity_released": line.quantity_released,
        "status": line.status,
    }
    if line.bundle_id is not None:  # a bundle's component line (issue #16)
        data["bundle"] = line.bundle.sku
    return data


def batch_result(outcome: services.ReservationOutcome) -> dict:
    """One BatchResultOutput, built directly: at hundreds of results per call a
    serializer per result costs more than the reservation itself."""
    if outcome.error is not None:
        return {
            "order_id": outcome.order_id,
            "outcome": "error",
            "status_code": outcome.error.http_status,
            "status": None,
            "expires_at": None,
            "error": outcome.error.as_dict(),
        }
    return {
        "order_id": outcome.order_id,
        "outcome": "created" if outcome.created else "exists",
        "status_code": 201 if outcome.created else 200,
        "status": outcome.status,
        "expires_at": _when(outcome.expires_at),
        "error": None,
    }


def confirm_result(outcome: services.ConfirmOutcome) -> dict:
    """One ConfirmResultOutput, built directly (as batch_result)."""
    if outcome.error is not None:
        return {
            "order_id": outcome.order_id,
            "outcome": "error",
            "status_code": outcome.error.http_status,
            "status": outcome.error.details.get("status"),
            "expires_at": None,
            "confirmed_at": None,
            "error": outcome.error.as_dict(),
        }
    reservation = outcome.reservation
    return {
        "order_id": outcome.order_id,
        "outcome": "confirmed",
        "status_code": 200,
        "status": reservation.status,
        "expires_at": _when(reservation.expires_at),
        "confirmed_at": _when(reservation.confirmed_at),
        "error": None,
    }
