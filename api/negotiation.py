"""Content negotiation for views that answer JSON only.

DRF's default negotiation parses the Accept header into media types and walks
them against every renderer on every request (about 3 % of a ping's time under
load, docs/PERFORMANCE.md "Fixed cost per request"). With one renderer and an
Accept header that takes anything or JSON (no header, `*/*`, `application/json`:
what clients send), the answer is known without parsing; any other header goes
through DRF's negotiation as before (so a client accepting only text/html still
gets 406 not_acceptable).
"""

from rest_framework.negotiation import DefaultContentNegotiation

_TAKES_JSON = frozenset(("", "*/*", "application/json"))


class JsonOnlyNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        if (
            len(renderers) == 1
            and format_suffix is None
            and request.META.get("HTTP_ACCEPT", "").strip() in _TAKES_JSON
            and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
        ):
            renderer = renderers[0]
            return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)
