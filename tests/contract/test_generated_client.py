"""Issue #20 item 5: a Python client generated from the served schema works.

openapi-python-client (a dev dependency; no network) generates a client from
/api/schema/ of a live server (gunicorn on loopback, a database of its own seeded
with the demo data as `make run` seeds it, a private Redis). A short storefront and
warehouse scenario then runs through the generated code only: availability, reserve,
retry (same order id -> 200), confirm, partial fulfil, release (no body), batch,
receive with an Idempotency-Key (and its replay), transfer, ledger list. A schema
change that breaks generated clients (a renamed operation or model, a body made
required, an answer the schema does not describe) fails here.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .live import live_app

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PACKAGE = "stockroom_contract_client"
# The generator runs no formatter (none is needed to import the code).
GENERATOR_CONFIG = "post_hooks: []\n"


@pytest.fixture(scope="module")
def server():
    with live_app("contract") as app:
        yield (
            app.url,
            {
                scope: app.api_key(f"contract-{scope}", scope)
                for scope in ("storefront", "operations")
            },
        )


@pytest.fixture(scope="module")
def client_package(server, tmp_path_factory):
    """The client generated from the served schema, imported."""
    base_url, _ = server
    tmp = tmp_path_factory.mktemp("generated")
    schema = httpx.get(f"{base_url}/api/schema/?format=json", timeout=30)
    assert schema.status_code == 200
    (tmp / "schema.json").write_bytes(schema.content)
    (tmp / "config.yml").write_text(GENERATOR_CONFIG)
    done = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(tmp / "schema.json"), "--meta", "none",
         "--config", str(tmp / "config.yml"), "--output-path", str(tmp / PACKAGE)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # Every operation and model generated: the generator warns about any it skipped.
    assert "Warning" not in output, output
    sys.path.insert(0, str(tmp))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp))
        for module in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[module]


def _api(package, name: str):
    return importlib.import_module(f"{PACKAGE}.api.v1.{name}")


@pytest.mark.slow
def test_a_storefront_and_a_warehouse_scenario_through_the_generated_client(server, client_package):
    base_url, keys = server
    models = importlib.import_module(f"{PACKAGE}.models")
    client_module = importlib.import_module(f"{PACKAGE}.client")
    shop = client_module.AuthenticatedClient(
        base_url=base_url, token=keys["storefront"], prefix="Token",
        raise_on_unexpected_status=True,
    )  # fmt: skip
    wms = client_module.AuthenticatedClient(
        base_url=base_url, token=keys["operations"], prefix="Token",
        raise_on_unexpected_status=True,
    )  # fmt: skip
    api = lambda name: _api(client_package, name)  # noqa: E731

    # --- Storefront ---------------------------------------------------------------
    availability = api("availability_retrieve").sync_detailed(client=shop, sku="DEMO-000000")
    assert availability.status_code == 200
    assert isinstance(availability.parsed, models.AvailabilityOutput)
    before = availability.parsed.available
    assert before >= 3
    assert {w.code for w in availability.parsed.warehouses} >= {"BER", "HAM"}

    many = api("availability_batch").sync_detailed(
        client=shop, sku=["DEMO-000000", "DEMO-000002", "NO-SUCH-SKU"]
    )
    assert many.status_code == 200
    assert [r.sku for r in many.parsed.results] == ["DEMO-000000", "DEMO-000002"]
    assert many.parsed.unknown_skus == ["NO-SUCH-SKU"]

    order = models.ReservationCreateInputRequest(
        order_id="CONTRACT-1",
        lines=[models.OrderLineInputRequest(sku="DEMO-000000", quantity=3)],
        expires_in=900,
    )
    created = api("reservations_create").sync_detailed(client=shop, body=order)
    assert created.status_code == 201, created.content
    reservation = created.parsed
    assert isinstance(reservation, models.ReservationOutput)
    assert reservation.order_id == "CONTRACT-1"
    assert sum(line.quantity for line in reservation.lines) == 3
    assert reservation.expires_at is not None

    retried = api("reservations_create").sync_detailed(client=shop, body=order)
    assert retried.status_code == 200  # the same order id: the existing reservation
    assert [(x.sku, x.warehouse, x.quantity) for x in retried.parsed.lines] == [
        (x.sku, x.warehouse, x.quantity) for x in reservation.lines
    ]

    read = api("reservations_retrieve").sync_detailed(client=shop, order_id="CONTRACT-1")
    assert read.status_code == 200
    assert read.parsed.status == "active"

    confirmed = api("reservations_confirm").sync_detailed(client=shop, order_id="CONTRACT-1")
    assert confirmed.status_code == 200, confirmed.content  # no body: confirm for good
    assert confirmed.parsed.expires_at is None
    assert confirmed.parsed.confirmed_at is not None

    first = reservation.lines[0]
    fulfilled = api("reservations_fulfill").sync_detailed(
        client=shop,
        order_id="CONTRACT-1",
        body=models.CloseLinesInputRequest(
            lines=[
                models.OrderLineInputRequest(sku=first.sku, quantity=1, warehouse=first.warehouse)
            ]
        ),
    )
    assert fulfilled.status_code == 200, fulfilled.content
    assert sum(x.quantity_fulfilled for x in fulfilled.parsed.lines) == 1

    released = api("reservations_release").sync_detailed(
        client=shop, order_id="CONTRACT-1"
    )  # no body: release all the order still holds
    assert released.status_code == 200, released.content
    assert sum(x.quantity_released for x in released.parsed.lines) == 2
    after = api("availability_retrieve").sync(client=shop, sku="DEMO-000000")
    assert after.available == before - 1  # one unit shipped, two back

    batch = api("reservations_batch").sync_detailed(
        client=shop,
        body=models.ReservationBatchInputRequest(
            orders=[
                models.ReservationBatchOrderRequest(
                    order_id=f"CONTRACT-B{n}",
                    lines=[
                        models.BatchOrderLineInputRequest(
                            sku="DEMO-000002", quantity=1, warehouse="BER"
                        )
                    ],
                )
                for n in (1, 2)
            ]
        ),
    )
    assert batch.status_code == 200, batch.content
    assert (batch.parsed.created, batch.parsed.failed) == (2, 0)
    assert [r.outcome for r in batch.parsed.results] == ["created", "created"]

    # --- Warehouse ----------------------------------------------------------------
    receipt = models.StockReceiveInputRequest(
        sku="DEMO-000000",
        warehouse="BER",
        quantity=20,
        reference=models.ReferenceInputRequest(
            type_=models.ReferenceInputTypeEnum.PURCHASE_ORDER, id="PO-CONTRACT-1"
        ),
    )
    received = api("stock_receive").sync_detailed(
        client=wms, body=receipt, idempotency_key="contract-receive-1"
    )
    assert received.status_code == 201, received.content
    assert [t.on_hand_delta for t in received.parsed.transactions] == [20]
    again = api("stock_receive").sync_detailed(
        client=wms, body=receipt, idempotency_key="contract-receive-1"
    )
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.parsed.transactions[0].id == received.parsed.transactions[0].id

    transferred = api("stock_transfer").sync_detailed(
        client=wms,
        body=models.StockTransferInputRequest(
            source="BER",
            destination="HAM",
            lines=[models.StockTransferLineRequest(sku="DEMO-000000", quantity=5)],
        ),
        idempotency_key="contract-transfer-1",
    )
    assert transferred.status_code == 201, transferred.content
    assert sorted(t.on_hand_delta for t in transferred.parsed.transactions) == [-5, 5]

    ledger = api("transactions_list").sync_detailed(client=wms, sku="DEMO-000000", limit=10)
    assert ledger.status_code == 200
    types = [t.type_ for t in ledger.parsed.results]
    assert {"RECEIVE", "TRANSFER", "FULFILL", "RELEASE", "RESERVE"} <= {str(t) for t in types}
    newest = ledger.parsed.results[0]
    assert newest.sku == "DEMO-000000" and newest.type_ == "TRANSFER"
