import pytest

from ..conftest import assert_invariants


@pytest.fixture(autouse=True, params=["sql", "python"])
def reserve_engine(request, settings):
    """Every service scenario runs on both reservation engines: the one-statement
    PostgreSQL function and the Python/ORM implementation. They must agree."""
    settings.STOCKROOM_RESERVE_ENGINE = request.param
    return request.param


@pytest.fixture(autouse=True)
def _ledger_matches_balances_after_each_test(db):
    """After every service scenario, the ledger sums equal every row's balances."""
    yield
    assert_invariants()
