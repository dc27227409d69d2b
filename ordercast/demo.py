"""`ordercast demo`: a simulated shop that places and advances orders through the public API."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets

import httpx

from ordercast.config import Settings
from ordercast.services.accounts import create_api_key

log = logging.getLogger("ordercast.demo")

DEMO_ADMIN = "demo@ordercast.local"
CUSTOMERS = [("demo-ada", "Ada Lovelace"), ("demo-grace", "Grace Hopper"), ("demo-alan", "Alan Turing")]
PRODUCTS = [
    ("TEA-01", "Green tea, 100 g", "7.90"),
    ("MUG-02", "Stoneware mug", "14.50"),
    ("KET-03", "Kettle", "39.00"),
]
# The happy path, and the side exits an order sometimes takes.
NEXT = {
    "pending_payment": ["paid", "paid", "paid", "payment_failed"],
    "payment_failed": ["paid", "cancelled"],
    "paid": ["accepted"],
    "accepted": ["packing"],
    "packing": ["dispatched"],
    "dispatched": ["delivered"],
}


def prepare_demo(settings: Settings) -> tuple[Settings, tuple[str, str]]:
    """Demo settings: its own SQLite file unless a database is set, and a fresh admin password."""
    password = secrets.token_urlsafe(9)
    updates: dict[str, object] = {"admin_email": DEMO_ADMIN, "admin_password": password}
    if settings.database_url == Settings.model_fields["database_url"].default:
        updates["database_url"] = "sqlite://./ordercast-demo.db"
    demo = Settings.model_validate({**settings.model_dump(), **updates})
    return demo, (DEMO_ADMIN, password)


async def run_shop(settings: Settings) -> None:
    """Place an order or advance one every `demo_interval` seconds, until cancelled."""
    key = await create_api_key(name="demo shop")
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=settings.base_url, headers=headers, timeout=10) as client:
        customer_ids = []
        for external_id, name in CUSTOMERS:
            response = await client.post("/api/v1/customers", json={"external_id": external_id, "name": name})
            response.raise_for_status()
            customer_ids.append(response.json()["id"])
        while True:
            try:
                await _step(client, customer_ids)
            except httpx.HTTPError as exc:
                log.warning("demo shop step failed: %s", exc)
            await asyncio.sleep(settings.demo_interval)


async def _step(client: httpx.AsyncClient, customer_ids: list[str]) -> None:
    open_orders = []
    for status in NEXT:
        page = (await client.get("/api/v1/orders", params={"status": status, "limit": 20})).json()
        open_orders.extend(page["items"])
    if len(open_orders) < 3 or random.random() < 0.3:
        items = [
            {"sku": sku, "name": name, "quantity": random.randint(1, 3), "unit_price": price}
            for sku, name, price in random.sample(PRODUCTS, random.randint(1, 2))
        ]
        body = {"customer_id": random.choice(customer_ids), "currency": "EUR", "items": items}
        order = (await client.post("/api/v1/orders", json=body)).json()
        log.info("demo shop: new order #%s", order["number"])
        return
    order = random.choice(open_orders)
    to = random.choice(NEXT[order["status"]])
    change: dict[str, str] = {"status": to}
    if to == "dispatched":
        change["tracking_number"] = f"DEMO{random.randint(10**8, 10**9 - 1)}"
    await client.post(f"/api/v1/orders/{order['id']}/status", json=change)
    log.info("demo shop: #%s %s → %s", order["number"], order["status"], to)
