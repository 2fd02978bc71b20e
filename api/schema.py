"""OpenAPI helpers: the error shape, documented error responses, paginated pages."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from .fields import StrictSerializer


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. insufficient_stock.")
    message = serializers.CharField()
    details = serializers.JSONField(
        help_text="Data a client can act on; shape depends on the code."
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


ERROR_DESCRIPTIONS = {
    400: "`validation_error` (bad input, malformed JSON, unknown field, oversized batch), "
    "`invalid_quantity`, `same_warehouse`, `unknown_sku`, `unknown_warehouse`",
    401: "`not_authenticated`: no, malformed, unknown or revoked token",
    403: "`permission_denied`: the client's scopes do not allow this call",
    404: "`not_found`",
    405: "`method_not_allowed`",
    409: "`insufficient_stock`, `order_conflict`, `warehouse_inactive`, `below_reserved`, "
    "`stock_changed`, `exceeds_reservation`, `order_closed`, `insufficient_on_hand`, "
    "`already_exists`, "
    "`allowance_below_backorders`, `idempotency_in_progress`, `insufficient_state`, "
    "`exceeds_fulfilled`, `return_conflict`",
    415: "`unsupported_media_type`: send `Content-Type: application/json`",
    422: "`idempotency_conflict`: the Idempotency-Key was used with a different request",
    429: "`throttled`: too many requests for this client; see Retry-After",
    503: "`stock_busy`: a stock row stayed locked; `database_unavailable`: the database "
    "connection was lost or timed out (a write's outcome is unknown: retry it with the same "
    "order id or Idempotency-Key). Retry after Retry-After seconds",
}

COMMON = (400, 401, 403, 404, 405, 429, 503)
WRITE = (*COMMON, 415)


def errors(*statuses: int) -> dict:
    return {
        status: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[status])
        for status in sorted(set(statuses))
    }


def page_of(serializer, name: str):
    return inline_serializer(
        name=name,
        fields={
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer(many=True),
        },
    )


PAGE_PARAMETERS = [
    OpenApiParameter("cursor", str, description="Opaque cursor from `next`/`previous`."),
    OpenApiParameter("limit", int, description="Page size, 1 to 500 (default 50)."),
]

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    location=OpenApiParameter.HEADER,
    description="Same key + same body replays the first response; a different body is 422 "
    "`idempotency_conflict`; while the first request runs, 409 `idempotency_in_progress`.",
)


class ApiAutoSchema(AutoSchema):
    """Names nested serializers after their view (StockReceiveView.InputSerializer ->
    StockReceiveInput), so every view can have its own InputSerializer/OutputSerializer."""

    def _get_serializer_name(self, serializer, direction, bypass_extensions=False):
        name = super()._get_serializer_name(serializer, direction, bypass_extensions)
        qualname = type(serializer).__qualname__
        if "." in qualname and not getattr(getattr(serializer, "Meta", None), "ref_name", None):
            outer = qualname.split(".")[0].removesuffix("View")
            return outer + name
        return name

    def _map_serializer(self, serializer, direction, bypass_extensions=False):
        # Strict inputs refuse unknown fields: say so in the schema.
        result = super()._map_serializer(serializer, direction, bypass_extensions)
        if direction == "request" and isinstance(serializer, StrictSerializer):
            result["additionalProperties"] = False
        return result
