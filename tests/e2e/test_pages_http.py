"""The pages over plain HTTP (no browser): status codes, redirects, headers, refusals."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e.conftest import PASSWORD, MakeStaff

SESSION_COOKIE = "infusion_session"


async def sign_in(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, next_path: str = ""
) -> httpx.Response:
    return await client.post(
        "/login", data={"username": username, "password": password, "next": next_path}
    )


def hidden_next(html: str) -> str:
    found = re.search(r'name="next" value="([^"]*)"', html)
    assert found, "the login form has no next field"
    return found.group(1)


# ------------------------------------------------------------------ the login form


async def test_login_form_is_public_html_that_no_cache_keeps(client: httpx.AsyncClient) -> None:
    response = await client.get("/login")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert 'data-testid="login-form"' in response.text
    assert 'action="/login"' in response.text
    assert hidden_next(response.text) == "/"
    # A signed-out page shows no account area.
    assert 'data-testid="sign-out"' not in response.text


async def test_login_form_keeps_a_local_next(client: httpx.AsyncClient) -> None:
    response = await client.get("/login", params={"next": "/shipments?status=late"})
    assert hidden_next(response.text) == "/shipments?status=late"


@pytest.mark.parametrize(
    "next_path",
    [
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
    ],
)
async def test_login_form_drops_a_next_that_leaves_the_site(
    client: httpx.AsyncClient, next_path: str
) -> None:
    response = await client.get("/login", params={"next": next_path})
    assert response.status_code == 200
    assert hidden_next(response.text) == "/"


async def test_signing_in_redirects_home_with_a_session_cookie(
    client: httpx.AsyncClient, staff: MakeStaff
) -> None:
    await staff("priya")
    response = await sign_in(client, "priya")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie


async def test_signing_in_returns_to_a_local_next(
    client: httpx.AsyncClient, staff: MakeStaff
) -> None:
    await staff("priya")
    response = await sign_in(client, "priya", next_path="/shipments?status=late")
    assert response.status_code == 303
    assert response.headers["location"] == "/shipments?status=late"


@pytest.mark.parametrize(
    "next_path",
    ["//evil.example", "https://evil.example", "/\\evil.example", "/login", "/fragments/status"],
)
async def test_signing_in_refuses_to_redirect_off_the_site(
    client: httpx.AsyncClient, staff: MakeStaff, next_path: str
) -> None:
    await staff("priya")
    response = await sign_in(client, "priya", next_path=next_path)
    assert response.status_code == 303
    assert response.headers["location"] == "/"


async def test_a_wrong_password_answers_401_with_the_form_and_the_username(
    client: httpx.AsyncClient, staff: MakeStaff
) -> None:
    await staff("priya")
    response = await sign_in(client, "priya", "not the password", next_path="/shipments")
    assert response.status_code == 401
    assert "Wrong username or password." in response.text
    assert 'value="priya"' in response.text
    assert hidden_next(response.text) == "/shipments"
    assert "set-cookie" not in response.headers


async def test_an_unknown_username_gets_the_same_answer(client: httpx.AsyncClient) -> None:
    response = await sign_in(client, "nobody")
    assert response.status_code == 401
    assert "Wrong username or password." in response.text


async def test_an_empty_form_asks_for_both_fields(client: httpx.AsyncClient) -> None:
    response = await client.post("/login", data={"username": "priya", "password": ""})
    assert response.status_code == 400
    assert "Enter your username and password." in response.text
    assert 'value="priya"' in response.text


async def test_too_many_failures_answer_429_with_the_wait(
    client: httpx.AsyncClient, staff: MakeStaff
) -> None:
    await staff("priya")
    from core.settings import load_settings

    limit = load_settings().login_max_failures
    for _ in range(limit):
        assert (await sign_in(client, "priya", "wrong password")).status_code == 401
    # Now even the right password is refused until the lockout ends.
    response = await sign_in(client, "priya")
    assert response.status_code == 429
    assert re.search(r"Too many failed logins; try again in \d+ minutes?\.", response.text)
    assert int(response.headers["retry-after"]) > 0
    assert 'value="priya"' in response.text
    assert "set-cookie" not in response.headers


async def test_a_login_posted_from_another_site_is_refused(
    client: httpx.AsyncClient, staff: MakeStaff
) -> None:
    await staff("priya")
    response = await client.post(
        "/login",
        data={"username": "priya", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "set-cookie" not in response.headers


async def test_a_login_posted_from_this_site_is_accepted(
    client: httpx.AsyncClient, staff: MakeStaff
) -> None:
    await staff("priya")
    response = await client.post(
        "/login",
        data={"username": "priya", "password": PASSWORD},
        headers={"Origin": str(client.base_url).rstrip("/")},
    )
    assert response.status_code == 303


async def test_signed_in_visit_to_login_goes_to_next(
    client: httpx.AsyncClient, staff: MakeStaff
) -> None:
    await staff("priya")
    await sign_in(client, "priya")
    response = await client.get("/login", params={"next": "/shipments"})
    assert response.status_code == 303
    assert response.headers["location"] == "/shipments"


# ------------------------------------------------------------------ staff pages


async def test_a_signed_out_visit_to_home_redirects_to_login(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/"


async def test_the_redirect_keeps_the_query_string(client: httpx.AsyncClient) -> None:
    response = await client.get("/", params={"tab": "today"})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/%3Ftab%3Dtoday"


async def test_a_signed_out_htmx_request_asks_htmx_to_load_the_login_page(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(
        "/fragments/status",
        headers={"HX-Request": "true", "HX-Current-URL": f"{client.base_url}/"},
    )
    assert response.status_code == 401
    assert response.headers["hx-redirect"] == "/login?next=/"


async def test_a_signed_out_fragment_request_without_htmx_goes_to_plain_login(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/fragments/status")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


async def test_the_api_still_answers_401_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/auth/me")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_home_shows_the_signed_in_person_and_the_status(
    client: httpx.AsyncClient, staff: MakeStaff
) -> None:
    await staff("priya", display_name="Priya Raman", roles=("pharmacist", "packer"))
    await sign_in(client, "priya")
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert 'data-testid="current-user">Priya Raman<' in response.text
    assert 'data-testid="role-packer">Packer<' in response.text
    assert 'data-testid="role-pharmacist">Pharmacist<' in response.text
    assert 'data-testid="status-database" data-state="ok"' in response.text
    assert 'data-testid="status-redis" data-state="ok"' in response.text
    assert 'hx-get="/fragments/status"' in response.text


async def test_the_status_fragment_is_the_panel_alone(
    client: httpx.AsyncClient, staff: MakeStaff
) -> None:
    await staff("priya")
    await sign_in(client, "priya")
    response = await client.get("/fragments/status", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div class="status"')
    assert "<html" not in response.text
    assert 'data-testid="status-database" data-state="ok"' in response.text


async def test_html_is_escaped(client: httpx.AsyncClient, staff: MakeStaff) -> None:
    await staff("mallory", display_name="<script>alert(1)</script>")
    await sign_in(client, "mallory")
    response = await client.get("/")
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


# ------------------------------------------------------------------ signing out


async def test_signing_out_ends_the_session(client: httpx.AsyncClient, staff: MakeStaff) -> None:
    await staff("priya")
    await sign_in(client, "priya")
    assert (await client.get("/")).status_code == 200
    old_cookie = client.cookies.get(SESSION_COOKIE)

    response = await client.post("/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert client.cookies.get(SESSION_COOKIE) is None
    assert (await client.get("/")).status_code == 303

    # The old session id is dead on the server too, not just forgotten by this client.
    assert old_cookie
    client.cookies.set(SESSION_COOKIE, old_cookie)
    assert (await client.get("/")).status_code == 303


async def test_signing_out_needs_a_post(client: httpx.AsyncClient, staff: MakeStaff) -> None:
    await staff("priya")
    await sign_in(client, "priya")
    assert (await client.get("/logout")).status_code == 405
    assert (await client.get("/")).status_code == 200


async def test_a_sign_out_posted_from_another_site_is_refused(
    client: httpx.AsyncClient, staff: MakeStaff
) -> None:
    await staff("priya")
    await sign_in(client, "priya")
    response = await client.post("/logout", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert (await client.get("/")).status_code == 200


async def test_signing_out_when_signed_out_lands_on_login(client: httpx.AsyncClient) -> None:
    response = await client.post("/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


# ------------------------------------------------------------------ assets


async def test_htmx_is_served_from_node_modules(client: httpx.AsyncClient) -> None:
    from frontend.assets import VENDOR_FILES

    response = await client.get("/static/vendor/htmx.min.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert response.content == VENDOR_FILES["htmx.min.js"].path.read_bytes()


async def test_every_asset_a_page_links_to_is_served(client: httpx.AsyncClient) -> None:
    html = (await client.get("/login")).text
    urls = re.findall(r'(?:href|src)="(/static/[^"]+)"', html)
    assert {u.split("?")[0] for u in urls} == {
        "/static/css/app.css",
        "/static/img/favicon.svg",
        "/static/vendor/htmx.min.js",
    }
    for url in urls:
        response = await client.get(url)
        assert response.status_code == 200, url
        assert "max-age=86400" in response.headers["cache-control"], url


async def test_unknown_static_files_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/static/vendor/htmx.js")).status_code == 404
    assert (await client.get("/static/css/nope.css")).status_code == 404
