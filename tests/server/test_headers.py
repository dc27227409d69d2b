"""Security headers: a strict CSP on HTML that the dashboard itself never trips, nosniff, referrer policy."""

from __future__ import annotations

import httpx
from playwright.async_api import Browser, ConsoleMessage, expect

from tests.conftest import ServerProcess
from tests.server.conftest import sign_in


async def test_html_pages_carry_a_strict_policy_and_json_is_nosniff(anonymous: httpx.AsyncClient) -> None:
    page = await anonymous.get("/login")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
    assert "strict-transport-security" not in page.headers  # the test server's origin is plain http
    api = await anonymous.get("/api/v1/orders")
    assert api.status_code == 401
    assert api.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in api.headers


async def test_the_dashboard_runs_under_its_policy_without_a_violation(browser: Browser, server: ServerProcess) -> None:
    context = await browser.new_context(base_url=server.base_url)
    page = await context.new_page()
    violations: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", on_console)
    await page.goto("/login")
    await sign_in(page)
    await expect(page.locator("#live")).to_have_text("live")
    await context.close()
    assert violations == []
