"""Pushes with several server processes on one PostgreSQL and Redis: each push is sent once, and a
process killed mid-send leaves its push to another (the one case where it may arrive twice)."""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import (
    API_KEY,
    REDIS,
    ServerProcess,
    Stack,
    create_postgres_database,
    new_customer,
    new_order,
    server_starter,
    wait_for,
)
from tests.notify.fakepush import SERVER_ERROR, FakePushService, token_of

StartServer = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture(scope="module")
async def start_pg_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StartServer]:
    """Servers on a PostgreSQL database and Redis prefix of this module's own: no other test's
    process (they may outlive their tests) claims these pushes."""
    url, drop = await create_postgres_database()
    stack = Stack("postgres", url, REDIS, env={"ORDERCAST_REDIS_PREFIX": f"octest:{secrets.token_hex(4)}"})
    with server_starter(stack, tmp_path_factory) as start:
        yield start
    await drop()


def api(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)


async def subscribe(client: httpx.AsyncClient, fake: FakePushService) -> dict[str, Any]:
    key = (await client.get("/api/v1/push/vapid-public-key")).json()["key"]
    subscription = fake.subscribe(key)
    assert (await client.post("/api/v1/push/subscriptions", json=subscription)).status_code == 201
    return subscription


async def unsubscribe(client: httpx.AsyncClient, *subscriptions: dict[str, Any]) -> None:
    for subscription in subscriptions:
        await client.request("DELETE", "/api/v1/push/subscriptions", json={"endpoint": subscription["endpoint"]})


async def test_two_processes_send_each_push_once(start_pg_server: StartServer, fake: FakePushService) -> None:
    servers = [await start_pg_server(), await start_pg_server()]
    try:
        async with api(servers[0]) as first, api(servers[1]) as second:
            devices = [await subscribe(first, fake) for _ in range(3)]
            orders = []
            for index in range(20):
                client = (first, second)[index % 2]
                customer = await new_customer(client)
                order = await new_order(client, customer["id"])
                await client.post(f"/api/v1/orders/{order['id']}/status", json={"status": "paid"})
                orders.append(order)
            ours = {f"{servers[0].base_url}/?order={order['id']}" for order in orders} | {
                f"{servers[1].base_url}/?order={order['id']}" for order in orders
            }

            def pushed() -> Counter[tuple[str, str, str]]:
                return Counter(
                    (push.token, push.payload["url"].rsplit("=", 1)[1], push.title)
                    for device in devices
                    for push in fake.received(device)
                    if push.payload["url"] in ours
                )

            expected = 3 * 2 * len(orders)
            await wait_for(lambda: sum(pushed().values()) >= expected, timeout=30, message=f"{expected} pushes")

            async def rows_of(order: dict[str, Any]) -> list[tuple[str, int]]:
                params = {"order_id": order["id"], "channel": "push"}
                items = (await first.get("/api/v1/deliveries", params=params)).json()["items"]
                return [(row["status"], row["attempts"]) for row in items]

            async def all_recorded() -> bool:
                for order in orders:
                    if any(status != "sent" for status, _ in await rows_of(order)):
                        return False
                return True

            # Once every row is recorded sent, nothing can claim (and send) one again.
            await wait_for(all_recorded, timeout=30, message="every push recorded as sent")
            counts = pushed()
            assert len(counts) == expected
            assert set(counts.values()) == {1}
            for order in orders:
                assert await rows_of(order) == [("sent", 1)] * 6
            await unsubscribe(first, *devices)
    finally:
        for server in servers:
            await asyncio.to_thread(server.stop)
        for server in servers:
            assert "Traceback" not in server.output(), server.output()[-3000:]


async def test_a_process_killed_mid_send_leaves_the_push_to_another(
    start_pg_server: StartServer, fake: FakePushService
) -> None:
    doomed = await start_pg_server(delivery_lease=2)
    async with api(doomed) as client:
        device = await subscribe(client, fake)
        fake.hold(device)
        customer = await new_customer(client)
        order = await new_order(client, customer["id"])
        await wait_for(lambda: fake.arrivals[token_of(device)], message="the push to reach the service")
    # Killed between handing the push over and hearing back: the service accepts it, nobody records it.
    doomed.stop(signal.SIGKILL)
    fake.release(device)
    heir = await start_pg_server(delivery_lease=2)
    try:
        async with api(heir) as client:
            await client.post(f"/api/v1/orders/{order['id']}/status", json={"status": "paid"})
            pushes = await fake.wait_pushes(device, 3, timeout=15)
            titles = [push.title for push in pushes]
            number = f"#{order['number']}"
            # The killed process's push went out, and the heir sent it again once its lease ran out;
            # the next push, queued behind it, went once.
            assert titles == [f"New order {number}", f"New order {number}", f"Payment received for {number}"]

            async def settled() -> list[tuple[str, int]] | None:
                # The service has the push before the sender has recorded its answer: wait for that.
                params = {"order_id": order["id"], "channel": "push"}
                rows = (await client.get("/api/v1/deliveries", params=params)).json()["items"]
                found = [(row["status"], row["attempts"]) for row in reversed(rows)]
                return found if all(status == "sent" for status, _ in found) else None

            assert await wait_for(settled, message="both pushes recorded") == [("sent", 2), ("sent", 1)]
            await unsubscribe(client, device)
    finally:
        await asyncio.to_thread(heir.stop)


async def test_a_channel_that_keeps_failing_raises_an_alert_resolved_when_sends_go_through(
    start_pg_server: StartServer, fake: FakePushService
) -> None:
    server = await start_pg_server(alert_after_failures=3)
    try:
        async with api(server) as client:
            device = await subscribe(client, fake)
            fake.fail_next(device, *[SERVER_ERROR] * 3)

            async def alert(resolved: bool) -> dict[str, Any] | None:
                params = {"resolved": str(resolved).lower()}
                alerts = (await client.get("/api/v1/alerts", params=params)).json()["items"]
                return next((item for item in alerts if item["key"] == "delivery:push:failing"), None)

            customer = await new_customer(client)
            order = await new_order(client, customer["id"])
            # Raised after the third failure, then resolved by the next push that goes through: the
            # fourth attempt, or the alert's own push, whichever goes first (then within milliseconds
            # of the raise, too fast to see it open). Either way it was raised once and resolved.
            resolved = await wait_for(lambda: alert(resolved=True), message="the failing alert, resolved")
            assert resolved["severity"] == "warning"
            assert "3 push sends in a row failed" in resolved["message"]
            assert (resolved["occurrences"], resolved["resolution_note"]) == (1, "sends go through again")
            assert await alert(resolved=False) is None
            titles = [push.title for push in await fake.wait_pushes(device, 2)]
            assert f"New order #{order['number']}" in titles
            assert resolved["title"] in titles  # the admins' devices hear of the alert itself
            await unsubscribe(client, device)
    finally:
        await asyncio.to_thread(server.stop)
