"""The OpenAPI schema: valid, complete (every error documented), served with docs,
and a bounded schemathesis run that finds no 5xx and no response breaking the schema."""

import logging

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.services import api_client_create

from ..conftest import receive
from ..factories import BackorderProductFactory, ProductFactory, WarehouseFactory

# Examples per operation (28 operations): about 30 s on a 2-core machine.
SCHEMATHESIS_MAX_EXAMPLES = 40


@pytest.fixture
def openapi():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_schema_is_valid_openapi_3(openapi):
    validate_schema(openapi)
    assert openapi["openapi"].startswith("3.")


def test_every_operation_documents_its_errors(openapi):
    operations = [
        (path, method, op) for path, item in openapi["paths"].items() for method, op in item.items()
    ]
    assert len(operations) == 38  # 28, 8 of the events app (#14), stock move and returns (#15)
    for path, method, op in operations:
        responses = op["responses"]
        for status in ("400", "401", "403", "404", "429"):
            assert status in responses, (path, method, status)
            content = responses[status]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/Error"}, (path, method)
        assert op["security"] == [{"ClientToken": []}], (path, method)
        if path.startswith("/api/v1/stock/"):
            assert {"409", "422", "503"} <= set(responses), path
            assert any(p["name"] == "Idempotency-Key" for p in op["parameters"])
    assert "409" in openapi["paths"]["/api/v1/reservations/"]["post"]["responses"]


def test_schema_and_docs_are_served(client, db):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/v1/reservations/" in schema.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
    assert b"cdn" not in docs.content.lower()  # served locally (works offline)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_server_errors_or_schema_violations(settings_override):
    logging.getLogger("django.request").setLevel(logging.ERROR)  # thousands of expected 4xx
    WarehouseFactory(code="BER", latitude=52.52, longitude=13.405)
    WarehouseFactory(code="HAM", latitude=53.55, longitude=9.993)
    ProductFactory(sku="TSHIRT-M")
    BackorderProductFactory(sku="BACK")
    receive("TSHIRT-M", "BER", 1000)
    _, key = api_client_create(name="fuzz", scopes=["storefront", "operations", "read"])
    headers = {"Authorization": f"Token {key}"}

    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    failures = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=SCHEMATHESIS_MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case):
            case.call_and_validate(headers=headers, checks=checks)

        try:
            run()
        except BaseException as exc:  # a FailureGroup; collected, one report per operation
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures[operation.label] = str(exc)[:2000]
    assert operations == 38  # 28, 8 of the events app (#14), stock move and returns (#15)
    for label, failure in failures.items():
        print(label, failure)
    assert failures == {}


@pytest.fixture
def settings_override(settings):
    settings.STOCKROOM_API_THROTTLE_RATE = "100000/min"
    return settings
