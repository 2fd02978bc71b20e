import os
import subprocess
import sys
from pathlib import Path

import pytest

from inventory.context import reset_request_id, set_request_id
from inventory.models import InventoryTransaction

from ..conftest import receive

ROOT = Path(__file__).resolve().parents[2]


def test_liveness(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readiness_reports_each_dependency(client):
    body = client.get("/health/ready").json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["cache"]["status"] == "ok"


@pytest.mark.django_db
def test_readiness_is_degraded_not_down_without_cache_or_broker(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.1, "SOCKET_TIMEOUT": 0.1},
        }
    }
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["cache"]["status"] == "down"
    assert body["checks"]["broker"]["status"] == "down"


def test_request_id_is_echoed_or_generated(client):
    assert client.get("/health/live", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    generated = client.get("/health/live", HTTP_X_REQUEST_ID="bad id!")["X-Request-ID"]
    assert generated != "bad id!" and len(generated) == 32


@pytest.mark.django_db
def test_ledger_rows_carry_the_request_id(product, warehouse):
    token = set_request_id("req-42")
    try:
        receive(product.sku, warehouse.code, 1)
    finally:
        reset_request_id(token)
    assert InventoryTransaction.objects.get().request_id == "req-42"


def run_check(env_overrides):
    env = {
        **os.environ,
        **env_overrides,
        "DJANGO_SETTINGS_MODULE": "inventory_site.settings.production",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def test_deploy_check_passes_with_production_settings():
    result = run_check(
        {"DJANGO_SECRET_KEY": "x" * 20 + "-production-secret-for-the-check-" + "y" * 20}
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_the_development_secret():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    env["DJANGO_SETTINGS_MODULE"] = "inventory_site.settings.production"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
