import pytest


@pytest.fixture(autouse=True, params=["sql", "python"])
def reserve_engine(request, settings):
    """Races run on both reservation engines."""
    settings.STOCKROOM_RESERVE_ENGINE = request.param
    return request.param
