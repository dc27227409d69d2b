"""Resume exactness: a client cut off at random points during a burst gets every event once, in order."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable
from typing import Any

import httpx

from ordercast.events import Position
from tests.conftest import API_KEY, ServerProcess, new_customer, new_order, wait_for
from tests.streams import Message, sse

AUTH = {"Authorization": f"Bearer {API_KEY}"}
STEPS = ["paid", "accepted", "packing", "dispatched", "delivered"]


async def burst(client: httpx.AsyncClient, order_ids: list[str]) -> None:
    """Every order walks its whole lifecycle, the orders interleaved, as fast as the server takes it."""
    for step in STEPS:
        responses = await asyncio.gather(
            *(client.post(f"/api/v1/orders/{oid}/status", json={"status": step}) for oid in order_ids)
        )
        assert all(r.status_code == 200 for r in responses), [(r.status_code, r.text[:200]) for r in responses]


async def test_a_client_reconnecting_at_random_points_misses_nothing_and_sees_nothing_twice(
    client: httpx.AsyncClient,
) -> None:
    rng = random.Random(20261201)
    customer = await new_customer(client)
    orders = [await new_order(client, customer["id"]) for _ in range(8)]
    order_ids = [o["id"] for o in orders]
    start = (await client.get("/api/v1/orders", params={"limit": 1})).json()["position"]
    producer = asyncio.create_task(burst(client, order_ids))
    expected = len(order_ids) * len(STEPS)

    received: list[Message] = []
    last_id = start
    connections = 0
    while sum(1 for m in received if m.type == "order.status_changed") < expected:
        connections += 1
        assert connections < 200, "the client made no progress"
        take = rng.randint(1, 7)
        async with sse(client, last_event_id=last_id) as stream:
            await wait_for(
                lambda s=stream, n=take: len(s.messages) >= n or (producer.done() and s.messages),  # type: ignore[misc]
                timeout=15,
                message="some events",
            )
            got = list(stream.messages)
        assert not [m for m in got if m.type == "reset"], "history still holds every event: no reset"
        received.extend(got)
        last_id = got[-1].id or last_id
    await producer

    offsets = [p.offset for p in (Position.parse(m.id or "") for m in received) if p is not None]
    first = Position.parse(start)
    assert first is not None
    assert offsets == list(range(first.offset + 1, first.offset + 1 + len(offsets))), "a gap or a duplicate"
    changes = [m.data for m in received if m.type == "order.status_changed"]
    assert len({c["id"] for c in changes}) == len(changes) == expected
    for order_id in order_ids:
        versions = [c["data"]["order"]["version"] for c in changes if c["data"]["order"]["id"] == order_id]
        assert versions == [2, 3, 4, 5, 6]
    assert connections > 3


async def test_a_client_that_does_not_read_is_cut_off_and_the_others_get_every_event(
    start_server: Callable[..., Any],
) -> None:
    server: ServerProcess = await start_server(connection_queue=40, send_timeout=1)
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=10) as client:
        customer = await new_customer(client)
        # Big orders (~30 KB an event) fill the kernel's and the server's buffers quickly.
        items = [{"sku": "S" * 100, "name": "N" * 255, "quantity": 1, "unit_price": "1.00"}] * 100
        order_ids = [(await new_order(client, customer["id"], items=items))["id"] for _ in range(30)]
        # A tiny receive window, and then never reading: the server's buffers fill, then its queue.
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.setblocking(False)
        await asyncio.get_running_loop().sock_connect(slow, ("127.0.0.1", server.port))
        request = f"GET /api/v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {API_KEY}\r\n\r\n"
        await asyncio.get_running_loop().sock_sendall(slow, request.encode())
        async with sse(client) as healthy:
            await wait_for(lambda: healthy.retry is not None, message="the healthy stream")
            await burst(client, order_ids)
            expected = len(order_ids) * len(STEPS)
            await wait_for(
                lambda: len(healthy.of_type("order.status_changed")) == expected,
                message=f"every event ({len(healthy.messages)}, ended={healthy.ended.is_set()})",
            )
            offsets = [p.offset for p in (Position.parse(m.id or "") for m in healthy.messages) if p is not None]
            assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))

        def drained_to_eof() -> bool:
            try:
                while chunk := slow.recv(65536):
                    del chunk
            except BlockingIOError:
                return False
            return True

        await wait_for(drained_to_eof, timeout=15, message="the server to end the slow stream")
        slow.close()
