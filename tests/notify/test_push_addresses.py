"""Pushes never make the server a probe of its own network: with the outbound address rule on, no
push reaches a local address (whatever its spelling, or a name resolving to one); a redirect is never
followed; and what a failing push service answered never reaches a delivery or a device."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import API_KEY, ServerProcess, Stack, new_customer, new_order, serving, wait_for
from tests.notify.conftest import Subscribe, settled
from tests.notify.fakepush import Failure, FakePushService, token_of


async def test_a_redirect_from_a_push_service_is_not_followed(
    client: httpx.AsyncClient, fake: FakePushService, subscribe: Subscribe
) -> None:
    reached: list[str] = []

    async def elsewhere(request: Request) -> Response:
        reached.append(request.url.path)
        return Response(status_code=201)

    app = Starlette(routes=[Route("/{path:path}", elsewhere, methods=["GET", "POST"])])
    async with serving(app, "where the redirect points") as other:
        phone = await subscribe()
        location = f"{other}/push/{token_of(phone.subscription)}"
        fake.fail_next(phone.subscription, Failure(307, text="moved", headers={"Location": location}))
        customer = await new_customer(client)
        order = await new_order(client, customer["id"])
        [row] = await settled(client, 1, order, phone)
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 1, "http_307")
    assert reached == []


async def test_what_a_failing_push_service_answered_is_never_recorded(
    client: httpx.AsyncClient, fake: FakePushService, subscribe: Subscribe
) -> None:
    phone = await subscribe()
    # What a port scanner would read back: another service's banner, a page of an internal site.
    retried, refused = "SSH-2.0-OpenSSH_9.6 internal-host", "<title>Jenkins admin</title>"
    fake.fail_next(phone.subscription, Failure(502, text=retried), Failure(403, text=refused))
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    [row] = await settled(client, 1, order, phone)
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 2, "http_403")
    seen = [
        (await client.get(f"/api/v1/deliveries/{row['id']}")).text,
        (await client.get("/api/v1/push/subscriptions")).text,
        (await client.get("/api/v1/alerts", params={"limit": 200})).text,
    ]
    for text in seen:
        assert "SSH-2.0" not in text
        assert "Jenkins" not in text


class Listener:
    """A TCP port on this machine that counts who connects to it."""

    def __init__(self) -> None:
        self.connections = 0

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


@contextlib.asynccontextmanager
async def own_server(folder: Path, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A server on a SQLite file of this test's own (nothing else claims its pushes), and its API."""
    server = ServerProcess(
        Stack("sqlite", f"sqlite://{folder / 'ordercast.db'}", None), folder / "server.log", **settings
    )
    server.start()
    try:
        await server.wait_ready()
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=10) as api:
            yield api
    finally:
        await asyncio.to_thread(server.stop)


async def test_no_push_reaches_a_local_address_while_the_rule_is_on(tmp_path: Path, fake: FakePushService) -> None:
    listener = Listener()
    tcp = await asyncio.start_server(listener.accept, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    endpoints = [
        f"https://localhost:{port}/push/by-name",  # a name: refused by what it resolves to
        f"https://127.0.0.1:{port}/push/literal",
        f"https://[::ffff:127.0.0.1]:{port}/push/mapped",
        f"https://0x7f000001:{port}/push/hex",
    ]
    async with tcp:
        # Subscribed while the rule was lifted (a development setting, later turned off).
        async with own_server(tmp_path, outbound_allow_private="true") as relaxed:
            key = (await relaxed.get("/api/v1/push/vapid-public-key")).json()["key"]
            for endpoint in endpoints:
                response = await relaxed.post(
                    "/api/v1/push/subscriptions", json={**fake.subscribe(key), "endpoint": endpoint}
                )
                assert response.status_code == 201, response.text
        async with own_server(tmp_path, push_allow_insecure="false", outbound_allow_private="false") as strict:
            assert (await strict.post("/api/v1/push/test")).json() == {"queued": len(endpoints)}

            async def all_failed() -> list[dict[str, Any]] | None:
                rows = (await strict.get("/api/v1/deliveries", params={"channel": "push"})).json()["items"]
                # (and the pushes of the alerts those failures raise, which fail alike)
                done = len(rows) >= len(endpoints) and all(row["status"] == "failed" for row in rows)
                return rows if done else None

            rows = await wait_for(all_failed, message="every push to have failed")
            assert {(row["last_error"], row["attempts"]) for row in rows} == {("blocked_address", 1)}
            devices = (await strict.get("/api/v1/push/subscriptions")).json()["items"]
            assert {device["last_error"] for device in devices} == {"blocked_address"}
            alerts = (await strict.get("/api/v1/alerts", params={"resolved": "false"})).json()["items"]
            assert "delivery:push:blocked_address" in [alert["key"] for alert in alerts]
    assert listener.connections == 0
