"""Headers every answer needs (api.middleware): the pages' CSP and friends on every HTML answer,
nosniff everywhere, HSTS behind https, no-store unless a route chose a cache policy; and HEAD
wherever GET works, checked over the app's own route list."""

from __future__ import annotations

import httpx
import pytest

from api.app import create_app
from core.web.security import HSTS, PAGE_HEADERS
from tests.api.test_auth_support import PASSWORD, logged_in_client, make_user

# Anything a GET route can be asked for; a new route with path parameters must add itself.
PATH_SAMPLES = {
    "/static/{name:path}": "/static/css/app.css",
    "/static/vendor/{name:str}": "/static/vendor/htmx.min.js",
    # No YAML render plugin: a 404, which HEAD must answer alike too.
    "/schema/{path:str}": "/schema/openapi.yaml",
}
VOLATILE = {"date", "x-request-id", "set-cookie", "content-length"}


def assert_page_headers(response: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("text/html"), response.request.url
    for name, value in PAGE_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name)
    assert response.headers["cache-control"] == "no-store", response.request.url


async def test_every_html_answer_has_the_page_headers_error_pages_and_schema_included(http):
    await make_user("tess", "technician")
    answers = [
        await http.get("/login"),
        await http.get("/schema"),
        # The sign-in form again, 401, and an error page, 403.
        await http.post("/login", data={"username": "tess", "password": "not it"}),
        await http.post(
            "/login", data={"username": "tess", "password": PASSWORD}, headers={"origin": "x"}
        ),
    ]
    assert [a.status_code for a in answers] == [200, 200, 401, 403]
    for answer in answers:
        assert_page_headers(answer)
    assert answers[1].headers["content-security-policy"] == PAGE_HEADERS["Content-Security-Policy"]


async def test_signed_in_pages_and_api_answers_are_never_stored(http):
    await make_user("tess", "technician")
    client = await logged_in_client(str(http.base_url), "tess")
    try:
        home = await client.get("/")
        assert home.status_code == 200
        assert_page_headers(home)
        me = await client.get("/api/auth/me")
        assert (me.status_code, me.headers["cache-control"]) == (200, "no-store")
        assert "content-security-policy" not in me.headers
        assert me.headers["x-content-type-options"] == "nosniff"
    finally:
        await client.aclose()


async def test_a_new_api_token_is_never_stored(http):
    await make_user("tess", "technician")
    client = await logged_in_client(str(http.base_url), "tess")
    try:
        created = await client.post("/api/auth/tokens", json={"name": "label printer"})
        assert created.status_code == 201
        assert created.json()["token"].startswith("inf_")
        assert created.headers["cache-control"] == "no-store"
        assert created.headers["x-content-type-options"] == "nosniff"
    finally:
        await client.aclose()


async def test_problems_are_not_stored_and_not_sniffed(http):
    response = await http.get("/api/no-such-thing")
    assert response.status_code == 404
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_static_files_keep_their_own_cache_policy(http):
    response = await http.get("/static/vendor/htmx.min.js")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "max-age=86400, public"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_hsts_on_every_answer_when_the_public_url_is_https(production_like):
    for path in ("/health", "/login", "/static/css/app.css", "/no/such/page", "/schema"):
        response = await production_like.get(path)
        assert response.headers["strict-transport-security"] == HSTS, path
    assert HSTS == "max-age=31536000"


async def test_no_hsts_over_plain_http(http):
    assert "strict-transport-security" not in (await http.get("/health")).headers


# ---------------------------------------------------------------- HEAD


def get_paths(settings, user_id: int) -> list[str]:
    """Every GET route of the app, with sample values for its path parameters."""
    paths = []
    for route in create_app(settings).routes:
        if "GET" not in getattr(route, "methods", ()):
            continue
        if route.path in PATH_SAMPLES:
            paths.append(PATH_SAMPLES[route.path])
            continue
        path = route.path
        for name, parameter in route.path_parameters.items():
            assert parameter.type is int, f"add a sample for {route.path} to PATH_SAMPLES"
            path = path.replace(f"{{{parameter.full}}}", str(user_id))
            assert name not in path
        paths.append(path)
    return paths


@pytest.mark.parametrize("who", ["anonymous", "admin"])
async def test_head_answers_like_get_without_a_body_on_every_get_route(http, test_settings, who):
    admin = await make_user("ada", "admin")
    client = httpx.AsyncClient(base_url=str(http.base_url), timeout=10)
    if who == "admin":
        await client.aclose()
        client = await logged_in_client(str(http.base_url), "ada")
    try:
        paths = get_paths(test_settings, admin.id)
        assert "/health" in paths
        assert "/schema" in paths
        for path in paths:
            got = await client.get(path)
            head = await client.head(path)
            assert head.status_code == got.status_code, path
            assert head.content == b"", path
            assert {k: v for k, v in head.headers.items() if k not in VOLATILE} == {
                k: v for k, v in got.headers.items() if k not in VOLATILE
            }, path
            if "content-length" in got.headers:
                assert "content-length" in head.headers, path
    finally:
        await client.aclose()
