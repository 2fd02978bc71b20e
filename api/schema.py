"""OpenAPI helpers: the error shape, documented error responses, paginated pages."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from .fields import (
    ORDER_ID_MAX_LENGTH,
    ORDER_ID_REGEX,
    SKU_REGEX,
    WAREHOUSE_REGEX,
    StrictSerializer,
)

# --- Bounds of text: what DRF's CharField accepts, stated as patterns ----------------
# A string without NUL (PostgreSQL text cannot hold one; every field refuses it).
NO_NUL = r"^[^\x00]*$"
# ... with at least one character that is not whitespace (inputs are trimmed: a blank
# value is refused unless the field allows blank).
NOT_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*$"

# Path parameters by name: every path that names one states the same bounds. A value
# outside them names nothing (404), a value inside them may still be unknown (404).
PATH_PARAMETERS = {
    "sku": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": SKU_REGEX},
    "warehouse": {"type": "string", "minLength": 1, "maxLength": 32, "pattern": WAREHOUSE_REGEX},
    "code": {"type": "string", "minLength": 1, "maxLength": 32, "pattern": WAREHOUSE_REGEX},
    "order_id": {
        "type": "string",
        "minLength": 1,
        "maxLength": ORDER_ID_MAX_LENGTH,
        "pattern": ORDER_ID_REGEX,
    },
    "number": {"type": "string", "minLength": 1, "maxLength": 32, "pattern": r"^[^/\x00]+$"},
    "transfer_id": {
        "type": "string",
        "minLength": 1,
        "maxLength": ORDER_ID_MAX_LENGTH,
        "pattern": ORDER_ID_REGEX,
    },
}


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
    "`invalid_quantity`, `same_warehouse`, `unknown_sku`, `unknown_warehouse`, `reason_required`, "
    "`exceeds_shipped`",
    401: "`not_authenticated`: no, malformed, unknown or revoked token",
    403: "`permission_denied`: the client's scopes do not allow this call",
    404: "`not_found`",
    405: "`method_not_allowed`",
    409: "`insufficient_stock`, `order_conflict`, `warehouse_inactive`, `below_reserved`, "
    "`stock_changed`, `exceeds_reservation`, `order_closed`, `insufficient_on_hand`, "
    "`already_exists`, "
    "`allowance_below_backorders`, `idempotency_in_progress`, `insufficient_state`, "
    "`exceeds_fulfilled`, `return_conflict`, `transfer_conflict`, `transfer_not_in_transit`",
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


def text_query(name: str, description: str = "", **schema) -> OpenApiParameter:
    """A free-text query filter: any string without NUL (a NUL is a 400)."""
    return OpenApiParameter(
        name, {"type": "string", "pattern": NO_NUL, **schema}, description=description
    )


def int_query(name: str, low: int, high: int, description: str) -> OpenApiParameter:
    """A whole-number query parameter from `low` to `high` (anything else is a 400)."""
    return OpenApiParameter(
        name, {"type": "integer", "minimum": low, "maximum": high}, description=description
    )


# A filter given empty (`?type=`) filters nothing, as if it were absent: such
# parameters say `allowEmptyValue: true` (set from this marker in _get_parameters).
EMPTY_IS_ABSENT = {"x-empty-is-absent": True}


def bool_query(name: str, description: str = "", **kwargs) -> OpenApiParameter:
    """A boolean query filter: exactly `true` or `false` (anything else is a 400)."""
    return OpenApiParameter(
        name, bool, description=description, extensions=EMPTY_IS_ABSENT, **kwargs
    )


def choice_query(name: str, values, description: str = "") -> OpenApiParameter:
    """A query filter with a fixed set of values (anything else is a 400)."""
    return OpenApiParameter(
        name,
        {"type": "string", "enum": sorted(values)},
        description=description,
        extensions=EMPTY_IS_ABSENT,
    )


def datetime_query(name: str, description: str) -> OpenApiParameter:
    """An ISO 8601 date-time query filter (anything else is a 400)."""
    return OpenApiParameter(
        name,
        {"type": "string", "format": "date-time"},
        description=description,
        extensions=EMPTY_IS_ABSENT,
    )


MAX_PAGE_SIZE = 500

PAGE_PARAMETERS = [
    text_query(
        "cursor",
        "Opaque cursor: pass the `cursor` of a `next`/`previous` link unchanged (any "
        "other value is a 400).",
    ),
    int_query("limit", 1, MAX_PAGE_SIZE, f"Page size, 1 to {MAX_PAGE_SIZE} (default 50)."),
]

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 200},
    location=OpenApiParameter.HEADER,
    description="Same key + same body replays the first response; a different body is 422 "
    "`idempotency_conflict`; while the first request runs, 409 `idempotency_in_progress`.",
)


def _links(pointer: str, parameter: str, *operation_ids: str) -> dict:
    return {
        operation_id: {
            "operationId": operation_id,
            "parameters": {parameter: f"$response.body#/{pointer}"},
            "description": f"`{pointer}` of the answer is the `{parameter}` of {operation_id}.",
        }
        for operation_id in operation_ids
    }


# OpenAPI links: the calls that use what an operation created (clients and the stateful
# phase of schemathesis follow them).
LINKS = {
    "reservations_create": _links(
        "order_id",
        "order_id",
        "reservations_retrieve",
        "reservations_confirm",
        "reservations_release",
        "reservations_fulfill",
    ),
    "products_create": _links(
        "sku",
        "sku",
        "products_retrieve",
        "products_replace",
        "products_partial_update",
        "availability_retrieve",
    ),
    "warehouses_create": _links("code", "code", "warehouses_retrieve", "warehouses_partial_update"),
    "webhooks_create": _links(
        "id",
        "id",
        "webhooks_read",
        "webhooks_update",
        "webhooks_replay",
        "webhooks_deliveries",
        "webhooks_delete",
    ),
}


def _list_bounds(field, result: dict) -> dict:
    if result.get("type") != "array":
        return result
    if not getattr(field, "allow_empty", True) and "minItems" not in result:
        result["minItems"] = max(1, getattr(field, "min_length", None) or 1)
    elif getattr(field, "min_length", None) is not None and "minItems" not in result:
        result["minItems"] = field.min_length
    if getattr(field, "max_length", None) is not None and "maxItems" not in result:
        result["maxItems"] = field.max_length
    return result


class BoundsAutoSchema(AutoSchema):
    """States every bound the server checks: text without NUL (and not blank where a
    blank is refused), list sizes, path parameters (PATH_PARAMETERS), and the links
    from a created resource to the calls that use it (LINKS)."""

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        result = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(result, dict) and isinstance(
            field, serializers.ListSerializer | serializers.ListField
        ):
            return _list_bounds(field, result)
        return result

    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)
        # Text of an input (a StrictSerializer's field) without a pattern of its own:
        # no NUL, and not blank unless blank is allowed. NO_NUL admits the empty string,
        # so a blank-able field needs no oneOf [pattern, empty] (which "" would match
        # twice, and oneOf refuses that).
        if (
            isinstance(field, serializers.CharField)
            and isinstance(getattr(field, "parent", None), StrictSerializer)
            and not isinstance(field, serializers.URLField)
            and schema.get("type") == "string"
            and not {"pattern", "format", "enum", "oneOf"} & set(schema)
        ):
            schema["pattern"] = NO_NUL if field.allow_blank else NOT_BLANK

    def _get_parameters(self):
        parameters = super()._get_parameters()
        for parameter in parameters:
            if parameter.pop("x-empty-is-absent", False):
                parameter["allowEmptyValue"] = True
            bounds = PATH_PARAMETERS.get(parameter["name"])
            if parameter["in"] == "path" and bounds is not None:
                parameter["schema"] = dict(bounds)
        return parameters

    def _get_request_body(self, direction="request"):
        body = super()._get_request_body(direction)
        # A body whose every field is optional but that must name one (minProperties)
        # is itself required: without one the answer is a 400.
        if body and getattr(self.get_request_serializer(), "schema_extra", {}).get("minProperties"):
            body["required"] = True
        return body

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        links = LINKS.get((operation or {}).get("operationId"))
        if links:
            for status, response in operation["responses"].items():
                if status.startswith("2"):
                    response["links"] = links
        return operation


class ApiAutoSchema(BoundsAutoSchema):
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
            # Bounds a serializer's validate() checks on the whole body.
            result.update(getattr(serializer, "schema_extra", {}))
        return result
