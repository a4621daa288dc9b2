"""Malformed input is the sender's mistake: a 4xx with a sentence, never a 500, against the
served app (raw sockets where httpx would tidy the request up)."""

from __future__ import annotations

import html
import re

import pytest

from core.identity.model import USERNAME_MAX
from core.web.requests import NOT_UTF8, TOO_DEEP
from frontend.pages.session import LOGIN_FORM_MAX_BYTES
from tests.api import raw_http
from tests.api.test_auth_support import (
    PASSWORD,
    audit_events,
    logged_in_client,
    make_user,
    without_request_id,
)
from tests.servers import ROOT

REFUSED_FORM = "This form was sent from another site and was refused."
JSON = {"content-type": "application/json"}


def problem(status: int, code: str, detail: str, instance: str) -> dict:
    titles = {400: "Bad request", 404: "Not found", 414: "URI too long"}
    return {
        "type": f"about:blank#{code}",
        "title": titles[status],
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
    }


def error_page_message(text: str) -> str:
    [message] = re.findall(r'data-testid="error-message">([^<]*)<', text)
    return html.unescape(message)


# ---------------------------------------------------------------- JSON bodies


NOT_UTF8_LOGIN = b'{"username":"adm\xff\xfein","password":"x"}'
DEEP_ARRAYS = b"[" * 2000 + b"]" * 2000
DEEP_OBJECTS = b'{"a":' * 2000 + b"1" + b"}" * 2000


@pytest.mark.parametrize(
    ("body", "detail"),
    [(NOT_UTF8_LOGIN, NOT_UTF8), (DEEP_ARRAYS, TOO_DEEP), (DEEP_OBJECTS, TOO_DEEP)],
    ids=["not-utf8", "deep-arrays", "deep-objects"],
)
async def test_a_login_body_that_cannot_be_decoded_is_a_400(http, body, detail):
    response = await http.post("/api/auth/login", content=body, headers=JSON)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert without_request_id(response) == problem(400, "bad_request", detail, "/api/auth/login")
    assert await audit_events() == []


@pytest.mark.parametrize(
    ("body", "detail"),
    [(b'{"display_name":"Tess \xff"}', NOT_UTF8), (DEEP_OBJECTS, TOO_DEEP)],
    ids=["not-utf8", "deep"],
)
async def test_account_changes_whose_body_cannot_be_decoded_are_400s(http, body, detail):
    await make_user("ada", "admin")
    tess = await make_user("tess", "technician")
    admin = await logged_in_client(str(http.base_url), "ada")
    try:
        changes = [
            ("PATCH", f"/api/users/{tess.id}"),
            ("PUT", f"/api/users/{tess.id}/password"),
        ]
        for method, path in changes:
            response = await admin.request(method, path, content=body, headers=JSON)
            assert response.status_code == 400, (method, response.text)
            assert without_request_id(response) == problem(400, "bad_request", detail, path)
        # Nothing changed: the only event is ada's sign-in.
        assert [e["action"] for e in await audit_events()] == ["user.logged_in"]
    finally:
        await admin.aclose()


# ---------------------------------------------------------------- headers that do not parse


@pytest.mark.parametrize("path", ["/login", "/logout"])
async def test_a_form_post_with_an_unparsable_origin_is_refused_as_foreign(http, path):
    await make_user("tess", "technician")
    response = await http.post(
        path,
        data={"username": "tess", "password": PASSWORD},
        headers={"origin": "http://["},
    )

    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert error_page_message(response.text) == REFUSED_FORM
    assert "set-cookie" not in response.headers
    assert await audit_events() == []


async def test_an_unparsable_hx_current_url_sends_a_signed_out_panel_to_plain_login(http):
    response = await http.get(
        "/fragments/status", headers={"HX-Request": "true", "HX-Current-URL": "http://[::1"}
    )

    assert response.status_code == 401
    assert response.headers["hx-redirect"] == "/login"
    assert response.content == b""


# ---------------------------------------------------------------- static files


@pytest.mark.parametrize(
    ("raw_path", "instance"),
    [
        ("/static/css/app.css%00.txt", "/static/css/app.css\x00.txt"),
        ("/static/css", "/static/css"),
        ("/static/css/", "/static/css"),  # Litestar drops a trailing slash
        ("/static/../pyproject.toml", "/static/../pyproject.toml"),
        ("/static/%2e%2e/%2e%2e/pyproject.toml", "/static/../../pyproject.toml"),
        ("/static/vendor/nothing.js", None),
        # A name longer than the file system allows: "File name too long" was a 500.
        ("/static/" + "a" * 256, "/static/" + "a" * 256),
        ("/static/css/" + "b" * 300 + ".css", "/static/css/" + "b" * 300 + ".css"),
    ],
)
async def test_static_paths_that_name_no_file_are_404s_that_disclose_nothing(
    served_app, raw_path, instance
):
    # Raw: httpx would resolve `..` and tidy the path before sending it.
    response = raw_http.exchange(served_app.url, raw_http.get(raw_path))

    assert response.status == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_found"
    if instance is not None:
        assert body["detail"] == "No such static file."
        assert body["instance"] == instance
    # Nothing of where the files live on the server.
    assert str(ROOT) not in response.body.decode()
    assert "frontend" not in response.body.decode()


async def test_static_files_are_still_served(http):
    css = await http.get("/static/css/app.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert css.headers["cache-control"] == "max-age=86400, public"


# ---------------------------------------------------------------- sizes


async def test_a_100_kb_query_string_is_a_414_problem(served_app):
    response = raw_http.exchange(served_app.url, raw_http.get("/health?q=" + "a" * 100_000))

    assert response.status == 414
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["connection"] == "close"
    body = response.json()
    assert body.pop("request_id") == response.headers["x-request-id"]
    assert body == {
        "type": "about:blank#uri_too_long",
        "title": "URI too long",
        "status": 414,
        "detail": "The address is longer than 16,384 bytes; send long values in a request "
        "body instead.",
        "code": "uri_too_long",
    }


async def test_a_query_string_under_the_limit_is_served(http):
    response = await http.get("/health", params={"q": "a" * 15_000})
    assert response.status_code == 200


async def test_headers_larger_than_64_kib_are_a_431_problem(served_app):
    data = raw_http.get("/health", *(f"X-Filler-{i}: {'a' * 8000}" for i in range(9)))
    response = raw_http.exchange(served_app.url, data)

    assert response.status == 431
    assert response.json()["code"] == "headers_too_large"
    assert response.json()["detail"] == "The request headers are larger than 65,536 bytes together."


async def test_bytes_that_are_not_http_are_a_400_problem(served_app):
    response = raw_http.exchange(served_app.url, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n\r\n")

    assert response.status == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "The request is not valid HTTP/1.1."


# ---------------------------------------------------------------- the sign-in form


def echoed_username(page: str) -> str:
    [value] = re.findall(r'name="username" type="text" value="([^"]*)"', page)
    return html.unescape(value)


async def test_the_sign_in_form_echoes_at_most_a_username_without_control_characters(http):
    typed = "te\x00ss\x1b" + "x" * 5000

    response = await http.post("/login", data={"username": typed, "password": "wrong"})

    assert response.status_code == 401
    assert echoed_username(response.text) == ("tess" + "x" * 5000)[:USERNAME_MAX]
    assert "\x00" not in response.text
    assert len(response.content) < 5000


async def test_a_sign_in_form_larger_than_any_real_one_is_a_413_page(http):
    response = await http.post(
        "/login", data={"username": "u" * (9 * 1024 * 1024), "password": "wrong"}
    )

    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    assert len(response.content) < 5000
    assert await audit_events() == []


async def test_a_sign_in_form_of_the_largest_real_size_is_read(http):
    await make_user("tess", "technician")
    password = "ü" * 1024  # 2 UTF-8 bytes, 6 escaped bytes a character
    body = {"username": "tess", "password": password, "next": "/" + "a" * 1999}
    response = await http.post("/login", data=body)

    assert len(str(body)) < LOGIN_FORM_MAX_BYTES
    assert response.status_code == 401  # read and checked (the password is wrong)
