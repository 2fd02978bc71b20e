"""The one exception handler: every error answer is {"error": {"code", "message", "details"}}.

Domain errors (`inventory.errors.InventoryError`) keep their stable code and
HTTP status; DRF's own errors get the codes below. A lock timeout, deadlock or
serialization failure (the services retry the last two first) is a 503
`stock_busy` with Retry-After: nothing was applied. Any other database error that
is not a domain error (a lost connection, a statement timeout) is a 503
`database_unavailable` with Retry-After. Unexpected exceptions are logged and
answered with a 500 in the same shape.
"""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from inventory import db_errors, errors

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1
RETRY_LATER = (errors.StockBusy, errors.DatabaseUnavailable)

DRF_CODES = [
    (exceptions.ParseError, "validation_error"),
    (exceptions.ValidationError, "validation_error"),
    (exceptions.NotAuthenticated, "not_authenticated"),
    (exceptions.AuthenticationFailed, "not_authenticated"),
    (exceptions.PermissionDenied, "permission_denied"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "throttled"),
]

DRF_MESSAGES = {
    exceptions.ValidationError: "The request is not valid; see details.",
    exceptions.ParseError: "The request body is not valid JSON.",
}


def error_body(code: str, message: str, details=None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


# Whether a database error means the connection itself is gone (SQLSTATEs are
# known in one place, inventory.db_errors).
connection_lost = db_errors.connection_lost


def api_exception_handler(exc, context):
    lost = False
    if db_errors.is_busy(exc):
        # A lock timeout, deadlock or serialization failure that no service
        # translated: the transaction rolled back, nothing was applied.
        logger.warning("Stock busy in %s: %s", context.get("view"), exc)
        exc = errors.StockBusy(reason=db_errors.REASONS[db_errors.sqlstate(exc)])
    elif isinstance(exc, (OperationalError, InterfaceError)):
        lost = connection_lost(exc)
        logger.warning("Database unavailable in %s: %s", context.get("view"), exc)
        exc = errors.DatabaseUnavailable()
    if isinstance(exc, errors.InventoryError):
        response = Response(error_body(exc.code, exc.message, exc.details), status=exc.http_status)
        if isinstance(exc, RETRY_LATER):
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        response.connection_lost = lost  # ApiView.dispatch answers a read once more
        return response

    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body(
                "validation_error",
                "The request body is too large; send smaller batches.",
                {"max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
            ),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in %s", context.get("view"), exc_info=exc)
        return Response(
            error_body("server_error", "Internal error; it has been logged."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    code = next((c for cls, c in DRF_CODES if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        message = DRF_MESSAGES[exceptions.ValidationError]
    elif isinstance(exc, exceptions.ParseError):
        details = {"body": [str(exc.detail)]}
        message = DRF_MESSAGES[exceptions.ParseError]
    else:
        details = {}
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            details = {"retry_after_seconds": int(exc.wait) + 1}
        message = str(exc.detail)
    response.data = error_body(code, message, details)
    return response
