"""The dashboard in headless Chromium (Debian's, driven by Playwright): log in, watch orders move live."""

from __future__ import annotations

import httpx
from playwright.async_api import Browser, expect

from tests.conftest import ServerProcess, new_customer, new_order
from tests.server.conftest import sign_in


async def test_dashboard_shows_an_order_appear_and_change_status_without_reloading(
    browser: Browser, server: ServerProcess, client: httpx.AsyncClient
) -> None:
    context = await browser.new_context(base_url=server.base_url)
    page = await context.new_page()
    await page.goto("/")
    await expect(page).to_have_url(f"{server.base_url}/login?next=/")
    await sign_in(page)
    await expect(page).to_have_url(f"{server.base_url}/")
    await expect(page.locator("#live")).to_have_text("live")

    loads = []
    page.on("load", lambda _: loads.append(1))
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    row = page.locator(f"#order-{order['id']}")
    await expect(row).to_contain_text(f"#{order['number']}")
    await expect(row).to_have_attribute("data-status", "pending_payment")
    paid_before = int(await page.locator("#counters li[data-status=paid] b").inner_text())

    await client.post(f"/api/v1/orders/{order['id']}/status", json={"status": "paid"})
    await expect(row).to_have_attribute("data-status", "paid")
    await expect(page.locator("#counters li[data-status=paid] b")).to_have_text(str(paid_before + 1))
    assert loads == []  # no reload: the change came over the stream
    await context.close()
