"""A bare Django/DRF project: the ceiling `GET /api/v1/ping/` is measured against.

    DJANGO_SETTINGS_MODULE=bench.bare_site gunicorn inventory_site.wsgi:application ...

Settings and URLconf in one module (bench-only; never imported by the project).
One `APIView` at /bare/ with no authentication, permissions or throttles, the
JSON renderer only, no middleware, no database: what Django + DRF cost per
request under the same gunicorn settings, so `bench/fixed_cost.py` can report
ping as a ratio of it measured in the same run.
"""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

SECRET_KEY = "bench-only-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = __name__
DATABASES: dict = {}
USE_TZ = True
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_THROTTLE_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}
LOGGING = {"version": 1, "disable_existing_loggers": False}


class BareView(APIView):
    def get(self, request):
        return Response({"ok": True})


urlpatterns = [path("bare/", BareView.as_view())]
