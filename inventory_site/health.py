"""Liveness and readiness endpoints for load balancers and orchestrators.

/health/live  — the process answers (no dependencies checked).
/health/ready — checks the database, the cache and the broker separately. The
database is required (503 without it); the cache and the broker are optional:
the service stays correct without them, so it answers 200 with "degraded".
"""

import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse


def live(request):
    return JsonResponse({"status": "ok"})


def _check(fn) -> dict:
    started = time.perf_counter()
    try:
        detail = fn()
    except Exception as exc:
        return {"status": "down", "error": exc.__class__.__name__}
    result = {"status": "ok", "ms": round((time.perf_counter() - started) * 1000, 2)}
    if detail:
        result.update(detail)
    return result


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _cache():
    if not settings.CACHES["default"]["BACKEND"].startswith("django_redis"):
        return {"backend": "in-process"}
    from django_redis import get_redis_connection

    get_redis_connection("default").ping()
    return None


def _broker():
    if not settings.CELERY_BROKER_URL:
        return {"backend": "inline (no broker configured)"}
    from inventory_site.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=1)
    return None


def ready(request):
    checks = {"database": _check(_database), "cache": _check(_cache), "broker": _check(_broker)}
    if checks["database"]["status"] != "ok":
        status, code = "down", 503
    elif any(c["status"] != "ok" for c in checks.values()):
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    return JsonResponse({"status": status, "checks": checks}, status=code)
