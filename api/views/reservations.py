"""Reservations: create (routed), batch, read, release, fulfil, confirm (or
extend) and batch confirm.

Each view validates its input, calls one service (or the router) and answers
with ReservationOutput / the batch outputs, rendered by api.renderers.

The longest views module (~560 lines), kept whole: seven operations on one
resource sharing its serializers, and a quarter of the lines are their OpenAPI
descriptions and examples.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.urls import path
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from inventory import clock, routing, selectors, services

from .. import schema
from ..fields import (
    OrderIdField,
    QuantityField,
    SkuField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
    WarehouseCodeField,
)
from ..models import Scope
from ..renderers import batch_result, confirm_result, reservation_data
from ..well_formed import well_formed_batch, well_formed_order
from .base import ApiView, refuse_oversized, with_idempotency_key


class ReservationLineOutput(serializers.Serializer):
    sku = serializers.CharField(source="product.sku")
    warehouse = serializers.CharField(source="warehouse.code")
    quantity = serializers.IntegerField()
    quantity_fulfilled = serializers.IntegerField()
    quantity_released = serializers.IntegerField()
    status = serializers.CharField()
    bundle = serializers.CharField(
        source="bundle.sku",
        required=False,
        help_text="Only on a component's line reserved for an order line of a bundle: the "
        "bundle's SKU (release and fulfil such lines by the bundle SKU, in bundle units).",
    )

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if data.get("bundle") is None:
            data.pop("bundle", None)  # a plain line has no `bundle` key
        return data


class ReservationOutput(serializers.Serializer):
    order_id = serializers.CharField()
    status = serializers.CharField()
    lines = ReservationLineOutput(many=True, source="lines.all")
    expires_at = serializers.DateTimeField(
        allow_null=True, help_text="When the hold lapses; null: it never lapses."
    )
    confirmed_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When the hold was last confirmed or extended (POST .../confirm/); "
        "null if never.",
    )
    created_at = serializers.DateTimeField()


class OrderLineInput(StrictSerializer):
    sku = SkuField()
    quantity = QuantityField()
    warehouse = WarehouseCodeField(required=False)


def _reservation_response(reservation, created: bool = False) -> Response:
    # A reservation the service just created carries its lines; otherwise reload.
    if not getattr(reservation, "_prefetched_objects_cache", {}).get("lines"):
        reservation = selectors.reservation_get(order_id=reservation.order_id)
    return Response(
        reservation_data(reservation),
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


class ReservationCreateView(ApiView):
    write_scopes = (Scope.STOREFRONT,)

    class InputSerializer(StrictSerializer):
        class ShipTo(StrictSerializer):
            latitude = StrictFloatField(min_value=-90, max_value=90)
            longitude = StrictFloatField(min_value=-180, max_value=180)

        order_id = OrderIdField()
        lines = OrderLineInput(
            many=True, allow_empty=False, max_length=settings.STOCKROOM_MAX_ORDER_LINES
        )
        ship_to = ShipTo(required=False)
        expires_in = StrictIntegerField(
            required=False, min_value=1, max_value=services.MAX_HOLD_SECONDS, help_text="Seconds."
        )

    @extend_schema(
        operation_id="reservations_create",
        request=InputSerializer,
        examples=[
            OpenApiExample(
                "Routed order with a checkout hold",
                request_only=True,
                value={
                    "order_id": "ORD-1001",
                    "lines": [
                        {"sku": "DEMO-000000", "quantity": 2},
                        {"sku": "DEMO-000000", "quantity": 1, "warehouse": "BER"},
                    ],
                    "ship_to": {"latitude": 52.37, "longitude": 9.73},
                    "expires_in": 900,
                },
            )
        ],
        responses={
            201: OpenApiResponse(ReservationOutput, description="Reserved."),
            200: OpenApiResponse(
                ReservationOutput,
                description="This order id was already reserved with the "
                "same lines: the existing reservation (nothing reserved twice).",
            ),
            **schema.errors(*schema.WRITE, 409, 503),
        },
    )
    def post(self, request):
        data = well_formed_order(request.data)
        if data is None:  # the serializer answers with the errors
            data = self.validated(self.InputSerializer, request.data)
        ship_to = data.get("ship_to")
        result = routing.reserve_order(
            order_id=data["order_id"],
            lines=[
                routing.RequestedLine(line["sku"], line["quantity"], line.get("warehouse"))
                for line in data["lines"]
            ],
            actor=self.actor,
            ship_to=routing.Coordinates(**ship_to) if ship_to else None,
            expires_at=(
                clock.now() + timedelta(seconds=data["expires_in"])
                if "expires_in" in data
                else None
            ),
        )
        return _reservation_response(result.reservation, created=result.created)


class BatchOrderLineInput(StrictSerializer):
    sku = SkuField()
    quantity = QuantityField()
    warehouse = WarehouseCodeField(help_text="Required in a batch: batches are not routed.")


class BatchResultOutput(serializers.Serializer):
    order_id = serializers.CharField()
    outcome = serializers.ChoiceField(
        choices=["created", "exists", "error"],
        help_text="created: reserved now; exists: this order id already held these lines "
        "(nothing reserved twice); error: nothing reserved for this order, see `error`.",
    )
    status_code = serializers.IntegerField(
        help_text="What POST /reservations/ answers for this order alone: 201, 200, or the "
        "error's status (409, 400)."
    )
    status = serializers.CharField(
        allow_null=True, help_text="The reservation's status (active, released, ...)."
    )
    expires_at = serializers.DateTimeField(allow_null=True)
    error = schema.ErrorDetailSerializer(allow_null=True)


class OrdersBatchInput(StrictSerializer):
    # The rules of every batch of orders (reserve, confirm); a subclass declares
    # `orders`. (No docstring: the schema would show it for each subclass.)

    def to_internal_value(self, data):
        refuse_oversized(data, "orders", settings.STOCKROOM_MAX_BATCH_ORDERS)
        return super().to_internal_value(data)

    def validate_orders(self, orders):
        seen, repeated = set(), set()
        for order in orders:
            if order["order_id"] in seen:
                repeated.add(order["order_id"])
            seen.add(order["order_id"])
        if repeated:
            raise serializers.ValidationError(
                f"Each order id once per batch; repeated: {', '.join(sorted(repeated))}."
            )
        return orders


class ReservationBatchView(ApiView):
    """Many orders in one request and one database statement (order-management systems).

    Each order is all-or-nothing on its own and idempotent by order id; the
    answer lists one result per order, in request order. Lines must name their
    warehouse: routing reads a snapshot per order, which would cost the batch
    its single round trip; route with POST /reservations/ instead.
    """

    read_scopes = (Scope.STOREFRONT, Scope.OPERATIONS)
    write_scopes = (Scope.STOREFRONT,)

    class InputSerializer(OrdersBatchInput):
        class Order(StrictSerializer):
            order_id = OrderIdField()
            lines = BatchOrderLineInput(
                many=True, allow_empty=False, max_length=settings.STOCKROOM_MAX_ORDER_LINES
            )
            expires_in = StrictIntegerField(
                required=False,
                min_value=1,
                max_value=services.MAX_HOLD_SECONDS,
                help_text="Seconds.",
            )

        # max_length states the bound in the schema; refuse_oversized checks it first.
        orders = Order(many=True, allow_empty=False, max_length=settings.STOCKROOM_MAX_BATCH_ORDERS)

    class OutputSerializer(serializers.Serializer):
        results = BatchResultOutput(many=True)
        created = serializers.IntegerField()
        exists = serializers.IntegerField()
        failed = serializers.IntegerField()

    @extend_schema(
        operation_id="reservations_batch",
        request=InputSerializer,
        description=(
            f"Reserve up to {settings.STOCKROOM_MAX_BATCH_ORDERS} orders "
            "(`STOCKROOM_MAX_BATCH_ORDERS`) in one call. Each order is all-or-nothing on "
            "its own; one result per order, in request order. Idempotent by order id: "
            "resend the whole batch after a lost answer. Every line names its warehouse. "
            "Invalid input anywhere refuses the whole batch (400, nothing reserved); a "
            "503 `stock_busy` means nothing of the batch was reserved: resend it."
        ),
        examples=[
            OpenApiExample(
                "Two orders",
                request_only=True,
                value={
                    "orders": [
                        {
                            "order_id": "ORD-2001",
                            "lines": [{"sku": "DEMO-000000", "quantity": 2, "warehouse": "BER"}],
                            "expires_in": 900,
                        },
                        {
                            "order_id": "ORD-2002",
                            "lines": [{"sku": "DEMO-000002", "quantity": 1, "warehouse": "HAM"}],
                        },
                    ]
                },
            )
        ],
        responses={
            200: OpenApiResponse(OutputSerializer, description="One result per order."),
            **schema.errors(*schema.WRITE, 503),
        },
    )
    def post(self, request):
        orders = well_formed_batch(request.data)
        if orders is None:  # the serializer answers with the errors
            orders = self.validated(self.InputSerializer, request.data)["orders"]
        now = clock.now()
        outcomes = services.stock_reserve_batch(
            orders=[
                services.OrderRequest(
                    order_id=order["order_id"],
                    lines=[
                        services.ReserveLine(line["sku"], line["warehouse"], line["quantity"])
                        for line in order["lines"]
                    ],
                    expires_at=(
                        now + timedelta(seconds=order["expires_in"])
                        if "expires_in" in order
                        else None
                    ),
                )
                for order in orders
            ],
            actor=self.actor,
        )
        results = [batch_result(outcome) for outcome in outcomes]
        return Response(
            {
                "results": results,
                "created": sum(r["outcome"] == "created" for r in results),
                "exists": sum(r["outcome"] == "exists" for r in results),
                "failed": sum(r["outcome"] == "error" for r in results),
            }
        )

    @extend_schema(
        operation_id="reservations_retrieve_batch",
        description="The order whose id is `batch` (this path shadows "
        "GET /reservations/{order_id}/ for that one id; OPTIONS lists GET here for it).",
        responses={200: ReservationOutput, **schema.errors(*schema.COMMON)},
    )
    def get(self, request):
        # This path shadows GET /reservations/{order_id}/ for an order named "batch".
        return ReservationDetailView.get(self, request, order_id="batch")


class ReservationDetailView(ApiView):
    read_scopes = (Scope.STOREFRONT, Scope.OPERATIONS)

    @extend_schema(
        operation_id="reservations_retrieve",
        responses={200: ReservationOutput, **schema.errors(*schema.COMMON)},
    )
    def get(self, request, order_id: str):
        reservation = selectors.reservation_get(order_id=order_id, placed_by=self.orders_of)
        return Response(reservation_data(reservation))


class CloseLinesInput(StrictSerializer):
    lines = OrderLineInput(many=True, required=False, allow_empty=False)
    reason = StrictCharField(required=False, allow_blank=True, max_length=500)


class _CloseOrderView(ApiView):
    write_scopes = (Scope.STOREFRONT, Scope.OPERATIONS)
    service: Callable

    def post(self, request, order_id: str):
        data = self.validated(CloseLinesInput, request.data)
        return with_idempotency_key(request, lambda key: self.close(order_id, data, key))

    def close(self, order_id: str, data: dict, key: str | None) -> Response:
        lines = data.get("lines")
        result = type(self).service(
            order_id=order_id,
            actor=self.actor,
            lines=(
                [services.OrderLine(x["sku"], x["quantity"], x.get("warehouse")) for x in lines]
                if lines is not None
                else None
            ),
            reason=data.get("reason", ""),
            idempotency_key=key,
            placed_by=self.orders_of,
        )
        return _reservation_response(result.reservation)


_CLOSE_SCHEMA = {
    "request": CloseLinesInput,
    "parameters": [schema.IDEMPOTENCY_KEY],
    "responses": {200: ReservationOutput, **schema.errors(*schema.WRITE, 409, 422, 503)},
}

_CLOSED_NOTE = (
    " An order that holds nothing any more (released, fulfilled or expired) is 409 "
    "`order_closed` with the order's `status` in `details`, and nothing changes. A hold "
    "already past its `expires_at` counts as expired even before the sweeper ran: this "
    "call expires it (its units return to stock) and answers 409 `order_closed` "
    "(status expired). A storefront client closes only its own orders (404 otherwise)."
)


class ReservationReleaseView(_CloseOrderView):
    service = staticmethod(services.reservation_release)

    @extend_schema(
        operation_id="reservations_release",
        description="Release what the order holds (cancelled): all of it, or the given "
        "lines." + _CLOSED_NOTE,
        **_CLOSE_SCHEMA,
    )
    def post(self, request, order_id: str):
        return super().post(request, order_id)


class ReservationFulfillView(_CloseOrderView):
    service = staticmethod(services.reservation_fulfill)

    @extend_schema(
        operation_id="reservations_fulfill",
        description="Ship what the order holds: all of it, or the given lines; on hand "
        "and reserved both drop." + _CLOSED_NOTE,
        **_CLOSE_SCHEMA,
    )
    def post(self, request, order_id: str):
        return super().post(request, order_id)


_EXPIRES_IN_HELP = (
    "Seconds: extend the hold to lapse this long from now, instead of confirming it for good."
)


class ConfirmInput(StrictSerializer):
    expires_in = StrictIntegerField(
        required=False, min_value=1, max_value=services.MAX_HOLD_SECONDS, help_text=_EXPIRES_IN_HELP
    )


class ReservationConfirmView(ApiView):
    """A payment arrived: the order's hold can no longer lapse (or, with
    `expires_in`, lapses that many seconds from now)."""

    write_scopes = (Scope.STOREFRONT, Scope.OPERATIONS)

    @extend_schema(
        operation_id="reservations_confirm",
        request=ConfirmInput,
        description=(
            "Confirm the order's hold: `expires_at` becomes null, the hold no longer "
            "lapses. With `expires_in` (seconds) the hold is extended instead: "
            "`expires_at` = now + expires_in. Records `confirmed_at`; changes no stock "
            "and writes no ledger row. Confirming a confirmed order again answers 200 "
            "with the same body. A released, fulfilled or expired order - or a hold "
            "already past its `expires_at`, which this call expires - is 409 "
            "`order_closed` with the order's status in `details`. A storefront client "
            "confirms only its own orders (404 for any other)."
        ),
        parameters=[schema.IDEMPOTENCY_KEY],
        examples=[
            OpenApiExample("Confirm (payment captured)", request_only=True, value={}),
            OpenApiExample("Extend by 10 minutes", request_only=True, value={"expires_in": 600}),
        ],
        responses={
            200: OpenApiResponse(ReservationOutput, description="Confirmed (or extended)."),
            **schema.errors(*schema.WRITE, 409, 422),
        },
    )
    def post(self, request, order_id: str):
        return with_idempotency_key(request, lambda _key: _confirm_order(self, request, order_id))


def _confirm_order(view: ApiView, request, order_id: str) -> Response:
    data = view.validated(ConfirmInput, request.data)
    result = services.reservation_confirm(
        order_id=order_id,
        actor=view.actor,
        expires_in=data.get("expires_in"),
        placed_by=view.orders_of,
    )
    return _reservation_response(result.reservation)


class ConfirmResultOutput(serializers.Serializer):
    order_id = serializers.CharField()
    outcome = serializers.ChoiceField(
        choices=["confirmed", "error"],
        help_text="confirmed: the hold is confirmed (or extended); error: nothing "
        "changed for this order, see `error`.",
    )
    status_code = serializers.IntegerField(
        help_text="What POST /reservations/{order_id}/confirm/ answers for this order "
        "alone: 200, or the error's status (404, 409)."
    )
    status = serializers.CharField(allow_null=True, help_text="The reservation's status.")
    expires_at = serializers.DateTimeField(allow_null=True)
    confirmed_at = serializers.DateTimeField(allow_null=True)
    error = schema.ErrorDetailSerializer(allow_null=True)


class ReservationBatchConfirmView(ApiView):
    """Confirm (or extend) many orders' holds in one call; each order on its own."""

    write_scopes = (Scope.STOREFRONT, Scope.OPERATIONS)

    class InputSerializer(OrdersBatchInput):
        class Order(StrictSerializer):
            order_id = OrderIdField()
            expires_in = StrictIntegerField(
                required=False,
                min_value=1,
                max_value=services.MAX_HOLD_SECONDS,
                help_text=_EXPIRES_IN_HELP,
            )

        # max_length states the bound in the schema; refuse_oversized checks it first.
        orders = Order(many=True, allow_empty=False, max_length=settings.STOCKROOM_MAX_BATCH_ORDERS)

    class OutputSerializer(serializers.Serializer):
        results = ConfirmResultOutput(many=True)
        confirmed = serializers.IntegerField()
        failed = serializers.IntegerField()

    @extend_schema(
        operation_id="reservations_batch_confirm",
        request=InputSerializer,
        description=(
            f"Confirm up to {settings.STOCKROOM_MAX_BATCH_ORDERS} orders' holds "
            "(`STOCKROOM_MAX_BATCH_ORDERS`) in one call: per order what "
            "POST /reservations/{order_id}/confirm/ would do for it alone (an order "
            "with `expires_in` is extended instead), one result per order in request "
            "order. Invalid input anywhere (an order id twice, a bad `expires_in`) "
            "refuses the whole batch (400, nothing confirmed). Safe to resend after "
            "a lost answer; an Idempotency-Key replays the first answer exactly. (A "
            "body without `orders` confirms the order named `batch` itself.)"
        ),
        parameters=[schema.IDEMPOTENCY_KEY],
        examples=[
            OpenApiExample(
                "Two payments captured, one still pending",
                request_only=True,
                value={
                    "orders": [
                        {"order_id": "ORD-2001"},
                        {"order_id": "ORD-2002"},
                        {"order_id": "ORD-2003", "expires_in": 600},
                    ]
                },
            )
        ],
        responses={
            200: OpenApiResponse(OutputSerializer, description="One result per order."),
            **schema.errors(*schema.WRITE, 409, 422),
        },
    )
    def post(self, request):
        if not (isinstance(request.data, dict) and "orders" in request.data):
            # This path shadows POST /reservations/{order_id}/confirm/ for an order
            # named "batch": a single order's body confirms that order.
            return with_idempotency_key(
                request, lambda _key: _confirm_order(self, request, "batch")
            )
        return with_idempotency_key(request, lambda _key: self.confirm_orders(request))

    def confirm_orders(self, request) -> Response:
        orders = self.validated(self.InputSerializer, request.data)["orders"]
        outcomes = services.reservations_confirm_batch(
            orders=[
                services.ConfirmRequest(order["order_id"], order.get("expires_in"))
                for order in orders
            ],
            actor=self.actor,
            placed_by=self.orders_of,
        )
        results = [confirm_result(outcome) for outcome in outcomes]
        confirmed = sum(r["outcome"] == "confirmed" for r in results)
        return Response(
            {"results": results, "confirmed": confirmed, "failed": len(results) - confirmed}
        )


urlpatterns = [
    path("reservations/", ReservationCreateView.as_view(), name="reservation-create"),
    # Before reservations/<order_id>/...: these paths shadow an order named "batch"
    # (the views answer such an order's read and single confirm themselves).
    path("reservations/batch/", ReservationBatchView.as_view(), name="reservation-batch"),
    path(
        "reservations/batch/confirm/",
        ReservationBatchConfirmView.as_view(),
        name="reservation-batch-confirm",
    ),
    path(
        "reservations/<str:order_id>/",
        ReservationDetailView.as_view(),
        name="reservation-detail",
    ),
    path(
        "reservations/<str:order_id>/release/",
        ReservationReleaseView.as_view(),
        name="reservation-release",
    ),
    path(
        "reservations/<str:order_id>/fulfill/",
        ReservationFulfillView.as_view(),
        name="reservation-fulfill",
    ),
    path(
        "reservations/<str:order_id>/confirm/",
        ReservationConfirmView.as_view(),
        name="reservation-confirm",
    ),
]
