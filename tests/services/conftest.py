import pytest

from ..conftest import assert_invariants


@pytest.fixture(autouse=True)
def _ledger_matches_balances_after_each_test(db):
    """After every service scenario, the ledger sums equal every row's balances."""
    yield
    assert_invariants()
