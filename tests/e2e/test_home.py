"""The home page's live system status panel, in a real browser."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import MakeStaff
from tests.e2e.page_objects import HomePage, LoginPage, at

pytestmark = pytest.mark.e2e


async def test_the_status_panel_shows_database_and_redis_ok_and_refreshes(
    home_page: HomePage, staff: MakeStaff
) -> None:
    person = await staff("sam", display_name="Sam Ortiz", roles=("packer",))
    page = home_page.page
    await LoginPage(page).open()
    home = await LoginPage(page).sign_in_as(person.username, person.password)

    for part, label in (("database", "Database"), ("redis", "Redis")):
        await expect(home.status_of(part)).to_have_attribute("data-state", "ok")
        await expect(home.status_of(part)).to_contain_text(label)
        await expect(home.testid(f"status-{part}-value")).to_contain_text("OK")

    # htmx (served from node_modules) replaces the panel from /fragments/status every 10 s.
    first_check = await home.status_checked.locator("time").get_attribute("datetime")
    async with page.expect_response(
        lambda r: r.url.endswith("/fragments/status") and r.status == 200, timeout=15_000
    ) as answer:
        pass
    assert (await answer.value).request.headers.get("hx-request") == "true"
    await expect(home.status_checked.locator("time")).not_to_have_attribute(
        "datetime", first_check or ""
    )
    await expect(home.status_of("database")).to_have_attribute("data-state", "ok")
    await expect(home.status_of("redis")).to_have_attribute("data-state", "ok")


async def test_a_session_that_ends_while_home_is_open_sends_the_next_refresh_to_login(
    home_page: HomePage, staff: MakeStaff
) -> None:
    person = await staff("sam", display_name="Sam Ortiz", roles=("packer",))
    page = home_page.page
    await LoginPage(page).open()
    await LoginPage(page).sign_in_as(person.username, person.password)

    # The session ends elsewhere (expired, or signed out in another tab).
    await page.context.clear_cookies()

    # The next poll answers 401 with HX-Redirect: htmx loads the login page as a page,
    # instead of swapping it into the status panel.
    await expect(page).to_have_url(at("/login?next=/"), timeout=15_000)
    await LoginPage(page).expect_here()
    await expect(home_page.status_panel).to_have_count(0)
