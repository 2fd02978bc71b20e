"""Transfers in two steps (operations clients, issue #15): ship, then receive.

`POST /transfers/` ships (the units leave the source and are in transit,
counted as incoming at the destination); `POST /transfers/<transfer_id>/receive/`
books their arrival, in full or short (the units short are written off with a
reason); `GET /transfers/<transfer_id>/` reads one. Idempotent by the client's
`transfer_id`: the same request again answers 200 with the first result.
The instant, one-step transfer stays `POST /stock/transfer/`.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.urls import path
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.response import Response

from inventory import selectors, services
from inventory.models import TransferStatus

from .. import schema
from ..fields import (
    ORDER_ID_REGEX,
    QuantityField,
    SkuField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    WarehouseCodeField,
)
from ..models import Scope
from .base import ApiView
from .inventory import TransactionOutput

TRANSFER_ID_MAX_LENGTH = 100


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": TRANSFER_ID_MAX_LENGTH,
        "pattern": ORDER_ID_REGEX,
        "description": "The client's id of the transfer: 1 to 100 characters, no '/'.",
    }
)
class TransferIdField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", TRANSFER_ID_MAX_LENGTH)
        super().__init__(**kwargs)
        self.validators.append(RegexValidator(ORDER_ID_REGEX, "No '/' and not blank."))


class TransferLineOutput(serializers.Serializer):
    sku = serializers.CharField(source="product.sku")
    quantity_shipped = serializers.IntegerField()
    quantity_received = serializers.IntegerField(
        allow_null=True, help_text="Units that arrived (null while in transit)."
    )
    quantity_short = serializers.IntegerField(help_text="Units written off on receipt.")


class TransferOutput(serializers.Serializer):
    transfer_id = serializers.CharField(source="transfer.transfer_id")
    status = serializers.ChoiceField(choices=TransferStatus.choices, source="transfer.status")
    source = serializers.CharField(source="transfer.source.code")
    destination = serializers.CharField(source="transfer.destination.code")
    expected_date = serializers.DateField(source="transfer.expected_date", allow_null=True)
    reason = serializers.CharField(source="transfer.reason")
    shipped_by = serializers.CharField(source="transfer.shipped_by")
    shipped_at = serializers.DateTimeField(source="transfer.shipped_at")
    received_by = serializers.CharField(source="transfer.received_by")
    received_at = serializers.DateTimeField(source="transfer.received_at", allow_null=True)
    receive_reason = serializers.CharField(source="transfer.receive_reason")
    lines = TransferLineOutput(many=True)
    transactions = TransactionOutput(many=True)
    replayed = serializers.BooleanField()


def _respond(result: services.TransferResult) -> Response:
    body = TransferOutput(
        {
            "transfer": result.transfer,
            "lines": result.lines,
            "transactions": result.transactions,
            "replayed": result.replayed,
        }
    ).data
    return Response(body, status=status.HTTP_200_OK if result.replayed else 201)


class TransferShipView(ApiView):
    write_scopes = (Scope.OPERATIONS,)

    class InputSerializer(StrictSerializer):
        class Line(StrictSerializer):
            sku = SkuField()
            quantity = QuantityField()

        transfer_id = TransferIdField()
        source = WarehouseCodeField()
        destination = WarehouseCodeField()
        lines = Line(many=True, allow_empty=False, max_length=settings.STOCKROOM_MAX_ORDER_LINES)
        expected_date = serializers.DateField(required=False, allow_null=True)
        reason = StrictCharField(required=False, allow_blank=True, max_length=500)

    @extend_schema(
        operation_id="transfer_ship",
        request=InputSerializer,
        examples=[
            OpenApiExample(
                "transfer_ship",
                request_only=True,
                value={
                    "transfer_id": "TR-1001",
                    "source": "BER",
                    "destination": "HAM",
                    "lines": [{"sku": "DEMO-000002", "quantity": 5}],
                    "expected_date": "2030-01-15",
                    "reason": "rebalance before the sale",
                },
            )
        ],
        responses={
            201: OpenApiResponse(TransferOutput, description="Shipped: in transit."),
            200: OpenApiResponse(TransferOutput, description="A repeat of this transfer_id."),
            **schema.errors(*schema.WRITE, 409),
        },
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        return _respond(
            services.transfer_ship(
                transfer_id=data["transfer_id"],
                source=data["source"],
                destination=data["destination"],
                lines=[services.ShipLine(x["sku"], x["quantity"]) for x in data["lines"]],
                expected_date=data.get("expected_date"),
                reason=data.get("reason", ""),
                actor=self.actor,
            )
        )


class TransferReceiveView(ApiView):
    write_scopes = (Scope.OPERATIONS,)

    class InputSerializer(StrictSerializer):
        class Line(StrictSerializer):
            sku = SkuField()
            quantity_received = StrictIntegerField(
                min_value=0, max_value=settings.STOCKROOM_MAX_QUANTITY
            )

        lines = Line(
            many=True,
            required=False,
            allow_empty=False,
            max_length=settings.STOCKROOM_MAX_ORDER_LINES,
            help_text="What arrived of the SKUs that arrived short; a SKU not listed "
            "arrived in full, a SKU listed twice counts the sum. Leave out when "
            "everything arrived.",
        )
        reason = StrictCharField(
            required=False,
            allow_blank=True,
            max_length=500,
            help_text="Required when a line arrived short: why the units are written off.",
        )

    @extend_schema(
        operation_id="transfer_receive",
        request=InputSerializer,
        examples=[
            OpenApiExample(
                "transfer_receive_short",
                request_only=True,
                value={
                    "lines": [{"sku": "DEMO-000002", "quantity_received": 4}],
                    "reason": "one mug broken in the truck",
                },
            )
        ],
        responses={
            201: OpenApiResponse(TransferOutput, description="Received."),
            200: OpenApiResponse(TransferOutput, description="A repeat of this receipt."),
            **schema.errors(*schema.WRITE, 409),
        },
    )
    def post(self, request, transfer_id: str):
        data = self.validated(self.InputSerializer, request.data)
        received = None
        if data.get("lines") is not None:
            received = {}
            for x in data["lines"]:
                received[x["sku"]] = received.get(x["sku"], 0) + x["quantity_received"]
        return _respond(
            services.transfer_receive(
                transfer_id=transfer_id,
                received=received,
                reason=data.get("reason", ""),
                actor=self.actor,
            )
        )


class TransferDetailView(ApiView):
    read_scopes = (Scope.OPERATIONS, Scope.READ)

    @extend_schema(
        operation_id="transfer_get",
        responses={
            200: OpenApiResponse(TransferOutput, description="The transfer and its ledger rows."),
            **schema.errors(*schema.COMMON),
        },
    )
    def get(self, request, transfer_id: str):
        record, lines, transactions = selectors.transfer_with_ledger(transfer_id)
        body = TransferOutput(
            {"transfer": record, "lines": lines, "transactions": transactions, "replayed": False}
        ).data
        return Response(body)


urlpatterns = [
    path("transfers/", TransferShipView.as_view(), name="transfer-ship"),
    path("transfers/<str:transfer_id>/", TransferDetailView.as_view(), name="transfer-detail"),
    path(
        "transfers/<str:transfer_id>/receive/",
        TransferReceiveView.as_view(),
        name="transfer-receive",
    ),
]
