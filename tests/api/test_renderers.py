"""api.renderers builds the hot paths' answers without DRF; the output
serializers stay the schema. Each rendered answer must be exactly what its
serializer writes for the same values (shape, field order, datetime format,
error body), for every kind of outcome. (availability_data and reservation_data:
tests/api/test_availability.py and tests/api/test_reservations.py.)"""

from datetime import timedelta

import pytest

from api.renderers import batch_result, confirm_result
from api.views.reservations import BatchResultOutput, ConfirmResultOutput
from inventory import clock, services

pytestmark = pytest.mark.django_db

ACTOR = "test:renderers"


def batch(*orders):
    return services.stock_reserve_batch(orders=list(orders), actor=ACTOR)


def order(order_id, quantity=1, expires_at=None):
    return services.OrderRequest(
        order_id, [services.ReserveLine("TSHIRT-M", "BER", quantity)], expires_at
    )


def test_every_batch_result_equals_the_documented_serializer(stocked):
    later = clock.now() + timedelta(minutes=15)
    batch(order("again", expires_at=later))
    outcomes = batch(
        order("new", expires_at=later),  # created, with a hold
        order("forever"),  # created, no hold
        order("again", expires_at=later),  # exists
        order("too-many", quantity=1000),  # error: insufficient stock
    )
    rendered = [batch_result(outcome) for outcome in outcomes]
    assert [r["outcome"] for r in rendered] == ["created", "created", "exists", "error"]
    for outcome, answer in zip(outcomes, rendered, strict=True):
        # The serializer gets the plain values (a datetime, the error's body)...
        values = {**answer, "expires_at": outcome.expires_at if outcome.error is None else None}
        # ...and writes exactly what the renderer wrote.
        assert answer == BatchResultOutput(values).data


def test_every_confirm_result_equals_the_documented_serializer(stocked):
    batch(order("pay"), order("extend", expires_at=clock.now() + timedelta(minutes=15)))
    batch(order("gone"))
    services.reservation_release(order_id="gone", actor=ACTOR)
    outcomes = services.reservations_confirm_batch(
        orders=[
            services.ConfirmRequest("pay"),  # confirmed for good
            services.ConfirmRequest("extend", expires_in=600),  # extended
            services.ConfirmRequest("gone"),  # error: order_closed (status released)
            services.ConfirmRequest("nobody"),  # error: not_found
        ],
        actor=ACTOR,
    )
    rendered = [confirm_result(outcome) for outcome in outcomes]
    assert [r["outcome"] for r in rendered] == ["confirmed", "confirmed", "error", "error"]
    assert [r["error"] and r["error"]["code"] for r in rendered] == [
        None,
        None,
        "order_closed",
        "not_found",
    ]
    for outcome, answer in zip(outcomes, rendered, strict=True):
        held = outcome.reservation
        values = {
            **answer,
            "expires_at": held.expires_at if held else None,
            "confirmed_at": held.confirmed_at if held else None,
        }
        assert answer == ConfirmResultOutput(values).data
