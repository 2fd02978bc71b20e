"""The OpenAPI schema: valid, complete (every error documented), served with docs,
and a bounded schemathesis run that finds no 5xx and no response breaking the schema."""

import re

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from schemathesis import engine
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES
from schemathesis.engine import events as engine_events
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.fields import SKU_REGEX

from ..contract.live import live_app
from .conftest import error_code

# Examples per operation and phase (37 operations); fixed seed, deterministic generation.
SCHEMATHESIS_MAX_EXAMPLES = 25
SCHEMATHESIS_SEED = 20
SCHEMATHESIS_STATEFUL_STEPS = 200


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
    # 28 + 8 of the events app (issue 14) + GET /reservations/batch/ (the order "batch")
    # + stock move and returns (issue 15) + transfers ship, receive, get (issue 15 item 3)
    assert len(operations) == 42
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


def test_the_schema_states_bounds_links_and_optional_bodies(openapi):
    paths = openapi["paths"]

    def parameter(path, method, name):
        found = [p for p in paths[path][method]["parameters"] if p["name"] == name]
        assert len(found) == 1, (path, method, name)
        return found[0]

    for path in ("/api/v1/products/", "/api/v1/inventory/", "/api/v1/transactions/"):
        limit = parameter(path, "get", "limit")["schema"]
        assert (limit["minimum"], limit["maximum"]) == (1, 500), path
    sku = parameter("/api/v1/products/{sku}/", "get", "sku")["schema"]
    assert (sku["maxLength"], sku["pattern"]) == (64, SKU_REGEX)
    order_id = parameter("/api/v1/reservations/{order_id}/release/", "post", "order_id")
    assert re.fullmatch(order_id["schema"]["pattern"], "ORD-1")
    for bad in ("A/B", "A\x00B", "  "):
        assert not re.fullmatch(order_id["schema"]["pattern"], bad)
    batch_skus = parameter("/api/v1/availability/", "get", "sku")["schema"]
    assert (batch_skus["minItems"], batch_skus["maxItems"]) == (1, 100)
    assert parameter("/api/v1/transactions/", "get", "type")["allowEmptyValue"] is True

    schemas = openapi["components"]["schemas"]
    create = schemas["ReservationCreateInputRequest"]["properties"]
    assert (create["lines"]["minItems"], create["lines"]["maxItems"]) == (1, 100)
    assert create["order_id"]["pattern"] == order_id["schema"]["pattern"]
    assert schemas["ReservationBatchInputRequest"]["properties"]["orders"]["maxItems"] == 500

    links = paths["/api/v1/reservations/"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} == {
        "reservations_retrieve",
        "reservations_confirm",
        "reservations_release",
        "reservations_fulfill",
    }
    assert all(
        link["parameters"] == {"order_id": "$response.body#/order_id"} for link in links.values()
    )
    for action in ("release", "fulfill", "confirm"):
        body = paths[f"/api/v1/reservations/{{order_id}}/{action}/"]["post"]["requestBody"]
        assert not body.get("required"), action  # optional, as on the server
    assert paths["/api/v1/inventory/{sku}/{warehouse}/"]["patch"]["requestBody"]["required"]


def test_schema_and_docs_are_served(client, db):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/v1/reservations/" in schema.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
    assert b"cdn" not in docs.content.lower()  # served locally (works offline)


# --- Where the schema and the server disagreed, the server was wrong (docs/API.md) ---


def test_availability_counts_skus_as_given_like_the_schemas_max_items(reader):
    # maxItems 100: 101 parameters are refused even when they repeat one SKU (they
    # were deduplicated first and accepted, so the schema promised a refusal it never got).
    response = reader.get("/api/v1/availability/?" + "&".join(["sku=A"] * 101))
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert reader.get("/api/v1/availability/?" + "&".join(["sku=A"] * 100)).status_code == 200


def test_events_feed_refuses_a_nul_in_a_filter_with_400_not_500(reader):
    for name in ("sku", "warehouse"):
        response = reader.get("/api/v1/events/", {name: "A\x00B"})
        assert response.status_code == 400, response.content
        assert response.json()["error"]["details"] == {name: ["Null characters are not allowed."]}


def test_an_unknown_reference_type_is_400_as_docs_say_of_every_invalid_filter(reader):
    response = reader.get("/api/v1/transactions/", {"reference_type": "nonsense"})
    assert response.status_code == 400
    assert "reference_type" in response.json()["error"]["details"]
    assert reader.get("/api/v1/transactions/", {"reference_type": "order"}).status_code == 200
    assert reader.get("/api/v1/transactions/", {"reference_type": ""}).status_code == 200


# Business rules a schema cannot state. A schema-valid request these refuse is not a
# positive-data-acceptance failure; every other refusal of schema-valid data is. Keyed
# by (error code, field named in details or None, words of the message).
BUSINESS_RULES = {
    ("unknown_sku", None, ""): "the schema states a SKU's format, not which SKUs exist",
    ("unknown_warehouse", None, ""): "the schema states a code's format, not which exist",
    ("same_warehouse", None, ""): "a transfer's source and destination must differ",
    ("idempotency_conflict", None, ""): "the fuzzer reuses one Idempotency-Key for "
    "different requests; that is what 422 idempotency_conflict answers",
    ("validation_error", "backorder_limit", "normal stock policy"): "a backorder limit "
    "only with a backorder or preorder policy (of the body or of the stored product)",
    ("validation_error", "orders", "Each order id once per batch"): "order ids unique "
    "within a batch (JSON Schema's uniqueItems compares whole items, not one property)",
    ("validation_error", "duplicate_skus", ""): "SKUs unique within a bulk upsert "
    "(uniqueItems compares whole items, not one property)",
    ("invalid_quantity", None, ""): "an adjustment may not take on hand below zero or "
    "below reserved: that depends on the stock, not on the request",
    ("validation_error", "non_field_errors", "exactly one of counted or delta"): "an "
    "adjustment gives exactly one of counted or delta",
    ("validation_error", "delta", "Must not be 0"): "a delta is non-zero (JSON Schema "
    "could say it with `not`, which generated clients do not support)",
    ("validation_error", "cursor", "Invalid cursor"): "a cursor is opaque: only the "
    "server's own `next`/`previous` cursors are valid",
    ("validation_error", "after", "Invalid cursor"): "an events cursor is opaque: only "
    "the server's own cursors are valid",
    ("validation_error", "non_field_errors", "from_state and to_state must differ"): "a "
    "state move goes between two different states (not expressible per field)",
    ("validation_error", "url", "Enter a valid URL"): "Django's URL validator is "
    "stricter than format: uri (host name lengths, schemes)",
    ("invalid_bundle_component", None, ""): "a bundle's components are existing SKUs "
    "that are not bundles, each once, not the bundle itself: that depends on the "
    "catalogue (and uniqueItems compares whole items, not one property)",
    ("validation_error", "stock_policy", "normal for a bundle"): "a bundle keeps the "
    "normal stock policy (of the body or of the stored product's composition)",
    ("validation_error", "field", "expected_date may not be in the past"): "a transfer is "
    "expected today or later (the schema cannot name today)",
    ("exceeds_shipped", None, ""): "a transfer receipt names the transfer's SKUs, at most "
    "what was shipped: that depends on the shipment, not on the request",
    ("reason_required", None, ""): "a receipt that arrived short needs a reason (whether "
    "it is short depends on the shipment)",
}


def _business_rule(response) -> str | None:
    """The reason a refusal of schema-valid data is a named business rule, or None."""
    if response.status_code == 414:
        # The web server's request-line limit, documented as a 414 on the operation.
        return "gunicorn refuses a request line over limit_request_line (4094 bytes)"
    if response.status_code not in (400, 422):
        return None
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return None
    details = error.get("details") or {}
    for (code, field, words), reason in BUSINESS_RULES.items():
        if error.get("code") != code:
            continue
        if field is None:
            return reason
        found = _find_field(details, field)
        if found is not None and words in f"{error.get('message')} {found}":
            return reason
    return None


def _find_field(details, field):
    # Details nest per item (bulk upserts: {"0": {"backorder_limit": [...]}}).
    if isinstance(details, dict):
        if field in details:
            return details[field]
        for value in details.values():
            found = _find_field(value, field)
            if found is not None:
                return found
    return None


@schemathesis.check
def positive_data_acceptance_but_business_rules(ctx, response, case):
    """positive_data_acceptance, except for the named BUSINESS_RULES."""
    if _business_rule(response) is not None:
        return None
    return positive_data_acceptance(ctx, response, case)


# Checks that must have run (every check is enabled; these run on every phase).
EXPECTED_CHECKS = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance_but_business_rules",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
}


def schemathesis_config(base_url: str, headers: dict) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "base-url": base_url,
            # No state carried between runs (the run depends on the seed alone), and
            # nothing written into the checkout.
            "cache": {"enabled": False},
            "seed": SCHEMATHESIS_SEED,
            "workers": 1,
            "headers": headers,
            "generation": {
                "max-examples": SCHEMATHESIS_MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True, "max-steps": SCHEMATHESIS_STATEFUL_STEPS},
            },
            # Every check, with positive_data_acceptance replaced by the variant above.
            # A request the fuzzer makes invalid by a huge query string meets the web
            # server's request-line limit first: 414, documented on the operation.
            "checks": {
                "positive_data_acceptance": {"enabled": False},
                "negative_data_rejection": {
                    "expected-statuses": [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "414"]
                },
            },
        }
    )


@pytest.mark.slow
def test_schemathesis_all_checks_and_stateful_phase_are_clean():
    """Every check of schemathesis (positive_data_acceptance but for BUSINESS_RULES),
    all four phases (examples, coverage, fuzzing, stateful along the schema's links),
    against gunicorn serving the demo data (tests/contract/live.py)."""
    # The events feed long-polls up to `wait` seconds (the schema's maximum): keep
    # fuzzed waits short.
    with live_app("schemathesis", STOCKROOM_EVENTS_MAX_WAIT="1") as app:
        key = app.api_key("fuzz", "storefront", "operations", "read")
        schema = schemathesis.openapi.from_url(
            f"{app.url}/api/schema/?format=json",
            config=schemathesis_config(app.url, {"Authorization": f"Token {key}"}),
        )
        failures, errors, phases, operations, checks = [], [], {}, set(), set()
        for event in engine.from_schema(schema).execute():
            if isinstance(event, engine_events.ScenarioFinished):
                operations.add(event.recorder.label)
                checks.update(c.name for cs in event.recorder.checks.values() for c in cs)
                failures.extend(_failures(event))
            elif isinstance(event, engine_events.NonFatalError):
                errors.append((event.label, str(event.value)[:6000]))
            elif isinstance(event, engine_events.FatalError):
                errors.append(("fatal", str(event.exception)[:1500]))
            elif isinstance(event, engine_events.PhaseFinished):
                phases[event.phase.name.value] = event.status.value
    for failure in failures + errors:
        print(*failure, sep="\n", end="\n\n")
    assert failures == [] and errors == []
    assert phases.get("stateful") == "success", phases  # links drove the stateful phase
    assert len({o for o in operations if " /api/" in o}) >= 39, operations
    assert checks >= EXPECTED_CHECKS, EXPECTED_CHECKS - checks


def _failures(event) -> list[tuple]:
    found = []
    for case_id, checks in event.recorder.checks.items():
        for check in checks:
            if check.failure_info is None:
                continue
            interaction = event.recorder.interactions.get(case_id)
            response = interaction.response if interaction is not None else None
            found.append(
                (
                    event.phase.value,
                    check.name,
                    check.failure_info.failure.operation,
                    check.failure_info.failure.message[:500],
                    check.failure_info.code_sample[:700],
                    f"{response.status_code} {response.content[:400]!r}" if response else "",
                )
            )
    return found
