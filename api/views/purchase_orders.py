"""Purchase orders over the API: booking a delivery (purchasing.services)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from purchasing.services import ReceiptLine, purchase_order_receive

from .. import schema
from ..fields import QuantityField, SkuField, StrictBooleanField, StrictCharField, StrictSerializer
from ..models import Scope
from .base import ApiView
from .inventory import TransactionOutput


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
                value={"receipt_id": "DN-4711", "lines": [{"sku": "DEMO-000000", "quantity": 40}]},
            )
        ],
        responses={
            201: OpenApiResponse(OutputSerializer, description="Booked."),
            200: OpenApiResponse(OutputSerializer, description="This receipt was booked before."),
            **schema.errors(*schema.WRITE, 404, 409, 422, 503),
        },
    )
    def post(self, request, number: str):
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


urlpatterns = [
    path(
        "purchase-orders/<str:number>/receive/",
        PurchaseOrderReceiveView.as_view(),
        name="purchase-order-receive",
    ),
]
