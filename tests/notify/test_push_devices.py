"""An admin's push subscriptions (devices) through the API: validated at creation (the outbound
address rule for literal addresses), listed without their secrets, deleted by endpoint or id, at
most 20 per admin with the least recently used one replaced."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.accounts import cli, signed_in
from tests.conftest import API_KEY, ServerProcess, new_customer, wait_for
from tests.notify.conftest import Subscribe
from tests.notify.fakepush import FakePushService

DEVICE_FIELDS = {"id", "name", "endpoint_host", "created_at", "last_used_at", "last_success_at", "last_error"}


async def new_admin(server: ServerProcess) -> tuple[str, str]:
    """Another admin on `server`'s database: (email, password)."""
    email, password = f"admin-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(12)
    # `--password=`: a generated password may start with `-`, which argparse would take for an option.
    created = await cli(server, "admin", "create", "--email", email, f"--password={password}")
    assert created.returncode == 0, created.stderr
    return email, password


async def listed(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/push/subscriptions")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_the_caller_lists_their_devices_by_name_and_host_never_endpoint_or_keys(
    client: httpx.AsyncClient, fake: FakePushService, subscribe: Subscribe
) -> None:
    key = (await client.get("/api/v1/push/vapid-public-key")).json()["key"]
    named = fake.subscribe(key)
    response = await client.post("/api/v1/push/subscriptions", json={**named, "name": "Shop tablet"})
    assert (response.status_code, response.json()["name"]) == (201, "Shop tablet")
    laptop = await subscribe()
    try:
        devices = {item["id"]: item for item in await listed(client)}
        tablet = devices[response.json()["id"]]
        assert set(tablet) == DEVICE_FIELDS
        assert (tablet["name"], tablet["endpoint_host"], tablet["last_error"]) == ("Shop tablet", "127.0.0.1", None)
        assert tablet["last_used_at"] is not None
        assert tablet["last_success_at"] is None
        text = str(devices)
        for secret in (named["endpoint"], named["keys"]["p256dh"], named["keys"]["auth"]):
            assert secret.rsplit("/", 1)[-1] not in text
        assert devices[laptop.id]["name"] is None

        # Posted again without a name (as the dashboard does on each visit), it keeps its name.
        again = await client.post("/api/v1/push/subscriptions", json=named)
        assert (again.status_code, again.json()["name"]) == (200, "Shop tablet")

        assert (await client.post("/api/v1/push/test")).status_code == 200

        async def pushed() -> dict[str, Any] | None:
            item = next(item for item in await listed(client) if item["id"] == laptop.id)
            return item if item["last_success_at"] else None

        assert (await wait_for(pushed, message="the laptop's success"))["last_error"] is None
    finally:
        await client.request("DELETE", "/api/v1/push/subscriptions", json={"endpoint": named["endpoint"]})


async def test_a_device_is_deleted_by_id_and_only_by_its_admin(
    server: ServerProcess, client: httpx.AsyncClient, subscribe: Subscribe
) -> None:
    mine = await subscribe()
    email, password = await new_admin(server)
    async with signed_in(server, email, password) as other:
        assert await listed(other) == []
        assert (await other.delete(f"/api/v1/push/subscriptions/{mine.id}")).status_code == 404
        assert mine.id in [item["id"] for item in await listed(client)]
    deleted = await client.delete(f"/api/v1/push/subscriptions/{mine.id}")
    assert deleted.status_code == 204
    assert mine.id not in [item["id"] for item in await listed(client)]
    again = await client.delete(f"/api/v1/push/subscriptions/{mine.id}")
    assert (again.status_code, again.json()["error"]["code"]) == (404, "not_found")


async def test_an_admin_keeps_twenty_devices_the_least_recently_used_replaced(
    server: ServerProcess, fake: FakePushService
) -> None:
    email, password = await new_admin(server)
    async with signed_in(server, email, password) as browser:
        key = (await browser.get("/api/v1/push/vapid-public-key")).json()["key"]

        async def subscribed(subscription: dict[str, Any]) -> str:
            response = await browser.post("/api/v1/push/subscriptions", json=subscription)
            assert response.status_code in (200, 201), response.text
            return str(response.json()["id"])

        subscriptions = [fake.subscribe(key) for _ in range(21)]
        ids = [await subscribed(subscription) for subscription in subscriptions[:20]]
        assert len(await listed(browser)) == 20
        await subscribed(subscriptions[0])  # the oldest is used again: now the second is the least recent
        newest = await subscribed(subscriptions[20])
        kept = {item["id"] for item in await listed(browser)}
        assert kept == {*ids[:1], *ids[2:], newest}
        assert ids[1] not in kept


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
