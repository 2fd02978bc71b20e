"""The storefront and operations API: one small view per operation.

Each view validates input with its nested InputSerializer, calls one service,
selector or the router, and serialises the result with its OutputSerializer.
No stock logic lives here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connections
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from inventory import clock, errors, routing, selectors, services
from inventory.actors import actor_for_client
from inventory.models import ReferenceType, StockPolicy, TransactionType

from . import schema
from .authentication import ClientTokenAuthentication
from .exceptions import api_exception_handler
from .fields import (
    QuantityField,
    SkuField,
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
    WarehouseCodeField,
)
from .models import Scope
from .parsers import StrictJSONParser
from .permissions import HasScope
from .services import (
    StoredResponse,
    idempotency_abandon,
    idempotency_begin,
    idempotency_finish,
    request_fingerprint,
)
from .throttling import ClientRateThrottle
from .well_formed import well_formed_batch, well_formed_order

ALL_SCOPES = (Scope.STOREFRONT, Scope.OPERATIONS, Scope.READ)
LIST_SCOPES = (Scope.OPERATIONS, Scope.READ)
# The catalogue a storefront sells from (products, warehouses): every scope may read it.
# Stock rows and the ledger stay LIST_SCOPES (internal figures; a storefront reads
# availability instead).
CATALOGUE_SCOPES = ALL_SCOPES
READ_METHODS = ("GET", "HEAD", "OPTIONS")


class ApiView(APIView):
    authentication_classes = [ClientTokenAuthentication]
    permission_classes = [HasScope]
    throttle_classes = [ClientRateThrottle]
    parser_classes = [StrictJSONParser]
    renderer_classes = [JSONRenderer]
    read_scopes: tuple[str, ...] = ()
    write_scopes: tuple[str, ...] = ()
    schema = schema.ApiAutoSchema()

    def get_exception_handler(self):
        return api_exception_handler

    def dispatch(self, request, *args, **kwargs):
        response = super().dispatch(request, *args, **kwargs)
        if getattr(response, "connection_lost", False) and request.method in READ_METHODS:
            # A read changed nothing: drop the dead connection and answer it once more
            # (a write is answered 503 and retried by the client with its order id/key).
            for connection in connections.all(initialized_only=True):
                connection.close_if_unusable_or_obsolete()
            self.answering_again = True  # the client's request was counted once already
            response = super().dispatch(request, *args, **kwargs)
        return response

    def check_throttles(self, request):
        if not getattr(self, "answering_again", False):
            super().check_throttles(request)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # No SKU, order id or warehouse code holds a NUL (PostgreSQL text cannot).
        if any("\x00" in value for value in kwargs.values() if isinstance(value, str)):
            raise exceptions.NotFound()

    @property
    def actor(self) -> str:
        return actor_for_client(self.request.user.name)

    @property
    def orders_of(self) -> str | None:
        """Whose orders this client may read, release and fulfil: a storefront client
        only its own (placed under its actor), an operations client every order."""
        return None if Scope.OPERATIONS in self.request.user.scopes else self.actor

    @staticmethod
    def validated(serializer_class, data) -> dict:
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class Cursor(CursorPagination):
    page_size = 50
    max_page_size = 500
    page_size_query_param = "limit"

    def __init__(self, ordering: str) -> None:
        self.ordering = ordering

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= self.max_page_size:
            raise exceptions.ValidationError(
                {"limit": [f"A whole number from 1 to {self.max_page_size}."]}
            )
        return int(raw)

    def decode_cursor(self, request):
        invalid = exceptions.ValidationError({"cursor": ["Invalid cursor."]})
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound as exc:
            raise invalid from exc
        # PostgreSQL text cannot hold a NUL: filtering on such a position is a DataError.
        if cursor is not None and cursor.position is not None and "\x00" in cursor.position:
            raise invalid
        return cursor


class ListView(ApiView):
    read_scopes = LIST_SCOPES
    ordering = "pk"

    def paginated(self, queryset, output_class) -> Response:
        paginator = Cursor(self.ordering)
        try:
            page = paginator.paginate_queryset(queryset, self.request, view=self)
        except (DjangoValidationError, ValueError, TypeError) as exc:
            # A cursor that decodes but holds a position of the wrong type.
            raise exceptions.ValidationError({"cursor": ["Invalid cursor."]}) from exc
        return paginator.get_paginated_response(output_class(page, many=True).data)


def _query_filters(request, allowed: tuple[str, ...]) -> dict:
    unknown = sorted(set(request.query_params) - {*allowed, "cursor", "limit"})
    if unknown:
        raise exceptions.ValidationError({name: ["Unknown query parameter."] for name in unknown})
    return {k: request.query_params[k] for k in allowed if k in request.query_params}


# --- Availability -------------------------------------------------------


class WarehouseAvailabilityOutput(serializers.Serializer):
    code = serializers.CharField()
    available = serializers.IntegerField()


class ShipsInDaysOutput(serializers.Serializer):
    min = serializers.IntegerField()
    max = serializers.IntegerField()


class AvailabilityOutput(serializers.Serializer):
    sku = serializers.CharField()
    available = serializers.IntegerField(help_text="Units in stock and not held, in active sites.")
    status = serializers.ChoiceField(choices=selectors.AvailabilityStatus.ALL)
    warehouses = WarehouseAvailabilityOutput(many=True)
    ships_in_days = ShipsInDaysOutput(allow_null=True)


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


class AvailabilityDetailView(ApiView):
    read_scopes = ALL_SCOPES

    @extend_schema(
        operation_id="availability_retrieve",
        responses={200: AvailabilityOutput, **schema.errors(*schema.COMMON)},
    )
    def get(self, request, sku: str):
        found = selectors.availability_for_skus([sku])[sku]
        if found is None:
            raise exceptions.NotFound(f"Unknown SKU {sku!r}.")
        return Response(availability_data(found))


class AvailabilityBatchView(ApiView):
    read_scopes = ALL_SCOPES

    class OutputSerializer(serializers.Serializer):
        results = AvailabilityOutput(many=True)
        unknown_skus = serializers.ListField(child=serializers.CharField())

    @extend_schema(
        operation_id="availability_batch",
        parameters=[
            OpenApiParameter(
                "sku", str, many=True, required=True, description="Repeat for up to 100 SKUs."
            )
        ],
        responses={200: OutputSerializer, **schema.errors(*schema.COMMON)},
    )
    def get(self, request):
        _query_filters(request, ("sku",))
        skus = list(dict.fromkeys(request.query_params.getlist("sku")))
        limit = settings.STOCKROOM_MAX_AVAILABILITY_SKUS
        if not skus or len(skus) > limit:
            raise exceptions.ValidationError({"sku": [f"Give 1 to {limit} SKUs."]})
        if any(not s or len(s) > 64 or "\x00" in s for s in skus):
            raise exceptions.ValidationError({"sku": ["A SKU has 1 to 64 characters, no NUL."]})
        found = selectors.availability_for_skus(skus)
        return Response(
            {
                "results": [availability_data(found[s]) for s in skus if found[s] is not None],
                "unknown_skus": [s for s in skus if found[s] is None],
            }
        )


# --- Reservations -------------------------------------------------------


_DATETIME = serializers.DateTimeField()


def _when(value):
    """A datetime as the API writes it (DRF's DateTimeField), or None."""
    return _DATETIME.to_representation(value) if value else None


class ReservationLineOutput(serializers.Serializer):
    sku = serializers.CharField(source="product.sku")
    warehouse = serializers.CharField(source="warehouse.code")
    quantity = serializers.IntegerField()
    quantity_fulfilled = serializers.IntegerField()
    quantity_released = serializers.IntegerField()
    status = serializers.CharField()


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


def reservation_data(reservation) -> dict:
    """ReservationOutput's representation, built directly: serializer instances
    (with their fields deep-copied per call) cost more CPU than the reservation's
    own database statement. tests/api/test_reservations.py checks it equals the
    serializer's output."""
    return {
        "order_id": reservation.order_id,
        "status": reservation.status,
        "lines": [
            {
                "sku": line.product.sku,
                "warehouse": line.warehouse.code,
                "quantity": line.quantity,
                "quantity_fulfilled": line.quantity_fulfilled,
                "quantity_released": line.quantity_released,
                "status": line.status,
            }
            for line in reservation.lines.all()
        ],
        "expires_at": _when(reservation.expires_at),
        "confirmed_at": _when(reservation.confirmed_at),
        "created_at": _DATETIME.to_representation(reservation.created_at),
    }


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

        order_id = StrictCharField(max_length=100)
        lines = OrderLineInput(many=True, allow_empty=False)
        ship_to = ShipTo(required=False)
        expires_in = StrictIntegerField(
            required=False, min_value=1, max_value=30 * 24 * 3600, help_text="Seconds."
        )

        def validate_lines(self, lines):
            if len(lines) > settings.STOCKROOM_MAX_ORDER_LINES:
                raise serializers.ValidationError(
                    f"At most {settings.STOCKROOM_MAX_ORDER_LINES} lines per order."
                )
            return lines

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
                        {"sku": "TSHIRT-M", "quantity": 2},
                        {"sku": "TSHIRT-M", "quantity": 1, "warehouse": "BER"},
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


class ReservationBatchView(ApiView):
    """Many orders in one request and one database statement (order-management systems).

    Each order is all-or-nothing on its own and idempotent by order id; the
    answer lists one result per order, in request order. Lines must name their
    warehouse: routing reads a snapshot per order, which would cost the batch
    its single round trip; route with POST /reservations/ instead.
    """

    read_scopes = (Scope.STOREFRONT, Scope.OPERATIONS)
    write_scopes = (Scope.STOREFRONT,)

    class InputSerializer(StrictSerializer):
        class Order(StrictSerializer):
            order_id = StrictCharField(max_length=100)
            lines = BatchOrderLineInput(
                many=True, allow_empty=False, max_length=settings.STOCKROOM_MAX_ORDER_LINES
            )
            expires_in = StrictIntegerField(
                required=False, min_value=1, max_value=30 * 24 * 3600, help_text="Seconds."
            )

        orders = Order(many=True, allow_empty=False)

        def to_internal_value(self, data):
            # Count before validating each order: an oversized batch is refused cheaply.
            limit = settings.STOCKROOM_MAX_BATCH_ORDERS
            orders = data.get("orders") if isinstance(data, dict) else None
            if isinstance(orders, list) and len(orders) > limit:
                raise serializers.ValidationError({"orders": [f"At most {limit} per call."]})
            return super().to_internal_value(data)

        def validate_orders(self, orders):
            seen, repeated = set(), []
            for order in orders:
                if order["order_id"] in seen:
                    repeated.append(order["order_id"])
                seen.add(order["order_id"])
            if repeated:
                raise serializers.ValidationError(
                    f"Each order id once per batch; repeated: {', '.join(sorted(set(repeated)))}."
                )
            return orders

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
                            "lines": [{"sku": "TSHIRT-M", "quantity": 2, "warehouse": "BER"}],
                            "expires_in": 900,
                        },
                        {
                            "order_id": "ORD-2002",
                            "lines": [{"sku": "MUG-1", "quantity": 1, "warehouse": "HAM"}],
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
        results = [_batch_result(outcome) for outcome in outcomes]
        return Response(
            {
                "results": results,
                "created": sum(r["outcome"] == "created" for r in results),
                "exists": sum(r["outcome"] == "exists" for r in results),
                "failed": sum(r["outcome"] == "error" for r in results),
            }
        )

    @extend_schema(exclude=True)
    def get(self, request):
        # This path shadows GET /reservations/{order_id}/ for an order named "batch".
        return ReservationDetailView.get(self, request, order_id="batch")


def _batch_result(outcome: services.ReservationOutcome) -> dict:
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


class PingView(ApiView):
    """The cheapest authenticated call: token, scope and throttle checks, no data.

    For health checks that must pass authentication, and as the framework's own
    ceiling in bench/http_throughput.py.
    """

    read_scopes = ALL_SCOPES

    class OutputSerializer(serializers.Serializer):
        ok = serializers.BooleanField()

    @extend_schema(
        operation_id="ping",
        responses={200: OutputSerializer, **schema.errors(*schema.COMMON)},
    )
    def get(self, request):
        return Response({"ok": True})


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


def with_idempotency_key(request, respond: Callable[[str | None], Response]) -> Response:
    """Answer a POST that takes an optional `Idempotency-Key` (every such endpoint).

    Without a key: `respond(None)`. With one, the key is claimed per client
    (api.services): the same key with the same method, path and body replays the
    first answer with `Idempotent-Replayed: true`; a different request under it is
    422 `idempotency_conflict` (details name the client's key, never an internal
    one). `respond` gets the key the stock services record in the same transaction
    as the change (`api:<client pk>:<key>`), so even a takeover never applies twice.
    """
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return respond(None)
    claimed = idempotency_begin(
        client=request.user,
        key=key,
        fingerprint=request_fingerprint(
            method=request.method, path=request.path, body=request.data
        ),
    )
    if isinstance(claimed, StoredResponse):
        response = Response(claimed.body, status=claimed.status)
        response["Idempotent-Replayed"] = "true"
        return response
    try:
        response = respond(f"api:{request.user.pk}:{key}")
    except errors.IdempotencyConflict as exc:
        idempotency_abandon(record=claimed)
        # The service's own record of the key (its first use outlived ours): say which
        # key in the client's terms.
        raise errors.IdempotencyConflict(details={"idempotency_key": key}) from exc
    except BaseException:
        idempotency_abandon(record=claimed)
        raise
    idempotency_finish(record=claimed, status=response.status_code, body=response.data)
    return response


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

    class InputSerializer(StrictSerializer):
        class Order(StrictSerializer):
            order_id = StrictCharField(max_length=100)
            expires_in = StrictIntegerField(
                required=False,
                min_value=1,
                max_value=services.MAX_HOLD_SECONDS,
                help_text=_EXPIRES_IN_HELP,
            )

        orders = Order(many=True, allow_empty=False)

        def to_internal_value(self, data):
            limit = settings.STOCKROOM_MAX_BATCH_ORDERS
            orders = data.get("orders") if isinstance(data, dict) else None
            if isinstance(orders, list) and len(orders) > limit:
                raise serializers.ValidationError({"orders": [f"At most {limit} per call."]})
            return super().to_internal_value(data)

        def validate_orders(self, orders):
            seen, repeated = set(), []
            for order in orders:
                if order["order_id"] in seen:
                    repeated.append(order["order_id"])
                seen.add(order["order_id"])
            if repeated:
                raise serializers.ValidationError(
                    f"Each order id once per batch; repeated: {', '.join(sorted(set(repeated)))}."
                )
            return orders

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
        results = [_confirm_result(outcome) for outcome in outcomes]
        confirmed = sum(r["outcome"] == "confirmed" for r in results)
        return Response(
            {"results": results, "confirmed": confirmed, "failed": len(results) - confirmed}
        )


def _confirm_result(outcome: services.ConfirmOutcome) -> dict:
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


# --- Stock operations ---------------------------------------------------


class TransactionOutput(serializers.Serializer):
    id = serializers.UUIDField()
    sku = serializers.CharField(source="product.sku")
    warehouse = serializers.CharField(source="warehouse.code")
    type = serializers.ChoiceField(choices=TransactionType.choices)
    on_hand_delta = serializers.IntegerField()
    reserved_delta = serializers.IntegerField()
    on_hand_after = serializers.IntegerField()
    reserved_after = serializers.IntegerField()
    reference_type = serializers.CharField()
    reference_id = serializers.CharField()
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField()


class OperationOutput(serializers.Serializer):
    transactions = TransactionOutput(many=True)
    replayed = serializers.BooleanField(
        help_text="True if the service recognised a repeat (by reference) and changed nothing."
    )


class ReferenceInput(StrictSerializer):
    type = serializers.ChoiceField(choices=ReferenceType.choices)
    id = StrictCharField(max_length=100)


class StockOperationView(ApiView):
    """POST with an optional Idempotency-Key (stored per client; see api.services)."""

    write_scopes = (Scope.OPERATIONS,)

    def run(self, request, operation: Callable[[str | None], services.OperationResult]):
        return with_idempotency_key(request, lambda key: self._respond(operation(key)))

    @staticmethod
    def _respond(result: services.OperationResult) -> Response:
        data = OperationOutput(
            {"transactions": result.transactions, "replayed": result.replayed}
        ).data
        return Response(data, status=status.HTTP_200_OK if result.replayed else 201)

    @staticmethod
    def reference(data) -> services.Reference | None:
        ref = data.get("reference")
        return services.Reference(ref["type"], ref["id"]) if ref else None


def _stock_schema(input_class, operation_id: str, example: dict):
    return extend_schema(
        operation_id=operation_id,
        request=input_class,
        examples=[OpenApiExample(operation_id, value=example, request_only=True)],
        parameters=[schema.IDEMPOTENCY_KEY],
        responses={
            201: OpenApiResponse(OperationOutput, description="Applied."),
            200: OpenApiResponse(OperationOutput, description="A repeat; nothing changed."),
            **schema.errors(*schema.WRITE, 409, 422, 503),
        },
    )


class StockReceiveView(StockOperationView):
    class InputSerializer(StrictSerializer):
        sku = SkuField()
        warehouse = WarehouseCodeField()
        quantity = QuantityField()
        reference = ReferenceInput(required=False)
        reason = StrictCharField(required=False, allow_blank=True, max_length=500)

    @_stock_schema(
        InputSerializer,
        "stock_receive",
        {
            "sku": "TSHIRT-M",
            "warehouse": "BER",
            "quantity": 50,
            "reference": {"type": "purchase_order", "id": "PO-77"},
        },
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        return self.run(
            request,
            lambda key: services.stock_receive(
                sku=data["sku"],
                warehouse=data["warehouse"],
                quantity=data["quantity"],
                actor=self.actor,
                reference=self.reference(data),
                reason=data.get("reason", ""),
                idempotency_key=key,
            ),
        )


class StockAdjustView(StockOperationView):
    class InputSerializer(StrictSerializer):
        sku = SkuField()
        warehouse = WarehouseCodeField()
        reason = StrictCharField(max_length=500)
        counted = QuantityField(required=False, allow_zero=True)
        delta = StrictIntegerField(
            required=False,
            min_value=-settings.STOCKROOM_MAX_QUANTITY,
            max_value=settings.STOCKROOM_MAX_QUANTITY,
            help_text="Signed, non-zero.",
        )
        expected_on_hand = QuantityField(required=False, allow_zero=True)
        reference = ReferenceInput(required=False)

        def validate(self, attrs):
            if ("counted" in attrs) == ("delta" in attrs):
                raise serializers.ValidationError("Give exactly one of counted or delta.")
            if attrs.get("delta") == 0:
                raise serializers.ValidationError({"delta": ["Must not be 0."]})
            return attrs

    @_stock_schema(
        InputSerializer,
        "stock_adjust",
        {"sku": "TSHIRT-M", "warehouse": "BER", "delta": -2, "reason": "damaged"},
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        return self.run(
            request,
            lambda key: services.stock_adjust(
                sku=data["sku"],
                warehouse=data["warehouse"],
                reason=data["reason"],
                actor=self.actor,
                counted=data.get("counted"),
                delta=data.get("delta"),
                expected_on_hand=data.get("expected_on_hand"),
                reference=self.reference(data),
                idempotency_key=key,
            ),
        )


class StockTransferView(StockOperationView):
    class InputSerializer(StrictSerializer):
        class Line(StrictSerializer):
            sku = SkuField()
            quantity = QuantityField()

        source = WarehouseCodeField()
        destination = WarehouseCodeField()
        lines = Line(many=True, allow_empty=False, max_length=settings.STOCKROOM_MAX_ORDER_LINES)
        reference = ReferenceInput(required=False)
        reason = StrictCharField(required=False, allow_blank=True, max_length=500)

    @_stock_schema(
        InputSerializer,
        "stock_transfer",
        {"source": "BER", "destination": "HAM", "lines": [{"sku": "TSHIRT-M", "quantity": 5}]},
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        return self.run(
            request,
            lambda key: services.stock_transfer(
                source=data["source"],
                destination=data["destination"],
                lines=[services.TransferLine(x["sku"], x["quantity"]) for x in data["lines"]],
                actor=self.actor,
                reason=data.get("reason", ""),
                reference=self.reference(data),
                idempotency_key=key,
            ),
        )


# --- Catalogue: products ------------------------------------------------

_DIMENSION = {"required": False, "allow_null": True, "min_value": 0, "max_value": 2_000_000_000}


class ProductOutput(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    category = serializers.CharField()
    weight_g = serializers.IntegerField(allow_null=True)
    length_mm = serializers.IntegerField(allow_null=True)
    width_mm = serializers.IntegerField(allow_null=True)
    height_mm = serializers.IntegerField(allow_null=True)
    stock_policy = serializers.ChoiceField(choices=StockPolicy.choices)
    backorder_limit = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ProductFieldsInput(StrictSerializer):
    name = StrictCharField(max_length=255)
    category = StrictCharField(max_length=100, required=False, allow_blank=True)
    weight_g = StrictIntegerField(**_DIMENSION)
    length_mm = StrictIntegerField(**_DIMENSION)
    width_mm = StrictIntegerField(**_DIMENSION)
    height_mm = StrictIntegerField(**_DIMENSION)
    stock_policy = serializers.ChoiceField(choices=StockPolicy.choices, required=False)
    backorder_limit = QuantityField(required=False, allow_zero=True)


class ProductInput(ProductFieldsInput):
    sku = SkuField()

    def validate_sku(self, value):
        if value == "bulk":  # /products/bulk/ is the bulk upsert, not this product's URL
            raise serializers.ValidationError("'bulk' is reserved; choose another SKU.")
        return value


class ProductListCreateView(ListView):
    read_scopes = CATALOGUE_SCOPES
    write_scopes = (Scope.OPERATIONS,)
    ordering = "sku"

    @extend_schema(
        operation_id="products_list",
        parameters=[
            *schema.PAGE_PARAMETERS,
            OpenApiParameter("category", str),
            OpenApiParameter("stock_policy", str, enum=StockPolicy.values),
        ],
        responses={
            200: schema.page_of(ProductOutput, "ProductPage"),
            **schema.errors(*schema.COMMON),
        },
    )
    def get(self, request):
        filters = _query_filters(request, ("category", "stock_policy"))
        return self.paginated(selectors.product_list(filters=filters), ProductOutput)

    @extend_schema(
        operation_id="products_create",
        request=ProductInput,
        responses={201: ProductOutput, **schema.errors(*schema.WRITE, 409)},
    )
    def post(self, request):
        data = self.validated(ProductInput, request.data)
        product = services.product_create(**data)
        return Response(ProductOutput(product).data, status=status.HTTP_201_CREATED)


class ProductDetailView(ApiView):
    read_scopes = CATALOGUE_SCOPES
    write_scopes = (Scope.OPERATIONS,)

    class PatchInput(ProductFieldsInput):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, partial=True, **kwargs)

    @extend_schema(
        operation_id="products_retrieve",
        responses={200: ProductOutput, **schema.errors(*schema.COMMON)},
    )
    def get(self, request, sku: str):
        return Response(ProductOutput(selectors.product_get(sku=sku)).data)

    def _update(self, request, sku: str, data: dict) -> Response:
        product = services.product_update(product=selectors.product_get(sku=sku), data=data)
        return Response(ProductOutput(product).data)

    @extend_schema(
        operation_id="products_replace",
        request=ProductFieldsInput,
        responses={200: ProductOutput, **schema.errors(*schema.WRITE, 409)},
        description="Replace every field but the SKU (omitted fields get their defaults).",
    )
    def put(self, request, sku: str):
        data = self.validated(ProductFieldsInput, request.data)
        defaults = {
            "category": "",
            "weight_g": None,
            "length_mm": None,
            "width_mm": None,
            "height_mm": None,
            "stock_policy": StockPolicy.NORMAL,
            "backorder_limit": 0,
        }
        return self._update(request, sku, {**defaults, **data})

    @extend_schema(
        operation_id="products_partial_update",
        request=ProductFieldsInput(partial=True),
        responses={200: ProductOutput, **schema.errors(*schema.WRITE, 409)},
    )
    def patch(self, request, sku: str):
        serializer = ProductFieldsInput(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        return self._update(request, sku, serializer.validated_data)


class ProductBulkUpsertView(ApiView):
    write_scopes = (Scope.OPERATIONS,)

    class InputSerializer(StrictSerializer):
        products = ProductInput(many=True, allow_empty=False)

        def validate_products(self, value):
            if len(value) > settings.STOCKROOM_MAX_BULK_PRODUCTS:
                raise serializers.ValidationError(
                    f"At most {settings.STOCKROOM_MAX_BULK_PRODUCTS} products per call."
                )
            return value

        def to_internal_value(self, data):
            # Count before validating each item: an oversized batch is refused cheaply.
            limit = settings.STOCKROOM_MAX_BULK_PRODUCTS
            products = data.get("products") if isinstance(data, dict) else None
            if isinstance(products, list) and len(products) > limit:
                raise serializers.ValidationError({"products": [f"At most {limit} per call."]})
            return super().to_internal_value(data)

    class OutputSerializer(serializers.Serializer):
        created = serializers.IntegerField()
        updated = serializers.IntegerField()

    @extend_schema(
        operation_id="products_bulk_upsert",
        request=InputSerializer,
        responses={200: OutputSerializer, **schema.errors(*schema.WRITE, 409)},
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        created, updated = services.products_upsert(items=data["products"])
        return Response(self.OutputSerializer({"created": created, "updated": updated}).data)


# --- Catalogue: warehouses ----------------------------------------------


class WarehouseOutput(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    address = serializers.CharField()
    latitude = serializers.FloatField(allow_null=True)
    longitude = serializers.FloatField(allow_null=True)
    capacity = serializers.IntegerField(allow_null=True)
    active = serializers.BooleanField(source="is_active")


class WarehouseFieldsInput(StrictSerializer):
    name = StrictCharField(max_length=200)
    address = StrictCharField(required=False, allow_blank=True, max_length=2000)
    latitude = StrictFloatField(required=False, allow_null=True, min_value=-90, max_value=90)
    longitude = StrictFloatField(required=False, allow_null=True, min_value=-180, max_value=180)
    capacity = StrictIntegerField(**_DIMENSION)
    active = StrictBooleanField(required=False)

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        for coord in ("latitude", "longitude"):
            if values.get(coord) is not None:
                values[coord] = Decimal(f"{values[coord]:.6f}")  # the column's precision
        if "active" in values:
            values["is_active"] = values.pop("active")
        return values


class WarehouseInput(WarehouseFieldsInput):
    code = WarehouseCodeField()


class WarehouseListCreateView(ListView):
    read_scopes = CATALOGUE_SCOPES
    write_scopes = (Scope.OPERATIONS,)
    ordering = "code"

    @extend_schema(
        operation_id="warehouses_list",
        parameters=[
            *schema.PAGE_PARAMETERS,
            OpenApiParameter("active", bool),
            OpenApiParameter("is_active", bool, deprecated=True, description="Alias of active."),
        ],
        responses={
            200: schema.page_of(WarehouseOutput, "WarehousePage"),
            **schema.errors(*schema.COMMON),
        },
    )
    def get(self, request):
        filters = _query_filters(request, ("active", "is_active"))
        return self.paginated(selectors.warehouse_list(filters=filters), WarehouseOutput)

    @extend_schema(
        operation_id="warehouses_create",
        request=WarehouseInput,
        responses={201: WarehouseOutput, **schema.errors(*schema.WRITE, 409)},
    )
    def post(self, request):
        data = self.validated(WarehouseInput, request.data)
        warehouse = services.warehouse_create(**data)
        return Response(WarehouseOutput(warehouse).data, status=status.HTTP_201_CREATED)


class WarehouseDetailView(ApiView):
    read_scopes = CATALOGUE_SCOPES
    write_scopes = (Scope.OPERATIONS,)

    @extend_schema(
        operation_id="warehouses_retrieve",
        responses={200: WarehouseOutput, **schema.errors(*schema.COMMON)},
    )
    def get(self, request, code: str):
        return Response(WarehouseOutput(selectors.warehouse_get(code=code)).data)

    @extend_schema(
        operation_id="warehouses_partial_update",
        request=WarehouseFieldsInput(partial=True),
        responses={200: WarehouseOutput, **schema.errors(*schema.WRITE)},
    )
    def patch(self, request, code: str):
        serializer = WarehouseFieldsInput(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        warehouse = services.warehouse_update(
            warehouse=selectors.warehouse_get(code=code), data=serializer.validated_data
        )
        return Response(WarehouseOutput(warehouse).data)


# --- Inventory rows and the ledger --------------------------------------


class InventoryOutput(serializers.Serializer):
    sku = serializers.CharField(source="product.sku")
    warehouse = serializers.CharField(source="warehouse.code")
    on_hand = serializers.IntegerField()
    reserved = serializers.IntegerField()
    available = serializers.IntegerField()
    backorder_allowance = serializers.IntegerField()
    reorder_threshold = serializers.IntegerField()
    reorder_quantity = serializers.IntegerField()
    version = serializers.IntegerField()
    updated_at = serializers.DateTimeField()


class InventoryListView(ListView):
    @extend_schema(
        operation_id="inventory_list",
        parameters=[
            *schema.PAGE_PARAMETERS,
            OpenApiParameter("sku", str),
            OpenApiParameter("warehouse", str),
            OpenApiParameter(
                "below_threshold",
                bool,
                description="true: rows with a reorder threshold > 0 whose available "
                "(on hand - reserved) is at or below it.",
            ),
        ],
        responses={
            200: schema.page_of(InventoryOutput, "InventoryPage"),
            **schema.errors(*schema.COMMON),
        },
    )
    def get(self, request):
        filters = _query_filters(request, ("sku", "warehouse", "below_threshold"))
        return self.paginated(selectors.inventory_list(filters=filters), InventoryOutput)


class InventoryDetailView(ApiView):
    read_scopes = LIST_SCOPES
    write_scopes = (Scope.OPERATIONS,)

    class PatchInput(StrictSerializer):
        reorder_threshold = QuantityField(required=False, allow_zero=True)
        reorder_quantity = QuantityField(required=False, allow_zero=True)

        def validate(self, attrs):
            if not attrs:
                raise serializers.ValidationError(
                    "Give reorder_threshold and/or reorder_quantity; stock quantities change "
                    "only through /stock/ operations."
                )
            return attrs

    @extend_schema(
        operation_id="inventory_retrieve",
        responses={200: InventoryOutput, **schema.errors(*schema.COMMON)},
    )
    def get(self, request, sku: str, warehouse: str):
        return Response(InventoryOutput(selectors.inventory_get(sku=sku, warehouse=warehouse)).data)

    @extend_schema(
        operation_id="inventory_partial_update",
        request=PatchInput,
        responses={200: InventoryOutput, **schema.errors(*schema.WRITE)},
    )
    def patch(self, request, sku: str, warehouse: str):
        data = self.validated(self.PatchInput, request.data)
        row = services.inventory_set_reorder(sku=sku, warehouse=warehouse, **data)
        return Response(InventoryOutput(row).data)


class TransactionListView(ListView):
    ordering = "-id"  # UUIDv7: time-ordered, unique

    @extend_schema(
        operation_id="transactions_list",
        parameters=[
            *schema.PAGE_PARAMETERS,
            OpenApiParameter("sku", str),
            OpenApiParameter("warehouse", str),
            OpenApiParameter("type", str, enum=TransactionType.values),
            OpenApiParameter("since", str, description="ISO 8601 date-time, inclusive."),
            OpenApiParameter("reference", str, description="Reference id, e.g. an order id."),
            OpenApiParameter("reference_type", str, enum=ReferenceType.values),
        ],
        responses={
            200: schema.page_of(TransactionOutput, "TransactionPage"),
            **schema.errors(*schema.COMMON),
        },
    )
    def get(self, request):
        filters = _query_filters(
            request, ("sku", "warehouse", "type", "since", "reference", "reference_type")
        )
        return self.paginated(selectors.transaction_list(filters=filters), TransactionOutput)


# --- Purchase orders --------------------------------------------------------


class PurchaseOrderReceiveView(ApiView):
    """Book a delivery against a purchase order (warehouse systems).

    A thin edge over `purchasing.services.purchase_order_receive`: RECEIVE ledger
    rows referencing the order, received quantities and the order's status.
    `receipt_id` names the physical delivery and makes a retry harmless: the same
    receipt again answers 200 with the first result and changes nothing.
    """

    write_scopes = (Scope.OPERATIONS,)

    class InputSerializer(StrictSerializer):
        class Line(StrictSerializer):
            sku = SkuField()
            quantity = QuantityField()

        receipt_id = StrictCharField(max_length=100)
        lines = Line(many=True, allow_empty=False, required=False)
        allow_over_receipt = StrictBooleanField(required=False, default=False)
        reason = StrictCharField(required=False, allow_blank=True, max_length=500)

    class OutputSerializer(serializers.Serializer):
        purchase_order = serializers.CharField(source="purchase_order.number")
        status = serializers.CharField(source="purchase_order.status")
        receipt_id = serializers.CharField()
        transactions = TransactionOutput(many=True)
        replayed = serializers.BooleanField()

    @extend_schema(
        operation_id="purchase_orders_receive",
        request=InputSerializer,
        examples=[
            OpenApiExample(
                "A partial delivery",
                request_only=True,
                value={"receipt_id": "DN-4711", "lines": [{"sku": "TSHIRT-M", "quantity": 40}]},
            )
        ],
        responses={
            201: OpenApiResponse(OutputSerializer, description="Booked."),
            200: OpenApiResponse(OutputSerializer, description="This receipt was booked before."),
            **schema.errors(*schema.WRITE, 404, 409, 422, 503),
        },
    )
    def post(self, request, number: str):
        from purchasing.services import ReceiptLine, purchase_order_receive

        data = self.validated(self.InputSerializer, request.data)
        lines = data.get("lines")
        result = purchase_order_receive(
            purchase_order=number,
            actor=self.actor,
            lines=[ReceiptLine(line["sku"], line["quantity"]) for line in lines]
            if lines is not None
            else None,
            receipt_id=data["receipt_id"],
            allow_over_receipt=data["allow_over_receipt"],
            reason=data.get("reason", ""),
        )
        body = self.OutputSerializer(
            {
                "purchase_order": result.purchase_order,
                "receipt_id": data["receipt_id"],
                "transactions": result.transactions,
                "replayed": result.replayed,
            }
        ).data
        return Response(body, status=status.HTTP_200_OK if result.replayed else 201)
