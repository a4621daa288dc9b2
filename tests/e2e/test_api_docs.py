"""The API documentation at /schema runs under the pages' strict Content-Security-Policy."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

pytestmark = pytest.mark.e2e


async def test_swagger_ui_renders_every_operation_without_a_csp_refusal(page: Page) -> None:
    # The `page` fixture fails the test on any CSP refusal or script error.
    response = await page.goto("/schema")

    assert response is not None
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    login = page.locator("#operations-auth-login")
    await expect(login).to_be_visible()
    await expect(login).to_contain_text("/api/auth/login")
    document = await (await page.request.get("/schema/openapi.json")).json()
    operations = sum(len(methods) for methods in document["paths"].values())
    await expect(page.locator(".opblock")).to_have_count(operations)
