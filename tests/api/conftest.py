import pytest


@pytest.fixture(autouse=True)
def _clean(clean_state):
    """Every integration test starts from empty tables and an empty Redis db."""
    return clean_state
