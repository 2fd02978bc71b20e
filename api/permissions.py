"""Scope checks: a view lists the scopes that may call it, per kind of method."""

from rest_framework import permissions

from .models import ApiClient


class HasScope(permissions.BasePermission):
    """Allow a client holding any of the view's scopes.

    Views set `read_scopes` (GET/HEAD/OPTIONS) and `write_scopes` (everything else).
    A method the view does not implement is let through for an authenticated client,
    so that the view answers 405 method_not_allowed rather than 403.
    """

    message = "This client's scopes do not allow this call."

    def has_permission(self, request, view) -> bool:
        client = request.user
        if not isinstance(client, ApiClient):
            return False
        if request.method not in view.allowed_methods:
            return True  # no handler: APIView.dispatch answers 405 method_not_allowed
        if request.method in permissions.SAFE_METHODS:
            allowed = getattr(view, "read_scopes", ())
        else:
            allowed = getattr(view, "write_scopes", ())
        return client.has_any_scope(allowed)
