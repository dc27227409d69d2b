"""The VAPID key: generated once and shared through the database, or configured; `ordercast vapid`
prints it and `--rotate` replaces it (running servers follow); tokens and Retry-After parsing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ordercast.notify.push import retry_after
from ordercast.notify.vapid import InvalidKey, VapidKey, b64url, unb64url
from tests.conftest import API_KEY, ServerProcess, new_customer, new_order, wait_for
from tests.notify.fakepush import FakePushService, running
from tests.test_cli import ordercast


def test_a_key_reads_back_from_pem_and_from_its_raw_form() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key = VapidKey.parse(pem)
    assert VapidKey.parse(key.serialize()).public_key == key.public_key
    raw_public = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert key.public_key == b64url(raw_public)
    assert len(unb64url(key.public_key)) == 65


@pytest.mark.parametrize("text", ["", "not a key", b64url(b"\x01" * 31), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END"])
def test_anything_else_is_not_a_key(text: str) -> None:
    with pytest.raises(InvalidKey):
        VapidKey.parse(text)


def test_a_token_is_for_one_push_service_and_renewed_before_it_expires() -> None:
    key = VapidKey.generate()
    now = time.time()
    token = key.authorization("https://push.example.com", "mailto:shop@example.com", now)
    claims = json.loads(unb64url(token.header.split("t=", 1)[1].split(".")[1]))
    assert claims == {"aud": "https://push.example.com", "exp": int(now) + 12 * 3600, "sub": "mailto:shop@example.com"}
    assert token.header.endswith(f",k={key.public_key}")
    assert token.fresh(now + 10 * 3600)
    assert not token.fresh(now + 11 * 3600 + 1)


def test_retry_after_is_seconds_or_an_http_date() -> None:
    assert retry_after("120") == 120
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= (retry_after(later) or 0) <= 30
    assert retry_after(format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)) == 0
    assert retry_after("99999999") == 86_400
    assert retry_after(None) is None
    assert retry_after("soon") is None


def test_vapid_has_help() -> None:
    result = ordercast("vapid", "--help")
    assert result.returncode == 0
    assert "--rotate" in result.stdout


async def test_rotating_the_key_reaches_the_running_server_and_drops_old_subscriptions(
    start_pg_server: Callable[..., Awaitable[ServerProcess]],
) -> None:
    server = await start_pg_server(vapid_reload_interval=0.3)
    # The stored key is sealed under the servers' secret key: the command needs the same one.
    env = {
        "ORDERCAST_DATABASE_URL": server.stack.database_url,
        "ORDERCAST_SECRET_KEY": server.env["ORDERCAST_SECRET_KEY"],
    }
    try:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with (
            running(FakePushService()) as fake,
            httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=10) as client,
        ):
            published = (await client.get("/api/v1/push/vapid-public-key")).json()["key"]
            printed = await asyncio.to_thread(ordercast, "vapid", env=env)
            assert (printed.returncode, printed.stdout.strip()) == (0, published)
            old = fake.subscribe(published)
            assert (await client.post("/api/v1/push/subscriptions", json=old)).status_code == 201

            rotated = await asyncio.to_thread(ordercast, "vapid", "--rotate", env=env)
            assert rotated.returncode == 0, rotated.stderr
            new_key = rotated.stdout.strip()
            assert new_key != published
            assert "1 push subscription(s)" in rotated.stderr

            async def served() -> bool:
                return bool((await client.get("/api/v1/push/vapid-public-key")).json()["key"] == new_key)

            # The route and the push channel read the one cached key: serving the new one, it signs with it.
            await wait_for(served, message="the server to serve the new key")
            deleted = await client.request("DELETE", "/api/v1/push/subscriptions", json={"endpoint": old["endpoint"]})
            assert deleted.status_code == 404  # removed with the old key
            new = fake.subscribe(new_key)
            assert (await client.post("/api/v1/push/subscriptions", json=new)).status_code == 201
            customer = await new_customer(client)
            order = await new_order(client, customer["id"])
            [push] = await fake.wait_pushes(new, 1)
            assert push.title == f"New order #{order['number']}"
            assert fake.refused == []
            await client.request("DELETE", "/api/v1/push/subscriptions", json={"endpoint": new["endpoint"]})
    finally:
        await asyncio.to_thread(server.stop)


async def test_a_configured_key_is_the_one_published_and_cannot_be_rotated(
    start_server: Callable[..., Awaitable[ServerProcess]],
) -> None:
    key = VapidKey.generate()
    env = {"ORDERCAST_VAPID_PRIVATE_KEY": key.serialize(), "ORDERCAST_DATABASE_URL": "sqlite:///nonexistent/x.db"}
    printed = await asyncio.to_thread(ordercast, "vapid", env=env)
    assert (printed.returncode, printed.stdout.strip()) == (0, key.public_key)
    refused = await asyncio.to_thread(ordercast, "vapid", "--rotate", env=env)
    assert refused.returncode == 1
    assert "ORDERCAST_VAPID_PRIVATE_KEY" in refused.stderr
    server = await start_server(vapid_private_key=key.serialize())
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as anonymous:
            assert (await anonymous.get("/api/v1/push/vapid-public-key")).json() == {"key": key.public_key}
    finally:
        await asyncio.to_thread(server.stop)
