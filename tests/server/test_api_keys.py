"""API keys as records: listed without the key, created with it once, revoked at once here, soon everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.accounts import signed_in
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, API_KEY, ServerProcess, new_customer, wait_for


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def works(server: ServerProcess, key: str) -> bool:
    async with httpx.AsyncClient(base_url=server.base_url, headers=bearer(key), timeout=10) as backend:
        status = (await backend.get("/api/v1/orders", params={"limit": 1})).status_code
    assert status in {200, 401}
    return status == 200


async def test_a_key_is_shown_once_listed_without_it_and_refused_at_once_when_revoked(
    client: httpx.AsyncClient, server: ServerProcess
) -> None:
    created = await client.post("/api/v1/api-keys", json={"name": "warehouse"})
    assert created.status_code == 201, created.text
    record = created.json()
    key = record.pop("key")
    assert key.startswith("ock_")
    assert record["id"].startswith("key_")
    assert record["prefix"] == key[:12]
    assert record["name"] == "warehouse"
    assert record["last_used_at"] is None
    assert await works(server, key)

    listed = (await client.get("/api/v1/api-keys")).json()["items"]
    ours = next(item for item in listed if item["id"] == record["id"])
    assert ours["last_used_at"] is not None
    assert key not in str(listed)
    (from_env,) = [item for item in listed if not item["revocable"]]
    assert API_KEY not in str(from_env)
    assert from_env["id"].startswith("key_")

    assert (await client.delete(f"/api/v1/api-keys/{record['id']}")).status_code == 204
    # This server caches keys for 30 s: the process that revoked it refuses it at once anyway.
    assert not await works(server, key)
    assert record["id"] not in {item["id"] for item in (await client.get("/api/v1/api-keys")).json()["items"]}
    assert (await client.delete(f"/api/v1/api-keys/{record['id']}")).status_code == 404
    env_revoke = await client.delete(f"/api/v1/api-keys/{from_env['id']}")
    assert env_revoke.status_code == 409
    assert await works(server, API_KEY)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{", 400, None),
        (b"[]", 400, None),
        (b'{"name": 5}', 422, "name"),
        (b'{"name": "x", "scope": "all"}', 422, "scope"),
        (b'{"name": "' + b"n" * 256 + b'"}', 422, "name"),
        (b'{"name": "a\\u0000b"}', 422, "name"),
    ],
)
async def test_bad_key_requests_are_4xx(client: httpx.AsyncClient, body: bytes, status: int, field: str | None) -> None:
    response = await client.post("/api/v1/api-keys", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    if field is not None:
        assert field in response.json()["error"]["details"]["fields"]
    for bad in ("key_nope", "key_%00", "n" * 300):
        assert (await client.delete(f"/api/v1/api-keys/{bad}")).status_code == 404


async def test_an_admin_sees_and_revokes_only_their_own_keys(client: httpx.AsyncClient, server: ServerProcess) -> None:
    services = (await client.post("/api/v1/api-keys", json={"name": "service's"})).json()
    async with signed_in(server, ADMIN_EMAIL, ADMIN_PASSWORD) as browser:
        without_origin = await browser.post("/api/v1/api-keys", json={"name": "mine"}, headers={"Origin": ""})
        assert without_origin.json()["error"]["code"] == "csrf"
        mine = await browser.post("/api/v1/api-keys", json={"name": "mine"})
        assert mine.status_code == 201
        listed = {item["id"] for item in (await browser.get("/api/v1/api-keys")).json()["items"]}
        assert mine.json()["id"] in listed
        assert services["id"] not in listed
        assert all(item["revocable"] for item in (await browser.get("/api/v1/api-keys")).json()["items"])
        assert (await browser.delete(f"/api/v1/api-keys/{services['id']}")).status_code == 404
    assert await works(server, services["key"])
    assert mine.json()["id"] not in {item["id"] for item in (await client.get("/api/v1/api-keys")).json()["items"]}


async def test_customer_tokens_cannot_touch_keys_or_sessions(client: httpx.AsyncClient, server: ServerProcess) -> None:
    customer = await new_customer(client)
    token = (await client.post(f"/api/v1/customers/{customer['id']}/stream-token")).json()["token"]
    async with httpx.AsyncClient(base_url=server.base_url, headers=bearer(token)) as as_customer:
        for method, path in [
            ("GET", "/api/v1/api-keys"),
            ("POST", "/api/v1/api-keys"),
            ("GET", "/api/v1/me/sessions"),
            ("POST", "/api/v1/me/password"),
        ]:
            assert (await as_customer.request(method, path, json={})).status_code == 403, path


async def test_a_key_revoked_on_one_process_is_refused_by_another_within_the_cache_ttl(
    start_pg_server: Callable[..., Any],
) -> None:
    a: ServerProcess = await start_pg_server(auth_cache_ttl=0.5)
    b: ServerProcess = await start_pg_server(auth_cache_ttl=0.5)
    async with httpx.AsyncClient(base_url=a.base_url, headers=bearer(API_KEY)) as on_a:
        created = (await on_a.post("/api/v1/api-keys", json={"name": "roaming"})).json()
        assert await works(b, created["key"])
        assert (await on_a.delete(f"/api/v1/api-keys/{created['id']}")).status_code == 204
    await wait_for(
        lambda: _refused(b, created["key"]),
        timeout=5,
        message="the other process to refuse the revoked key",
    )


async def _refused(server: ServerProcess, key: str) -> bool:
    return not await works(server, key)
