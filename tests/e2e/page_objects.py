"""Page objects: what a person sees and does on each page, in their words.

Tests talk to these, never to selectors: when a page's markup changes, one class changes.
Elements are found by their `data-testid` hooks (Playwright's `get_by_test_id`), which the
templates keep stable on purpose.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from playwright.async_api import Locator, Page, expect


def at(path: str) -> re.Pattern[str]:
    """A URL on the served app with exactly this path and query, for `expect(page).to_have_url`."""
    return re.compile(rf"^https?://[^/]+{re.escape(path)}$")


class BasePage:
    """What every page has: the header with who is signed in, the main menu."""

    path = "/"

    def __init__(self, page: Page) -> None:
        self.page = page

    def testid(self, name: str) -> Locator:
        return self.page.get_by_test_id(name)

    @property
    def site_name(self) -> Locator:
        return self.testid("site-name")

    @property
    def current_user(self) -> Locator:
        return self.testid("current-user")

    @property
    def sign_out_button(self) -> Locator:
        return self.testid("sign-out")

    async def sign_out(self) -> LoginPage:
        await self.sign_out_button.click()
        login = LoginPage(self.page)
        await login.expect_here()
        return login


class LoginPage(BasePage):
    path = "/login"

    @property
    def username(self) -> Locator:
        return self.testid("login-username")

    @property
    def password(self) -> Locator:
        return self.testid("login-password")

    @property
    def submit(self) -> Locator:
        return self.testid("login-submit")

    @property
    def error(self) -> Locator:
        return self.testid("login-error")

    async def open(self, next_path: str | None = None) -> LoginPage:
        target = self.path if next_path is None else f"{self.path}?next={quote(next_path)}"
        await self.page.goto(target)
        await self.expect_here()
        return self

    async def expect_here(self) -> None:
        await expect(self.page).to_have_title(f"Sign in · {await self._site_name()}")
        await expect(self.submit).to_be_visible()

    async def _site_name(self) -> str:
        return (await self.site_name.inner_text()).strip()

    async def sign_in(self, username: str, password: str) -> None:
        """Fill in the form and send it; the caller checks where it landed."""
        await self.username.fill(username)
        await self.password.fill(password)
        async with self.page.expect_navigation():
            await self.submit.click()

    async def sign_in_as(self, username: str, password: str) -> HomePage:
        await self.sign_in(username, password)
        home = HomePage(self.page)
        await home.expect_here()
        return home


class HomePage(BasePage):
    path = "/"

    @property
    def greeting(self) -> Locator:
        return self.testid("greeting")

    @property
    def roles(self) -> Locator:
        return self.testid("roles")

    @property
    def status_panel(self) -> Locator:
        return self.testid("status-panel")

    def status_of(self, part: str) -> Locator:
        """One line of the system status panel: `database` or `redis`."""
        return self.testid(f"status-{part}")

    @property
    def status_checked(self) -> Locator:
        return self.testid("status-checked")

    async def open(self) -> HomePage:
        await self.page.goto(self.path)
        await self.expect_here()
        return self

    async def expect_here(self) -> None:
        await expect(self.greeting).to_be_visible()

    async def role_names(self) -> list[str]:
        return [text.strip() for text in await self.roles.get_by_role("listitem").all_inner_texts()]


class PasswordPage(BasePage):
    """`/password`: choose a new password (where an admin-set password leads)."""

    path = "/password"

    @property
    def required_notice(self) -> Locator:
        return self.testid("password-required")

    @property
    def error(self) -> Locator:
        return self.testid("password-error")

    async def expect_here(self) -> None:
        await expect(self.testid("password-form")).to_be_visible()

    async def change(self, current: str, new: str, again: str | None = None) -> None:
        """Fill in the form and send it; the caller checks where it landed."""
        await self.testid("password-current").fill(current)
        await self.testid("password-new").fill(new)
        await self.testid("password-new-again").fill(new if again is None else again)
        async with self.page.expect_navigation():
            await self.testid("password-submit").click()
