"""Per-client throttling; the rate is `STOCKROOM_API_THROTTLE_RATE` (e.g. "1200/min")."""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class ClientRateThrottle(SimpleRateThrottle):
    scope = "client"

    def get_rate(self):
        # Read at request time (not import time) so deployments and tests can change it.
        return settings.STOCKROOM_API_THROTTLE_RATE

    def allow_request(self, request, view):
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        client = request.user
        if not getattr(client, "is_authenticated", False):
            return None  # unauthenticated requests are refused before throttling matters
        return f"api-throttle:{client.pk}"
