"""The layout every page shares: keyboard use, small screens, the header."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import MakeStaff
from tests.e2e.page_objects import HomePage, LoginPage, at

pytestmark = pytest.mark.e2e


async def _signed_in(page: Page, staff: MakeStaff) -> HomePage:
    person = await staff("jordan", display_name="Jordan Ellis, CPhT", roles=("technician",))
    await LoginPage(page).open()
    return await LoginPage(page).sign_in_as(person.username, person.password)


async def test_the_first_tab_reaches_the_skip_link_and_it_moves_focus_to_main(
    page: Page, staff: MakeStaff
) -> None:
    home = await _signed_in(page, staff)

    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    await expect(skip).to_be_focused()
    await expect(skip).to_be_in_viewport()
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()
    await expect(home.greeting).to_be_visible()


async def test_signing_out_works_from_the_keyboard(page: Page, staff: MakeStaff) -> None:
    home = await _signed_in(page, staff)

    await home.sign_out_button.focus()
    await page.keyboard.press("Enter")

    await expect(page).to_have_url(at("/login"))


async def test_the_home_page_fits_a_phone_screen(page: Page, staff: MakeStaff) -> None:
    await page.set_viewport_size({"width": 360, "height": 740})
    home = await _signed_in(page, staff)

    await expect(home.current_user).to_be_visible()
    await expect(home.sign_out_button).to_be_in_viewport()
    await expect(home.status_of("database")).to_be_visible()
    # Nothing is wider than the screen (no sideways scrolling on a phone).
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow == 0


async def test_the_landmarks_are_there_for_screen_readers(page: Page, staff: MakeStaff) -> None:
    await _signed_in(page, staff)

    await expect(page.get_by_role("banner")).to_have_count(1)
    await expect(page.get_by_role("navigation", name="Main")).to_have_count(1)
    await expect(page.get_by_role("main")).to_have_count(1)
    await expect(page.get_by_role("contentinfo")).to_have_count(1)
    await expect(page.get_by_role("heading", level=1)).to_have_count(1)
    await expect(page.locator("html")).to_have_attribute("lang", "en")
