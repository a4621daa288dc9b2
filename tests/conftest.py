"""Test-wide set-up: real servers, one database and one Redis db per xdist worker.

Unit tests (tests/unit) use none of this: the fixtures below are only pulled in by the
integration, api and e2e folders through their own conftest files.
"""

from __future__ import annotations

import os

import pytest

from tests.servers import resolve_servers

# Fixed, fictional values: tests must not depend on the developer's environment.
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789")
os.environ.setdefault("INFUSION_ENV", "test")
os.environ.setdefault("INFUSION_LOG_LEVEL", "WARNING")
# The tests' HTTP client plays the reverse proxy: its X-Forwarded-For gives each login its own
# client address. tests/api/test_proxy_trust.py serves the app without it too.
os.environ.setdefault("INFUSION_TRUSTED_PROXIES", "127.0.0.1")

_embedded = None


def pytest_configure(config: pytest.Config) -> None:
    global _embedded
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        _embedded = resolve_servers()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _embedded is not None:
        _embedded.stop()


pytest_plugins = ["tests.fixtures"]
