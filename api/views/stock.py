"""Stock operations (operations clients): receive, adjust, transfer. Each answers
the ledger rows it wrote; an optional Idempotency-Key makes a retry harmless."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.urls import path
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from inventory import services
from inventory.models import ReferenceType, StockState

from .. import schema
from ..fields import (
    QuantityField,
    SkuField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    WarehouseCodeField,
)
from ..models import Scope
from .base import ApiView, with_idempotency_key
from .inventory import TransactionOutput


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
            "sku": "DEMO-000000",
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
        {"sku": "DEMO-000000", "warehouse": "BER", "delta": -2, "reason": "damaged"},
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
        {"source": "BER", "destination": "HAM", "lines": [{"sku": "DEMO-000000", "quantity": 5}]},
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


class StockMoveView(StockOperationView):
    """Move units between stock states (issue #15), or write them off."""

    class InputSerializer(StrictSerializer):
        sku = SkuField()
        warehouse = WarehouseCodeField()
        from_state = serializers.ChoiceField(choices=StockState.choices)
        to_state = serializers.ChoiceField(choices=[*StockState.values, services.WRITTEN_OFF])
        quantity = QuantityField()
        reason = StrictCharField(max_length=500)
        reference = ReferenceInput(required=False)

        def validate(self, attrs):
            if attrs["from_state"] == attrs["to_state"]:
                raise serializers.ValidationError("from_state and to_state must differ.")
            return attrs

    @_stock_schema(
        InputSerializer,
        "stock_move",
        {
            "sku": "TSHIRT-M",
            "warehouse": "BER",
            "from_state": "sellable",
            "to_state": "damaged",
            "quantity": 2,
            "reason": "crushed on the shelf",
        },
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        return self.run(
            request,
            lambda key: services.stock_move_state(
                sku=data["sku"],
                warehouse=data["warehouse"],
                from_state=data["from_state"],
                to_state=data["to_state"],
                quantity=data["quantity"],
                reason=data["reason"],
                actor=self.actor,
                reference=self.reference(data),
                idempotency_key=key,
            ),
        )


urlpatterns = [
    path("stock/receive/", StockReceiveView.as_view(), name="stock-receive"),
    path("stock/adjust/", StockAdjustView.as_view(), name="stock-adjust"),
    path("stock/transfer/", StockTransferView.as_view(), name="stock-transfer"),
    path("stock/move/", StockMoveView.as_view(), name="stock-move"),
]
