"""The push tests' shared parts: the fake push service, devices subscribed through the API, and their
deliveries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import wait_for
from tests.notify.fakepush import FakePushService, running


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakePushService]:
    async with running(FakePushService()) as fake:
        yield fake


@dataclass
class Device:
    """A browser subscribed through the API: its PushSubscription JSON and the server's id for it."""

    subscription: dict[str, Any]
    id: str


Subscribe = Callable[[], Awaitable[Device]]


@pytest.fixture
async def subscribe(client: httpx.AsyncClient, fake: FakePushService) -> AsyncIterator[Subscribe]:
    """Subscribe a new device of the API key's admin (the built-in service admin); unsubscribed after."""
    devices: list[Device] = []

    async def new_device() -> Device:
        key = (await client.get("/api/v1/push/vapid-public-key")).json()["key"]
        subscription = fake.subscribe(key)
        response = await client.post("/api/v1/push/subscriptions", json=subscription)
        assert response.status_code == 201, response.text
        devices.append(Device(subscription, response.json()["id"]))
        return devices[-1]

    yield new_device
    for device in devices:
        await client.request("DELETE", "/api/v1/push/subscriptions", json={"endpoint": device.subscription["endpoint"]})


async def deliveries(
    client: httpx.AsyncClient, order: dict[str, Any], device: Device | None = None
) -> list[dict[str, Any]]:
    """The order's push deliveries (to `device`), oldest first."""
    response = await client.get("/api/v1/deliveries", params={"channel": "push", "order_id": order["id"]})
    assert response.status_code == 200, response.text
    rows = list(reversed(response.json()["items"]))
    return [row for row in rows if device is None or row["recipient"] == device.id]


async def settled(
    client: httpx.AsyncClient, count: int, order: dict[str, Any], device: Device | None = None
) -> list[dict[str, Any]]:
    """The order's push deliveries (to `device`) once `count` of them are sent, failed or skipped."""

    async def done() -> list[dict[str, Any]] | None:
        rows = await deliveries(client, order, device)
        finished = [row for row in rows if row["status"] in ("sent", "failed", "skipped")]
        return rows if len(finished) >= count else None

    result: list[dict[str, Any]] = await wait_for(done, message=f"{count} settled pushes about {order['number']}")
    return result
