"""The session cookie's attributes: HttpOnly and SameSite=Lax always, Secure behind HTTPS."""

from __future__ import annotations

import os

import httpx
import pytest

from tests.api.test_auth_support import (
    cookie_attributes,
    login,
    make_user,
    session_cookie_header,
)
from tests.fixtures import ServedApp, serve_app


@pytest.fixture(scope="module")
def https_app(database, tmp_path_factory) -> ServedApp:
    """The same app configured for a public https:// URL (served on plain http here)."""
    env = {**os.environ, "INFUSION_PUBLIC_URL": "https://pharmacy.example"}
    app = serve_app(env, tmp_path_factory.mktemp("https-app") / "app.log")
    yield app
    app.stop()


async def test_session_cookie_is_httponly_lax_and_not_secure_on_http(http):
    await make_user("tess", "technician")

    response = await login(http, "tess")

    attributes = cookie_attributes(session_cookie_header(response))
    assert attributes == {
        "httponly": "",
        "max-age": str(12 * 3600),  # INFUSION_SESSION_HOURS defaults to 12
        "path": "/",
        "samesite": "lax",
    }


async def test_session_cookie_is_secure_when_the_public_url_is_https(https_app, clean_state):
    await make_user("tess", "technician")
    async with httpx.AsyncClient(base_url=https_app.url, timeout=10) as client:
        response = await login(client, "tess")

    assert response.status_code == 200
    attributes = cookie_attributes(session_cookie_header(response))
    assert attributes == {
        "httponly": "",
        "max-age": str(12 * 3600),
        "path": "/",
        "samesite": "lax",
        "secure": "",
    }
