"""The WebSocket endpoint, served by a real uvicorn and read with the `websockets` client."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ordercast.events import ADMIN_CHANNEL, Position, customer_channel
from ordercast.realtime.broker import Broker
from ordercast.realtime.hub import Hub
from ordercast.realtime.memory import MemoryBroker
from tests.realtime.conftest import make_app, make_event, serve, wait_for


async def frames(connection: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [orjson.loads(await asyncio.wait_for(connection.recv(), 5)) for _ in range(count)]


async def closed_with(connection: ClientConnection) -> int | None:
    """Read until the server closes the connection; its close code."""
    try:
        while True:
            await asyncio.wait_for(connection.recv(), 5)
    except ConnectionClosed:
        return connection.close_code


async def test_ws_replays_missed_events_then_streams_live_ones_as_json_frames(broker: Broker, hub: Hub) -> None:
    events = [make_event(customer_id="c1", number=i) for i in range(3)]
    positions = [(await broker.publish(e))[customer_channel("c1")] for e in events]
    await broker.publish(make_event(customer_id="someone-else"))
    async with serve(make_app(hub)) as (url, _):
        ws_url = url.replace("http://", "ws://") + f"/ws?token=customer-c1&last_event_id={positions[0]}"
        async with connect(ws_url, open_timeout=5) as connection:
            replayed = await frames(connection, 2)
            live = make_event(customer_id="c1", number=3)
            await broker.publish(live)
            [streamed] = await frames(connection, 1)
    assert [f["id"] for f in replayed] == [str(p) for p in positions[1:]]
    assert streamed["id"] == str(Position(positions[0].epoch, 4))
    assert [f["type"] for f in [*replayed, streamed]] == ["order.created"] * 3
    assert [f["data"] for f in [*replayed, streamed]] == [orjson.loads(e.encode()) for e in [*events[1:], live]]


async def test_ws_with_an_id_of_another_epoch_opens_with_a_reset(broker: Broker, hub: Hub) -> None:
    current = (await broker.publish(make_event()))[ADMIN_CHANNEL]
    async with serve(make_app(hub)) as (url, _):
        ws_url = url.replace("http://", "ws://") + "/ws?token=admin&last_event_id=elsewhere:3"
        async with connect(ws_url, open_timeout=5) as connection:
            [reset] = await frames(connection, 1)
    assert reset == {"id": str(current), "type": "reset", "data": {"reason": "epoch", "position": str(current)}}


async def test_ws_upgrade_is_refused_before_accepting_with_the_errors_status(hub: Hub) -> None:
    async with serve(make_app(hub)) as (url, _):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url.replace("http://", "ws://") + "/ws?token=nobody", open_timeout=5):
                pass
    assert refused.value.response.status_code == 401
    assert orjson.loads(refused.value.response.body or b"{}")["error"]["code"] == "unauthenticated"
    assert hub.connections == 0


async def test_a_socket_that_cannot_keep_up_is_closed_with_4008() -> None:
    broker = MemoryBroker(history_size=100, history_ttl=60)
    async with Hub(broker, queue_size=2) as hub, serve(make_app(hub)) as (url, _):
        async with connect(url.replace("http://", "ws://") + "/ws?token=admin", open_timeout=5) as connection:
            await wait_for(lambda: hub.connections == 1, message="the socket to subscribe")
            for _ in range(5):  # placed faster than the connection's queue of two can take them
                await broker.publish(make_event())
            assert await closed_with(connection) == 4008
        assert hub.overflows == 1


async def test_closing_the_hub_closes_sockets_with_service_restart(broker: Broker) -> None:
    hub = Hub(broker)
    await hub.start()
    async with (
        serve(make_app(hub)) as (url, _),
        connect(url.replace("http://", "ws://") + "/ws?token=admin", open_timeout=5) as connection,
    ):
        await wait_for(lambda: hub.connections == 1, message="the socket to subscribe")
        await hub.close()
        assert await closed_with(connection) == 1012
