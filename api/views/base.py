"""What every API view shares: the base view (token, scope, throttle, strict JSON,
one error format, a read answered again after a lost connection), the scope sets,
cursor-paginated lists, query-parameter checks, input validation (`validated`) and
the optional Idempotency-Key of a POST (`with_idempotency_key`).

The views themselves live per domain beside this module (availability,
reservations, stock, catalogue, inventory, purchase_orders, ping), each with its
own `urlpatterns`; api/urls.py combines them.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connections
from rest_framework import exceptions, serializers
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from inventory import errors
from inventory.actors import actor_for_client
from inventory_site.db_router import on_replica

from .. import schema
from ..authentication import ClientTokenAuthentication
from ..exceptions import api_exception_handler
from ..models import Scope
from ..negotiation import JsonOnlyNegotiation
from ..parsers import StrictJSONParser
from ..permissions import HasScope
from ..services import (
    StoredResponse,
    idempotency_abandon,
    idempotency_begin,
    idempotency_finish,
    request_fingerprint,
)
from ..throttling import ClientRateThrottle

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
    content_negotiation_class = JsonOnlyNegotiation
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
    def validated(serializer_class, data, *, partial: bool = False) -> dict:
        """The request body as `serializer_class` validates it (a 400 otherwise);
        `partial`: a PATCH, where every field may be left out."""
        serializer = serializer_class(data=data, partial=partial)
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
        """One page; read from the replica when it is fresh enough (db_router)."""
        paginator = Cursor(self.ordering)

        def page_data():
            try:
                page = paginator.paginate_queryset(queryset.all(), self.request, view=self)
            except (DjangoValidationError, ValueError, TypeError) as exc:
                # A cursor that decodes but holds a position of the wrong type.
                raise exceptions.ValidationError({"cursor": ["Invalid cursor."]}) from exc
            return output_class(page, many=True).data

        data = on_replica(page_data)
        return paginator.get_paginated_response(data)


def query_filters(request, allowed: tuple[str, ...]) -> dict:
    unknown = sorted(set(request.query_params) - {*allowed, "cursor", "limit"})
    if unknown:
        raise exceptions.ValidationError({name: ["Unknown query parameter."] for name in unknown})
    return {k: request.query_params[k] for k in allowed if k in request.query_params}


def refuse_oversized(data, field: str, limit: int) -> None:
    """Refuse a batch body whose `field` lists more than `limit` items, before any
    item is validated: an oversized batch is refused cheaply (call it first in the
    serializer's to_internal_value)."""
    items = data.get(field) if isinstance(data, dict) else None
    if isinstance(items, list) and len(items) > limit:
        raise serializers.ValidationError({field: [f"At most {limit} per call."]})


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
