"""Stock rows (list, read, reorder settings) and the ledger (transactions list).
TransactionOutput, the ledger row, is also what stock operations and purchase
order receipts answer with."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from inventory import selectors, services
from inventory.models import ReferenceType, TransactionType

from .. import schema
from ..fields import QuantityField, StrictSerializer
from ..models import Scope
from .base import LIST_SCOPES, ApiView, ListView, query_filters


class TransactionOutput(serializers.Serializer):
    id = serializers.UUIDField()
    sku = serializers.CharField(source="product.sku")
    warehouse = serializers.CharField(source="warehouse.code")
    type = serializers.ChoiceField(choices=TransactionType.choices)
    on_hand_delta = serializers.IntegerField()
    reserved_delta = serializers.IntegerField()
    damaged_delta = serializers.IntegerField()
    quality_control_delta = serializers.IntegerField()
    on_hand_after = serializers.IntegerField()
    reserved_after = serializers.IntegerField()
    reference_type = serializers.CharField()
    reference_id = serializers.CharField()
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField()


class InventoryOutput(serializers.Serializer):
    sku = serializers.CharField(source="product.sku")
    warehouse = serializers.CharField(source="warehouse.code")
    on_hand = serializers.IntegerField()
    reserved = serializers.IntegerField()
    safety_stock = serializers.IntegerField()
    damaged = serializers.IntegerField()
    quality_control = serializers.IntegerField()
    available = serializers.IntegerField(
        help_text="Sellable: on hand - reserved - safety stock - damaged - quality control."
    )
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
            schema.text_query("sku", "Exact SKU."),
            schema.text_query("warehouse", "Exact warehouse code."),
            schema.bool_query(
                "below_threshold",
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
        filters = query_filters(request, ("sku", "warehouse", "below_threshold"))
        return self.paginated(selectors.inventory_list(filters=filters), InventoryOutput)


class InventoryDetailView(ApiView):
    read_scopes = LIST_SCOPES
    write_scopes = (Scope.OPERATIONS,)

    class PatchInput(StrictSerializer):
        schema_extra = {"minProperties": 1}  # validate() refuses an empty body
        reorder_threshold = QuantityField(required=False, allow_zero=True)
        reorder_quantity = QuantityField(required=False, allow_zero=True)
        safety_stock = QuantityField(required=False, allow_zero=True)

        def validate(self, attrs):
            if not attrs:
                raise serializers.ValidationError(
                    "Give reorder_threshold, reorder_quantity and/or safety_stock; stock "
                    "quantities change only through /stock/ operations."
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
        services.inventory_set_reorder(sku=sku, warehouse=warehouse, **data)
        # Read back: `available` is generated from the columns just written.
        return Response(InventoryOutput(selectors.inventory_get(sku=sku, warehouse=warehouse)).data)


class TransactionListView(ListView):
    ordering = "-id"  # UUIDv7: time-ordered, unique

    @extend_schema(
        operation_id="transactions_list",
        parameters=[
            *schema.PAGE_PARAMETERS,
            schema.text_query("sku", "Exact SKU."),
            schema.text_query("warehouse", "Exact warehouse code."),
            schema.choice_query("type", TransactionType.values),
            schema.datetime_query(
                "since", "ISO 8601 date-time, inclusive (a bare date means its midnight)."
            ),
            schema.text_query("reference", "Reference id, e.g. an order id."),
            schema.choice_query("reference_type", ReferenceType.values),
        ],
        responses={
            200: schema.page_of(TransactionOutput, "TransactionPage"),
            **schema.errors(*schema.COMMON),
        },
    )
    def get(self, request):
        filters = query_filters(
            request, ("sku", "warehouse", "type", "since", "reference", "reference_type")
        )
        return self.paginated(selectors.transaction_list(filters=filters), TransactionOutput)


urlpatterns = [
    path("inventory/", InventoryListView.as_view(), name="inventory-list"),
    path(
        "inventory/<path:sku>/<str:warehouse>/",
        InventoryDetailView.as_view(),
        name="inventory-detail",
    ),
    path("transactions/", TransactionListView.as_view(), name="transaction-list"),
]
