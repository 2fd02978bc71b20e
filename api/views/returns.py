"""Customer returns (operations clients, issue #15): each line goes where the
dock decided (restock, damaged, quality_control, dispose). Idempotent by
`return_id`: a retry answers 200 with the first result."""

from __future__ import annotations

from django.conf import settings
from django.urls import path
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from inventory import services
from inventory.models import ReturnDisposition

from .. import schema
from ..fields import QuantityField, SkuField, StrictCharField, StrictSerializer, WarehouseCodeField
from ..models import Scope
from .base import ApiView
from .inventory import TransactionOutput


class ReturnLineOutput(serializers.Serializer):
    sku = serializers.CharField(source="product.sku")
    warehouse = serializers.CharField(source="warehouse.code")
    quantity = serializers.IntegerField()
    disposition = serializers.ChoiceField(choices=ReturnDisposition.choices)
    order_id = serializers.CharField()


class ReturnOutput(serializers.Serializer):
    return_id = serializers.CharField(source="return_record.return_id")
    created_at = serializers.DateTimeField(source="return_record.created_at")
    created_by = serializers.CharField(source="return_record.created_by")
    lines = ReturnLineOutput(many=True)
    transactions = TransactionOutput(many=True)
    replayed = serializers.BooleanField()


class ReturnCreateView(ApiView):
    write_scopes = (Scope.OPERATIONS,)

    class InputSerializer(StrictSerializer):
        class Line(StrictSerializer):
            sku = SkuField()
            warehouse = WarehouseCodeField()
            quantity = QuantityField()
            disposition = serializers.ChoiceField(choices=ReturnDisposition.choices)
            order_id = StrictCharField(required=False, max_length=100)

        return_id = StrictCharField(max_length=100)
        lines = Line(many=True, allow_empty=False, max_length=settings.STOCKROOM_MAX_ORDER_LINES)
        reason = StrictCharField(required=False, allow_blank=True, max_length=500)

    @extend_schema(
        operation_id="return_create",
        request=InputSerializer,
        examples=[
            OpenApiExample(
                "return_create",
                request_only=True,
                value={
                    "return_id": "RMA-1001",
                    "lines": [
                        {
                            "sku": "TSHIRT-M",
                            "warehouse": "BER",
                            "quantity": 1,
                            "disposition": "restock",
                            "order_id": "order-1001",
                        }
                    ],
                },
            )
        ],
        responses={
            201: OpenApiResponse(ReturnOutput, description="Recorded."),
            200: OpenApiResponse(ReturnOutput, description="A repeat of this return_id."),
            **schema.errors(*schema.WRITE, 409),
        },
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        result = services.stock_return(
            return_id=data["return_id"],
            lines=[
                services.ReturnLineRequest(
                    x["sku"], x["warehouse"], x["quantity"], x["disposition"], x.get("order_id", "")
                )
                for x in data["lines"]
            ],
            actor=self.actor,
            reason=data.get("reason", ""),
        )
        body = ReturnOutput(
            {
                "return_record": result.return_record,
                "lines": result.lines,
                "transactions": result.transactions,
                "replayed": result.replayed,
            }
        ).data
        return Response(body, status=200 if result.replayed else 201)


urlpatterns = [path("returns/", ReturnCreateView.as_view(), name="return-create")]
