"""Signing in and out in a real browser."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import MakeStaff
from tests.e2e.page_objects import HomePage, LoginPage, at

pytestmark = pytest.mark.e2e


async def test_the_right_password_lands_on_home_with_name_and_roles(
    login_page: LoginPage, staff: MakeStaff
) -> None:
    person = await staff("priya", display_name="Priya Raman", roles=("pharmacist", "packer"))
    await login_page.open()

    home = await login_page.sign_in_as(person.username, person.password)

    await expect(home.page).to_have_url(at("/"))
    await expect(home.greeting).to_have_text("Hello, Priya Raman")
    await expect(home.current_user).to_have_text("Priya Raman")
    # Roles in the fixed order identity keeps them in.
    assert await home.role_names() == ["Packer", "Pharmacist"]
    await expect(home.testid("nav-home")).to_have_attribute("aria-current", "page")


async def test_a_wrong_password_shows_the_message_and_keeps_the_username(
    login_page: LoginPage, staff: MakeStaff
) -> None:
    person = await staff("priya")
    await login_page.open()

    await login_page.sign_in(person.username, "not my password")

    await expect(login_page.page).to_have_url(at("/login"))
    await expect(login_page.error).to_have_text("Wrong username or password.")
    await expect(login_page.username).to_have_value("priya")
    await expect(login_page.password).to_have_value("")
    # The message is tied to the fields for screen readers.
    await expect(login_page.password).to_have_attribute("aria-invalid", "true")
    await expect(login_page.password).to_be_focused()


async def test_a_signed_out_visit_goes_to_login_and_comes_back_after_signing_in(
    page: Page, staff: MakeStaff
) -> None:
    person = await staff("priya", display_name="Priya Raman")

    await page.goto("/")

    await expect(page).to_have_url(at("/login?next=/"))
    login = LoginPage(page)
    await login.expect_here()
    home = await login.sign_in_as(person.username, person.password)
    await expect(page).to_have_url(at("/"))
    await expect(home.greeting).to_have_text("Hello, Priya Raman")


async def test_signing_out_ends_the_session(home_page: HomePage, staff: MakeStaff) -> None:
    person = await staff("priya")
    page = home_page.page
    await LoginPage(page).open()
    home = await LoginPage(page).sign_in_as(person.username, person.password)

    login = await home.sign_out()

    await expect(page).to_have_url(at("/login"))
    await expect(login.current_user).to_have_count(0)
    # Neither the back button nor a reload shows the signed-in page again.
    await page.go_back()
    await expect(page).to_have_url(at("/login?next=/"))
    await login.expect_here()
    await page.goto("/")
    await expect(page).to_have_url(at("/login?next=/"))
    await page.reload()
    await expect(page).to_have_url(at("/login?next=/"))
    cookies = await page.context.cookies()
    assert [c for c in cookies if c["name"] == "infusion_session"] == []


async def test_the_login_page_works_without_javascript(no_js_page: Page, staff: MakeStaff) -> None:
    person = await staff("priya", display_name="Priya Raman")
    login = LoginPage(no_js_page)
    await no_js_page.goto("/")
    await expect(no_js_page).to_have_url(at("/login?next=/"))

    await login.sign_in(person.username, "not my password")
    await expect(login.error).to_have_text("Wrong username or password.")
    await expect(login.username).to_have_value("priya")

    home = await login.sign_in_as(person.username, person.password)
    await expect(no_js_page).to_have_url(at("/"))
    await expect(home.greeting).to_have_text("Hello, Priya Raman")
    # Without htmx the status panel is still there, rendered by the server.
    await expect(home.status_of("database")).to_have_attribute("data-state", "ok")

    await home.sign_out()
    await expect(no_js_page).to_have_url(at("/login"))
