"""An admin's push subscriptions (devices) through the API: validated at creation (the outbound
address rule for literal addresses), updated when posted again, deleted by endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY, ServerProcess, new_customer
from tests.notify.fakepush import FakePushService


@pytest.mark.parametrize(
    ("change_to", "field", "problem"),
    [
        ({"keys": {"p256dh": "B" + "A" * 86, "auth": "A" * 22}}, "keys.p256dh", "P-256"),
        ({"keys": {"p256dh": "A" * 87, "auth": "A" * 22}}, "keys.p256dh", "uncompressed"),
        ({"keys": {"auth": "A" * 22}}, "keys.p256dh", "Field required"),
        ({"endpoint": "ftp://push.example.com/x"}, "endpoint", "https"),
        ({"expirationTime": "soon"}, "expirationTime", ""),
        ({"extra": 1}, "extra", "unknown field"),
    ],
)
async def test_subscriptions_are_validated(
    client: httpx.AsyncClient, fake: FakePushService, change_to: dict[str, Any], field: str, problem: str
) -> None:
    subscription = {**fake.subscribe("unused"), **change_to}
    response = await client.post("/api/v1/push/subscriptions", json=subscription)
    assert response.status_code == 422, response.text
    assert problem in response.json()["error"]["details"]["fields"][field]


async def test_subscribing_twice_updates_and_delete_needs_the_endpoint(
    client: httpx.AsyncClient, fake: FakePushService, anonymous: httpx.AsyncClient
) -> None:
    key = (await anonymous.get("/api/v1/push/vapid-public-key")).json()["key"]
    subscription = fake.subscribe(key)
    first = await client.post("/api/v1/push/subscriptions", json=subscription)
    again = await client.post("/api/v1/push/subscriptions", json={**subscription, "expirationTime": 4102444800000})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert again.json()["expires_at"] == "2100-01-01T00:00:00.000000Z"
    deleted = await client.request("DELETE", "/api/v1/push/subscriptions", json={"endpoint": subscription["endpoint"]})
    assert deleted.status_code == 204
    deleted = await client.request("DELETE", "/api/v1/push/subscriptions", json={"endpoint": subscription["endpoint"]})
    assert deleted.status_code == 404
    assert (await anonymous.post("/api/v1/push/subscriptions", json=subscription)).status_code == 401
    customer = await new_customer(client)
    token = (await client.post(f"/api/v1/customers/{customer['id']}/stream-token", json={})).json()["token"]
    as_customer = await anonymous.post(
        "/api/v1/push/subscriptions", json=subscription, headers={"Authorization": f"Bearer {token}"}
    )
    assert as_customer.status_code == 403


async def test_only_public_https_push_services_while_the_address_rule_is_on(
    start_server: Callable[..., Awaitable[ServerProcess]], fake: FakePushService
) -> None:
    strict = await start_server(push_allow_insecure="false")
    try:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=strict.base_url, headers=headers, timeout=10) as client:
            subscription = fake.subscribe("unused")
            for endpoint in (
                subscription["endpoint"],  # http
                "https://127.0.0.1/push/x",
                "https://localhost:8443/push/x",
                "https://[::1]/push/x",
                "https://10.1.2.3/push/x",
                "https://printer.local/push/x",
                # Other spellings of loopback, and the cloud metadata address.
                "https://0x7f000001/x",
                "https://2130706433/x",
                "https://127.1/x",
                "https://[::ffff:127.0.0.1]/x",
                "https://169.254.169.254/latest/meta-data",
                "https://[fd00::1]/x",
            ):
                response = await client.post("/api/v1/push/subscriptions", json={**subscription, "endpoint": endpoint})
                assert response.status_code == 422, endpoint
                assert "endpoint" in response.json()["error"]["details"]["fields"]
            public = {**subscription, "endpoint": "https://push.example.com/send/ordercast-test"}
            response = await client.post("/api/v1/push/subscriptions", json=public)
            assert response.status_code == 201, response.text
            await client.request("DELETE", "/api/v1/push/subscriptions", json={"endpoint": public["endpoint"]})
    finally:
        await asyncio.to_thread(strict.stop)
