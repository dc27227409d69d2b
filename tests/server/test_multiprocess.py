"""Several server processes on one PostgreSQL and Redis: events cross processes, crashes lose nothing."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from tests.conftest import API_KEY, ServerProcess, new_customer, new_order, wait_for
from tests.streams import SSEReader, sse, ws

AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def test_event_caused_on_one_process_reaches_clients_of_another_once(
    start_pg_server: Callable[..., Any],
) -> None:
    a: ServerProcess = await start_pg_server()
    b: ServerProcess = await start_pg_server()
    async with (
        httpx.AsyncClient(base_url=a.base_url, headers=AUTH, timeout=10) as on_a,
        httpx.AsyncClient(base_url=b.base_url, headers=AUTH, timeout=10) as on_b,
        sse(on_b) as b_sse,
        ws(b.base_url, headers=AUTH) as b_ws,
        sse(on_a) as a_sse,
    ):
        customer = await new_customer(on_a)
        orders = [await new_order(on_a, customer["id"]) for _ in range(5)]
        for order in orders:
            await on_a.post(f"/api/v1/orders/{order['id']}/status", json={"status": "paid"})
        ids = {o["id"] for o in orders}

        def mine(reader: Any) -> list[Any]:
            return [m for m in reader.of_type("order.") if m.data["data"]["order"]["id"] in ids]

        for reader in (b_sse, b_ws, a_sse):
            await wait_for(lambda r=reader: len(mine(r)) == 10, message="ten events on every stream")
        # One position per event, the same seen from both processes.
        positions = {m.data["id"]: m.id for m in mine(a_sse)}
        assert {m.data["id"]: m.id for m in mine(b_sse)} == positions
        assert {m.data["id"]: m.id for m in mine(b_ws)} == positions
        assert len(set(positions.values())) == 10


async def commit_then_kill(
    client: httpx.AsyncClient, doomed: ServerProcess, order: dict[str, Any], status: str
) -> None:
    """Change `order` to `status` through `doomed` (started with a long `publish_delay`) and kill -9 it
    once the change is committed, before it publishes the event."""
    async with httpx.AsyncClient(base_url=doomed.base_url, headers=AUTH, timeout=60) as doomed_client:
        change = asyncio.create_task(
            doomed_client.post(f"/api/v1/orders/{order['id']}/status", json={"status": status})
        )
        before = len((await client.get(f"/api/v1/orders/{order['id']}/events")).json()["items"])

        async def committed() -> bool:
            events = (await client.get(f"/api/v1/orders/{order['id']}/events")).json()["items"]
            return len(events) == before + 1

        await wait_for(committed, message="the change to be committed by the doomed process")
        assert doomed.process is not None
        doomed.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(doomed.process.wait, 10)
        with contextlib.suppress(httpx.HTTPError):
            await change


@contextlib.asynccontextmanager
async def orphaned_payment(
    start_pg_server: Callable[..., Any], **settings: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, SSEReader, dict[str, Any]]]:
    """A survivor's client and stream, and an order whose payment a killed process committed but never
    published."""
    survivor: ServerProcess = await start_pg_server(**settings)
    doomed: ServerProcess = await start_pg_server(publish_delay=30, **settings)
    async with (
        httpx.AsyncClient(base_url=survivor.base_url, headers=AUTH, timeout=10) as client,
        sse(client) as stream,
    ):
        customer = await new_customer(client)
        order = await new_order(client, customer["id"])
        await commit_then_kill(client, doomed, order, "paid")
        yield client, stream, order


def status_changes(stream: SSEReader, order: dict[str, Any]) -> list[str]:
    return [
        m.data["data"]["to"]
        for m in stream.of_type("order.status_changed")
        if m.data["data"]["order"]["id"] == order["id"]
    ]


async def test_killed_between_commit_and_publish_the_event_still_arrives_exactly_once(
    start_pg_server: Callable[..., Any],
) -> None:
    async with orphaned_payment(start_pg_server) as (client, stream, order):
        await wait_for(lambda: status_changes(stream, order), timeout=15, message="the sweeper to publish it")
        # Give a second publisher every chance to misbehave: the next event must follow directly.
        await client.post(f"/api/v1/orders/{order['id']}/status", json={"status": "accepted"})
        await wait_for(lambda: len(status_changes(stream, order)) == 2, message="the next change")
        assert status_changes(stream, order) == ["paid", "accepted"]


async def test_a_change_published_elsewhere_first_publishes_the_earlier_one_a_killed_process_left(
    start_pg_server: Callable[..., Any],
) -> None:
    # Neither sweeper would touch the orphaned event for minutes: only the next change can publish it.
    async with orphaned_payment(start_pg_server, sweep_grace=600) as (client, stream, order):
        for status in ("accepted", "packing"):
            response = await client.post(f"/api/v1/orders/{order['id']}/status", json={"status": status})
            assert response.status_code == 200, response.text
        await wait_for(lambda: len(status_changes(stream, order)) == 3, message="all three changes on the stream")
        assert status_changes(stream, order) == ["paid", "accepted", "packing"]
