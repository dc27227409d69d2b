"""The dashboard's notification centre in headless Chromium: the unread badge follows the stream, and
the PWA's service worker and manifest are served without credentials."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from playwright.async_api import Browser, expect

from tests.conftest import API_KEY, ServerProcess, new_customer, new_order
from tests.server.conftest import sign_in

AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def test_the_unread_badge_and_the_list_follow_the_stream(
    browser: Browser, start_server: Callable[..., Awaitable[ServerProcess]]
) -> None:
    # A server of its own: on the shared one, other tests' leftovers (a device whose fake push service
    # is gone, and its alerts) may add notifications while this one counts them.
    server = await start_server()
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=10) as client:
        await follow_the_badge(browser, server, client)


async def follow_the_badge(browser: Browser, server: ServerProcess, client: httpx.AsyncClient) -> None:
    context = await browser.new_context(base_url=server.base_url)
    page = await context.new_page()
    await page.goto("/login?next=/")
    await sign_in(page)
    await expect(page.locator("#live")).to_have_text("live")
    await page.click("#bell")  # opens the list
    await page.click("#read-all")
    badge = page.locator("#unread")
    await expect(badge).to_have_text("0")

    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    await expect(badge).to_have_text("1")
    first = page.locator("#notifications li").first
    await expect(first).to_contain_text(f"New order #{order['number']}")
    await expect(first).to_have_class("unread")

    await client.post(f"/api/v1/orders/{order['id']}/status", json={"status": "paid"})
    await expect(badge).to_have_text("2")
    await expect(page.locator("#notifications li").first).to_contain_text(f"Payment received for #{order['number']}")
    await page.click("#read-all")
    await expect(badge).to_have_text("0")
    await expect(page.locator("#notifications li.unread")).to_have_count(0)
    await context.close()


async def test_the_service_worker_and_manifest_are_public(anonymous: httpx.AsyncClient) -> None:
    worker = await anonymous.get("/sw.js")
    assert worker.status_code == 200
    assert worker.headers["content-type"].startswith("text/javascript")
    assert "showNotification" in worker.text
    manifest = await anonymous.get("/manifest.webmanifest")
    assert manifest.status_code == 200
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    assert manifest.json()["start_url"] == "/"
    assert (await anonymous.get(manifest.json()["icons"][0]["src"])).status_code == 200
