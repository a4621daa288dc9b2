"""`/password` over plain HTTP: a password an admin set leads there, and only there, until the
person has chosen their own; the page works as a plain form (no JavaScript)."""

from __future__ import annotations

import re

import httpx

from core import db
from tests.e2e.conftest import PASSWORD, MakeStaff
from tests.e2e.test_pages_http import sign_in

NEW_PASSWORD = "my own choice of words"


async def must_change(user_id: int) -> None:
    await db.fetch("UPDATE app_user SET must_change_password = true WHERE id = {}", user_id)


async def change(client: httpx.AsyncClient, current: str, new: str, again: str | None = None):
    return await client.post(
        "/password",
        data={
            "current_password": current,
            "new_password": new,
            "new_password_again": new if again is None else again,
            "next": "/?tab=today",
        },
    )


async def test_signing_in_with_an_admin_set_password_leads_to_the_password_page(
    client: httpx.AsyncClient, staff: MakeStaff
) -> None:
    priya = await staff("priya")
    await must_change(priya.id)

    signed_in = await sign_in(client, "priya", next_path="/?tab=today")
    home = await client.get("/")
    login_again = await client.get("/login")
    page = await client.get(signed_in.headers["location"])

    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/password?next=/%3Ftab%3Dtoday"
    assert (home.status_code, home.headers["location"]) == (303, "/password?next=/")
    assert (login_again.status_code, login_again.headers["location"]) == (303, "/password?next=/")
    assert page.status_code == 200
    assert 'data-testid="password-required"' in page.text
    assert 'data-testid="password-form"' in page.text
    assert 'name="next" value="/?tab=today"' in page.text
    assert 'data-testid="nav-home"' not in page.text  # no menu: nothing else works yet
    assert "<script>" not in page.text


async def test_choosing_a_new_password_opens_the_console_again(
    client: httpx.AsyncClient, staff: MakeStaff
) -> None:
    priya = await staff("priya")
    await must_change(priya.id)
    await sign_in(client, "priya")

    response = await change(client, PASSWORD, NEW_PASSWORD)

    assert response.status_code == 303
    assert response.headers["location"] == "/?tab=today"
    assert (await client.get("/")).status_code == 200
    [row] = await db.fetch("SELECT must_change_password FROM app_user WHERE id = {}", priya.id)
    assert row["must_change_password"] is False
    client.cookies.clear()
    assert (await sign_in(client, "priya", NEW_PASSWORD)).headers["location"] == "/"


async def test_refusals_re_show_the_form_with_a_sentence_and_change_nothing(
    client: httpx.AsyncClient, staff: MakeStaff
) -> None:
    priya = await staff("priya")
    await sign_in(client, "priya")
    [before] = await db.fetch("SELECT password_hash FROM app_user WHERE id = {}", priya.id)

    cases = [
        (await change(client, PASSWORD, NEW_PASSWORD, "something else"), 400,
         "The two new passwords differ; type the same one twice."),
        (await change(client, "not the current one", NEW_PASSWORD), 422,
         "The current password is not correct."),
        (await change(client, PASSWORD, "password1234"), 422,
         "This password is on a list of common or breached passwords; choose another."),
        (await change(client, "", ""), 400, "Enter your current password and the new one twice."),
    ]  # fmt: skip

    for response, status, sentence in cases:
        assert response.status_code == status
        error = re.search(r'data-testid="password-error">\s*(.*?)\s*</div>', response.text)
        assert error is not None
        assert error.group(1) == sentence
    assert await db.fetch("SELECT password_hash FROM app_user WHERE id = {}", priya.id) == [before]


async def test_the_password_page_needs_a_session_and_our_own_origin(
    client: httpx.AsyncClient, staff: MakeStaff
) -> None:
    await staff("priya")
    signed_out = await client.get("/password")
    await sign_in(client, "priya")
    cross_site = await client.post(
        "/password",
        data={"current_password": PASSWORD, "new_password": NEW_PASSWORD,
              "new_password_again": NEW_PASSWORD},
        headers={"Origin": "https://evil.example"},
    )  # fmt: skip

    assert (signed_out.status_code, signed_out.headers["location"]) == (
        303,
        "/login?next=/password",
    )
    assert cross_site.status_code == 403
