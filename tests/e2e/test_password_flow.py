"""In the browser, without JavaScript: signing in with an admin-set password leads to
choosing one's own, then to the page asked for."""

from __future__ import annotations

from playwright.async_api import Page, expect

from core import db
from tests.e2e.conftest import MakeStaff
from tests.e2e.page_objects import HomePage, LoginPage, PasswordPage, at


async def test_an_admin_set_password_is_replaced_before_anything_else(
    no_js_page: Page, staff: MakeStaff
) -> None:
    person = await staff("priya", display_name="Priya Raman")
    await db.fetch("UPDATE app_user SET must_change_password = true WHERE id = {}", person.id)
    login = await LoginPage(no_js_page).open("/")

    await login.sign_in(person.username, person.password)

    await expect(no_js_page).to_have_url(at("/password?next=/"))
    password = PasswordPage(no_js_page)
    await password.expect_here()
    await expect(password.required_notice).to_be_visible()
    await no_js_page.goto("/")  # every other page leads back here
    await expect(no_js_page).to_have_url(at("/password?next=/"))

    await password.change(person.password, "a passphrase I chose", again="a typo in it")
    await expect(password.error).to_have_text(
        "The two new passwords differ; type the same one twice."
    )
    await password.change(person.password, "a passphrase I chose")

    home = HomePage(no_js_page)
    await home.expect_here()
    await expect(no_js_page).to_have_url(at("/"))
    await expect(home.greeting).to_have_text("Hello, Priya Raman")
