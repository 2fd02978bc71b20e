"""Fixtures for bulk work: a few warehouses and products, and helpers to run a CSV."""

import io

import pytest

from inventory import services
from inventory.models import Inventory, InventoryTransaction

from ..factories import BackorderProductFactory, ProductFactory, WarehouseFactory


@pytest.fixture
def sites(db):
    return {
        "BER": WarehouseFactory(code="BER"),
        "HAM": WarehouseFactory(code="HAM"),
        "OLD": WarehouseFactory(code="OLD", is_active=False),
    }


@pytest.fixture
def skus(db):
    return {
        "SKU-A": ProductFactory(sku="SKU-A"),
        "SKU-B": ProductFactory(sku="SKU-B"),
        "SKU-C": ProductFactory(sku="SKU-C"),
        "PRE-1": BackorderProductFactory(sku="PRE-1", backorder_limit=7),
    }


@pytest.fixture
def catalogue(sites, skus):
    return sites, skus


def receive_csv(text: str, **options) -> services.BulkReceiveResult:
    options.setdefault("actor", "user:tester")
    return services.stock_receive_bulk(source=io.StringIO(text, newline=""), **options)


def on_hand(sku: str, code: str) -> int | None:
    row = Inventory.objects.filter(product__sku=sku, warehouse__code=code).first()
    return None if row is None else row.on_hand


def stock_snapshot() -> dict:
    """Everything a bulk receive could change, to compare before and after."""
    from inventory.models import AppliedOperation

    return {
        "rows": sorted(
            Inventory.objects.values_list(
                "product__sku", "warehouse__code", "on_hand", "reserved", "version"
            )
        ),
        "ledger": InventoryTransaction.objects.count(),
        "keys": AppliedOperation.objects.count(),
    }


def errors_by_line(result: services.BulkReceiveResult) -> dict[int, str]:
    return {row.line: row.error for row in result.bad_rows}
