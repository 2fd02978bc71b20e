"""Scope checks: a view lists the scopes that may call it, per kind of method."""

from rest_framework import permissions

from .models import ApiClient


class HasScope(permissions.BasePermission):
    """Allow a client holding any of the view's scopes.

    Views set `read_scopes` (GET/HEAD/OPTIONS) and `write_scopes` (everything else).
    """

    message = "This client's scopes do not allow this call."

    def has_permission(self, request, view) -> bool:
        client = request.user
        if not isinstance(client, ApiClient):
            return False
        if request.method in permissions.SAFE_METHODS:
            allowed = getattr(view, "read_scopes", ())
        else:
            allowed = getattr(view, "write_scopes", ())
        return client.has_any_scope(allowed)
