"""GET /ping/: the cheapest authenticated call (no data)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from .. import schema
from .base import ALL_SCOPES, ApiView


class PingView(ApiView):
    """The cheapest authenticated call: token, scope and throttle checks, no data.

    For health checks that must pass authentication, and as the framework's own
    ceiling in bench/http_throughput.py.
    """

    read_scopes = ALL_SCOPES

    class OutputSerializer(serializers.Serializer):
        ok = serializers.BooleanField()

    @extend_schema(
        operation_id="ping",
        responses={200: OutputSerializer, **schema.errors(*schema.COMMON)},
    )
    def get(self, request):
        return Response({"ok": True})


urlpatterns = [
    path("ping/", PingView.as_view(), name="ping"),
]
