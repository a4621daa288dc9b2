import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _clean(clean_state):
    """Every integration test starts from empty tables and an empty Redis db."""
    return clean_state


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data folder for an embedded PostgreSQL, outside pytest's tmp tree. Run as root, the
    embedded PostgreSQL runs as its own system user, and any pytest session starting on this
    machine resets /tmp/pytest-of-root to 0700, which locks that user out of a tmp_path
    mid-test."""
    folder = Path(tempfile.mkdtemp(prefix="infusion-data-"))
    yield folder / "data"
    shutil.rmtree(folder, ignore_errors=True)
