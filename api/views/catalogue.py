"""The catalogue: products (list, create, read, replace, partial update, bulk
upsert) and warehouses (list, create, read, partial update)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from inventory import selectors, services
from inventory.models import StockPolicy

from .. import schema
from ..fields import (
    QuantityField,
    SkuField,
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
    WarehouseCodeField,
)
from ..models import Scope
from .base import CATALOGUE_SCOPES, ApiView, ListView, query_filters, refuse_oversized

_DIMENSION = {"required": False, "allow_null": True, "min_value": 0, "max_value": 2_000_000_000}


MAX_BUNDLE_COMPONENTS = 50


class BundleComponentOutput(serializers.Serializer):
    sku = serializers.CharField(source="component.sku")
    quantity = serializers.IntegerField(help_text="Units of this component per bundle unit.")


class BundleComponentInput(StrictSerializer):
    sku = SkuField()
    quantity = QuantityField(help_text="Units of this component per bundle unit (>= 1).")


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
    is_bundle = serializers.BooleanField(
        help_text="A bundle (kit): no stock of its own; availability derived from components."
    )
    components = BundleComponentOutput(
        many=True,
        source="components.all",
        help_text="A bundle's components, by SKU ([] for a plain product).",
    )
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


_COMPONENTS_HELP = (
    "A bundle's composition: [{sku, quantity}], at most "
    f"{MAX_BUNDLE_COMPONENTS} components, none of them a bundle. A non-empty list makes "
    "the product a bundle, [] a plain product again; refused (409 bundle_in_use) while "
    "active reservations hold the bundle. Omitted: unchanged."
)


def _components_field() -> serializers.ListField:
    return serializers.ListField(
        child=BundleComponentInput(),
        required=False,
        max_length=MAX_BUNDLE_COMPONENTS,
        help_text=_COMPONENTS_HELP,
    )


class ProductCreateInput(ProductInput):
    components = _components_field()


class ProductUpdateInput(ProductFieldsInput):
    components = _components_field()


class ProductListCreateView(ListView):
    read_scopes = CATALOGUE_SCOPES
    write_scopes = (Scope.OPERATIONS,)
    ordering = "sku"

    @extend_schema(
        operation_id="products_list",
        parameters=[
            *schema.PAGE_PARAMETERS,
            schema.text_query("category", "Exact category."),
            schema.choice_query("stock_policy", StockPolicy.values),
        ],
        responses={
            200: schema.page_of(ProductOutput, "ProductPage"),
            **schema.errors(*schema.COMMON),
        },
    )
    def get(self, request):
        filters = query_filters(request, ("category", "stock_policy"))
        return self.paginated(selectors.product_list(filters=filters), ProductOutput)

    @extend_schema(
        operation_id="products_create",
        request=ProductCreateInput,
        responses={201: ProductOutput, **schema.errors(*schema.WRITE, 409)},
    )
    def post(self, request):
        data = self.validated(ProductCreateInput, request.data)
        product = services.product_create(**data)
        product = selectors.product_get(sku=product.sku)  # with its components, by SKU
        return Response(ProductOutput(product).data, status=status.HTTP_201_CREATED)


class ProductDetailView(ApiView):
    read_scopes = CATALOGUE_SCOPES
    write_scopes = (Scope.OPERATIONS,)

    @extend_schema(
        operation_id="products_retrieve",
        responses={200: ProductOutput, **schema.errors(*schema.COMMON)},
    )
    def get(self, request, sku: str):
        return Response(ProductOutput(selectors.product_get(sku=sku)).data)

    def _update(self, sku: str, data: dict) -> Response:
        product = services.product_update(product=selectors.product_get(sku=sku), data=data)
        return Response(ProductOutput(selectors.product_get(sku=product.sku)).data)

    @extend_schema(
        operation_id="products_replace",
        request=ProductUpdateInput,
        responses={200: ProductOutput, **schema.errors(*schema.WRITE, 409)},
        description="Replace every field but the SKU (omitted fields get their defaults; "
        "an omitted `components` leaves the composition unchanged).",
    )
    def put(self, request, sku: str):
        data = self.validated(ProductUpdateInput, request.data)
        defaults = {
            "category": "",
            "weight_g": None,
            "length_mm": None,
            "width_mm": None,
            "height_mm": None,
            "stock_policy": StockPolicy.NORMAL,
            "backorder_limit": 0,
        }
        return self._update(sku, {**defaults, **data})

    @extend_schema(
        operation_id="products_partial_update",
        request=ProductUpdateInput(partial=True),
        responses={200: ProductOutput, **schema.errors(*schema.WRITE, 409)},
    )
    def patch(self, request, sku: str):
        return self._update(sku, self.validated(ProductUpdateInput, request.data, partial=True))


class ProductBulkUpsertView(ApiView):
    write_scopes = (Scope.OPERATIONS,)

    class InputSerializer(StrictSerializer):
        # max_length states the bound in the schema; refuse_oversized checks it first.
        products = ProductInput(
            many=True, allow_empty=False, max_length=settings.STOCKROOM_MAX_BULK_PRODUCTS
        )

        def to_internal_value(self, data):
            refuse_oversized(data, "products", settings.STOCKROOM_MAX_BULK_PRODUCTS)
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
            schema.bool_query("active"),
            schema.bool_query("is_active", "Alias of active.", deprecated=True),
        ],
        responses={
            200: schema.page_of(WarehouseOutput, "WarehousePage"),
            **schema.errors(*schema.COMMON),
        },
    )
    def get(self, request):
        filters = query_filters(request, ("active", "is_active"))
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
        data = self.validated(WarehouseFieldsInput, request.data, partial=True)
        warehouse = services.warehouse_update(
            warehouse=selectors.warehouse_get(code=code), data=data
        )
        return Response(WarehouseOutput(warehouse).data)


urlpatterns = [
    path("products/", ProductListCreateView.as_view(), name="product-list"),
    # Before products/<sku>/: "bulk" is no SKU (ProductInput refuses it).
    path("products/bulk/", ProductBulkUpsertView.as_view(), name="product-bulk"),
    path("products/<path:sku>/", ProductDetailView.as_view(), name="product-detail"),
    path("warehouses/", WarehouseListCreateView.as_view(), name="warehouse-list"),
    path("warehouses/<str:code>/", WarehouseDetailView.as_view(), name="warehouse-detail"),
]
