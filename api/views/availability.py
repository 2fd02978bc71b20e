"""Availability reads (storefronts): one SKU or up to
STOCKROOM_MAX_AVAILABILITY_SKUS at once, from the Redis read model.

AvailabilityOutput is the schema; api.renderers.availability_data builds the
answer (same shape, less CPU).
"""

from __future__ import annotations

from django.conf import settings
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from inventory import selectors
from inventory_site.db_router import on_replica

from .. import schema
from ..models import Scope
from ..renderers import availability_data
from .base import ALL_SCOPES, ApiView, query_filters


class WarehouseAvailabilityOutput(serializers.Serializer):
    code = serializers.CharField()
    available = serializers.IntegerField()


class ShipsInDaysOutput(serializers.Serializer):
    min = serializers.IntegerField()
    max = serializers.IntegerField()


class StockStatesOutput(serializers.Serializer):
    code = serializers.CharField()
    on_hand = serializers.IntegerField()
    reserved = serializers.IntegerField()
    safety_stock = serializers.IntegerField()
    damaged = serializers.IntegerField()
    quality_control = serializers.IntegerField()
    available = serializers.IntegerField(help_text="Sellable (never below 0).")
    incoming = serializers.IntegerField(
        help_text="Units on open purchase orders still to arrive, plus units in transit "
        "to this warehouse on two-step transfers (POST /transfers/)."
    )
    incoming_expected = serializers.DateField(
        allow_null=True, help_text="Earliest expected arrival of the incoming units."
    )


def stock_states_data(states) -> list[dict]:
    """StockStatesOutput's representation of `selectors.stock_states_for_skus` rows."""
    return [
        {
            "code": s.code,
            "on_hand": s.on_hand,
            "reserved": s.reserved,
            "safety_stock": s.safety_stock,
            "damaged": s.damaged,
            "quality_control": s.quality_control,
            "available": s.available,
            "incoming": s.incoming,
            "incoming_expected": s.incoming_expected.isoformat() if s.incoming_expected else None,
        }
        for s in states
    ]


class AvailabilityOutput(serializers.Serializer):
    sku = serializers.CharField()
    available = serializers.IntegerField(help_text="Units in stock and not held, in active sites.")
    status = serializers.ChoiceField(choices=selectors.AvailabilityStatus.ALL)
    warehouses = WarehouseAvailabilityOutput(many=True)
    ships_in_days = ShipsInDaysOutput(allow_null=True)
    stock = StockStatesOutput(
        many=True,
        required=False,
        help_text="Operations and read clients only: per active warehouse, the stock row's "
        "states (sellable vs physical) and incoming stock.",
    )


def _with_states(request, answers: list[dict]) -> list[dict]:
    """Add the per-warehouse states for operations and read clients (one
    database read for the whole answer); storefronts get the cached figures only."""
    scopes = getattr(request.user, "scopes", ())
    if not answers or not ({Scope.OPERATIONS, Scope.READ} & set(scopes)):
        return answers
    states = on_replica(lambda: selectors.stock_states_for_skus([a["sku"] for a in answers]))
    for answer in answers:
        answer["stock"] = stock_states_data(states.get(answer["sku"], []))
    return answers


class AvailabilityDetailView(ApiView):
    read_scopes = ALL_SCOPES

    @extend_schema(
        operation_id="availability_retrieve",
        responses={200: AvailabilityOutput, **schema.errors(*schema.COMMON)},
    )
    def get(self, request, sku: str):
        # Cache misses (or the uncached read) from the replica when it is fresh enough.
        found = on_replica(lambda: selectors.availability_for_skus([sku]))[sku]
        if found is None:
            raise exceptions.NotFound(f"Unknown SKU {sku!r}.")
        return Response(_with_states(request, [availability_data(found)])[0])


class AvailabilityBatchView(ApiView):
    read_scopes = ALL_SCOPES

    class OutputSerializer(serializers.Serializer):
        results = AvailabilityOutput(many=True)
        unknown_skus = serializers.ListField(child=serializers.CharField())

    @extend_schema(
        operation_id="availability_batch",
        parameters=[
            OpenApiParameter(
                "sku",
                {
                    "type": "array",
                    "items": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 64,
                        "pattern": schema.NO_NUL,
                    },
                    "minItems": 1,
                    "maxItems": settings.STOCKROOM_MAX_AVAILABILITY_SKUS,
                },
                required=True,
                explode=True,
                style="form",
                description=f"Repeat for up to {settings.STOCKROOM_MAX_AVAILABILITY_SKUS} SKUs "
                "(`STOCKROOM_MAX_AVAILABILITY_SKUS`, counted as given; a repeated SKU is "
                "answered once); each 1 to 64 characters without NUL. Unknown SKUs are "
                "listed in `unknown_skus`.",
            )
        ],
        responses={
            200: OutputSerializer,
            **schema.errors(*schema.COMMON),
            # Not the app's answer: the web server's, before the app sees the request.
            414: OpenApiResponse(
                description="URI Too Long: the request line exceeds the web server's "
                "limit (gunicorn's `limit_request_line`, 4094 bytes by default; 100 long "
                "SKUs can exceed it). Split the SKUs over two requests, or raise the limit."
            ),
        },
    )
    def get(self, request):
        query_filters(request, ("sku",))
        given = request.query_params.getlist("sku")
        skus = list(dict.fromkeys(given))
        limit = settings.STOCKROOM_MAX_AVAILABILITY_SKUS
        # Counted as given (the schema's maxItems): a repeated SKU is answered once.
        if not given or len(given) > limit:
            raise exceptions.ValidationError({"sku": [f"Give 1 to {limit} SKUs."]})
        if any(not s or len(s) > 64 or "\x00" in s for s in skus):
            raise exceptions.ValidationError({"sku": ["A SKU has 1 to 64 characters, no NUL."]})
        found = on_replica(lambda: selectors.availability_for_skus(skus))
        return Response(
            {
                "results": _with_states(
                    request, [availability_data(found[s]) for s in skus if found[s] is not None]
                ),
                "unknown_skus": [s for s in skus if found[s] is None],
            }
        )


urlpatterns = [
    path("availability/", AvailabilityBatchView.as_view(), name="availability-batch"),
    path("availability/<path:sku>/", AvailabilityDetailView.as_view(), name="availability-detail"),
]
