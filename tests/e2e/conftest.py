"""The page-test harness: the real app served on loopback, driven by Debian's headless Chromium.

- `browser` (one per test worker): Chromium launched through Playwright's async API on the
  session event loop. Playwright's own browser downloads are not used: the machine's
  /usr/bin/chromium is (scripts/bootstrap installs it; INFUSION_CHROMIUM points elsewhere).
- `context` / `page` (one per test): a fresh profile, so no cookie leaks between tests; the
  page's screenshot is saved to test-artifacts/screenshots/<test>.png when the test ends, and
  a script error or a Content-Security-Policy refusal on the page fails the test.
- `no_js_page`: the same with JavaScript turned off (login must work without it).
- `staff`: makes a staff account through the identity service, inside a transaction, the way
  an edge would.

Every test that uses the served app (through `page`, `no_js_page`, `client` or `staff`)
starts from empty tables and an empty Redis (`clean_state`); pure tests here need neither.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from core.settings import Settings
from tests.e2e.page_objects import HomePage, LoginPage
from tests.fixtures import ServedApp
from tests.servers import ROOT

CHROMIUM = Path(os.environ.get("INFUSION_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
# Long enough for a loaded 2-core CI machine, short enough that a wrong wait fails quickly.
TIMEOUT_MS = 10_000

PASSWORD = "violet kettle under the stairs"


# ------------------------------------------------------------------ the browser


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: run `make bootstrap` (or "
            "`apt-get install -y --no-install-recommends chromium`), or set INFUSION_CHROMIUM.",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, timeout=30_000
        )
        yield launched
        await launched.close()


@dataclass
class PageProblems:
    """Script errors and CSP refusals seen by a page; either one fails the test."""

    errors: list[str]

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        # A 401 or 429 page is an expected answer here, which Chromium reports as a failed
        # resource load; anything else at error level (a CSP refusal, a script error) is a bug.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(f"console: {message.text}")


async def _new_context(
    browser: Browser, served_app: ServedApp, *, javascript: bool = True
) -> BrowserContext:
    context = await browser.new_context(
        base_url=served_app.url,
        java_script_enabled=javascript,
        viewport={"width": 1280, "height": 800},
        locale="en-US",
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    return context


def _screenshot_path(request: pytest.FixtureRequest, suffix: str = "") -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}{suffix}.png"


async def _page_for_test(
    context: BrowserContext, request: pytest.FixtureRequest, suffix: str = ""
) -> AsyncIterator[Page]:
    page = await context.new_page()
    problems = PageProblems(errors=[])
    problems.watch(page)
    try:
        yield page
    finally:
        if not page.is_closed():
            await page.screenshot(path=_screenshot_path(request, suffix), full_page=True)
        await context.close()
    assert not problems.errors, "the page reported problems:\n" + "\n".join(problems.errors)


@pytest.fixture
async def page(
    browser: Browser,
    served_app: ServedApp,
    clean_state: Settings,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Page]:
    context = await _new_context(browser, served_app)
    async for page in _page_for_test(context, request):
        yield page


@pytest.fixture
async def no_js_page(
    browser: Browser,
    served_app: ServedApp,
    clean_state: Settings,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Page]:
    context = await _new_context(browser, served_app, javascript=False)
    async for page in _page_for_test(context, request, suffix="-no-js"):
        yield page


@pytest.fixture
def login_page(page: Page) -> LoginPage:
    return LoginPage(page)


@pytest.fixture
def home_page(page: Page) -> HomePage:
    return HomePage(page)


# ------------------------------------------------------------------ people


@dataclass(frozen=True)
class Staff:
    id: int
    username: str
    password: str
    display_name: str
    roles: tuple[str, ...]


MakeStaff = Callable[..., Awaitable[Staff]]


@pytest.fixture
def staff(clean_state: Settings) -> MakeStaff:
    """`await staff(username, display_name=..., roles=(...))`: a real account, via identity."""
    from core import db
    from core.identity.services import create_user

    async def make(
        username: str = "priya",
        *,
        display_name: str = "Priya Raman",
        roles: tuple[str, ...] = ("pharmacist",),
        password: str = PASSWORD,
    ) -> Staff:
        async with db.transaction():
            user = await create_user(
                username=username,
                display_name=display_name,
                password=password,
                roles=roles,
                actor="test:e2e",
            )
        return Staff(
            id=user.id,
            username=user.username,
            password=password,
            display_name=user.display_name,
            roles=tuple(user.roles),
        )

    return make


# ------------------------------------------------------------------ plain HTTP


@pytest.fixture
async def client(served_app: ServedApp, clean_state: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the served app that does not follow redirects (tests check them)."""
    async with httpx.AsyncClient(
        base_url=served_app.url, timeout=10, follow_redirects=False
    ) as http_client:
        yield http_client
