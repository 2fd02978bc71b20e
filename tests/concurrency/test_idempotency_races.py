"""A duplicate under the same idempotency key that reaches the database while its
twin is still running (a client retrying after a timeout, a double submit reaching
two workers) replays the twin once the twin commits, whatever the twin did to the
stock (`services.idempotency.run_idempotent`).

It waits on the key, which `run_idempotent` locks before the operation touches a
row. Before, it waited on the twin's stock rows and, once the twin committed, ran
its own body against the stock the twin had left: refused (insufficient stock, an
order already closed, on hand below zero) although the same request had succeeded.
Every operation below has stock for exactly one run, and both engines run
(conftest). The deterministic test failed on main for each operation; the barrier
race is the same claim with the interleaving left to the scheduler.
"""

import threading

import pytest
from django.db import transaction

from inventory import services
from inventory.models import InventoryTransaction
from inventory.services import OrderLine, ReserveLine, TransferLine

from ..conftest import assert_invariants, receive
from ..factories import ProductFactory, WarehouseFactory
from .helpers import Session, blocked_by, wait_event, wait_until
from .test_races import run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "retry-after-timeout-1"


def _transfer():
    return services.stock_transfer(
        source="BER",
        destination="HAM",
        lines=[TransferLine("ONE", 5)],
        actor="client:wms",
        idempotency_key=KEY,
    )


def _adjust():
    return services.stock_adjust(
        sku="ONE", warehouse="BER", delta=-5, reason="shrinkage", actor="client:wms",
        idempotency_key=KEY,
    )  # fmt: skip


def _move():
    return services.stock_move_state(
        sku="ONE", warehouse="BER", from_state="sellable", to_state="damaged", quantity=5,
        reason="water damage", actor="user:dock", idempotency_key=KEY,
    )  # fmt: skip


def _fulfil():
    return services.reservation_fulfill(
        order_id="o-1", actor="client:shop", lines=[OrderLine("ONE", 5)], idempotency_key=KEY
    )


# name -> (the operation, the ledger type of its one change)
OPERATIONS = {
    "instant transfer": (_transfer, "TRANSFER"),
    "adjust by a delta": (_adjust, "ADJUST"),
    "move to damaged": (_move, "MOVE"),
    "fulfil": (_fulfil, "FULFILL"),
}


def given_five_units(name):
    """5 units of ONE in BER, held by order o-1 when the operation is the fulfilment."""
    WarehouseFactory(code="BER")
    WarehouseFactory(code="HAM")
    ProductFactory(sku="ONE")
    receive("ONE", "BER", 5)
    services.stock_rows_create([("ONE", "HAM")])
    if name == "fulfil":
        services.stock_reserve(
            order_id="o-1", lines=[ReserveLine("ONE", "BER", 5)], actor="client:shop"
        )


def _ids(result):
    return [t.id for t in result.transactions]


def _changes(ledger_type):
    return InventoryTransaction.objects.filter(type=ledger_type).count()


@pytest.mark.parametrize("name", OPERATIONS)
def test_a_duplicate_waiting_on_its_running_twin_replays_it(name):
    """Deterministic: the first holds its transaction open after its change; the
    duplicate is seen waiting on it; the first commits; the duplicate answers the
    first's result and nothing changes twice."""
    operation, ledger_type = OPERATIONS[name]
    given_five_units(name)
    holding, release = threading.Event(), threading.Event()

    def first():
        with transaction.atomic():
            result = operation()
            holding.set()
            assert release.wait(120)
        return result

    a = Session(first, "first").begin()
    wait_event(holding, a, "the first holds its change uncommitted")
    b = Session(operation, "duplicate").begin()
    wait_until(lambda: blocked_by(b.pid, a.pid), "the duplicate waits for the first")
    release.set()
    a.finish()
    b.finish()
    assert a.error is None, a.error
    assert b.error is None, b.error  # on main: insufficient stock, order closed, ...
    assert b.result.transactions and _ids(b.result) == _ids(a.result)
    assert _changes(ledger_type) == 1 + (ledger_type == "TRANSFER")  # out and in
    assert_invariants()


@pytest.mark.parametrize("name", OPERATIONS)
def test_duplicates_started_together_apply_once(name):
    """Four duplicates released by a barrier: all answer the one result."""
    operation, ledger_type = OPERATIONS[name]
    given_five_units(name)
    outcomes = run_concurrently(4, lambda i: operation())
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert not errors, errors
    assert len({tuple(_ids(o)) for o in outcomes}) == 1
    assert _changes(ledger_type) == 1 + (ledger_type == "TRANSFER")
    assert_invariants()
