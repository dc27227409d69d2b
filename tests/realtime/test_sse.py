"""The SSE endpoint, served by a real uvicorn and read with httpx streaming."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import orjson
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ordercast.events import ADMIN_CHANNEL, Position
from ordercast.realtime.broker import Broker
from ordercast.realtime.hub import Hub
from ordercast.realtime.memory import MemoryBroker
from tests.realtime.conftest import make_app, make_event, serve, wait_for


@dataclass
class Stream:
    """An SSE response being read in the background: its raw text, messages, comments."""

    response: httpx.Response
    text: str = ""
    messages: list[dict[str, str]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        buffer = ""
        try:
            async for chunk in self.response.aiter_text():
                self.text += chunk
                buffer += chunk
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    fields: dict[str, str] = {}
                    for line in block.split("\n"):
                        name, _, value = line.partition(": ")
                        if name == "":
                            self.comments.append(value)
                        else:
                            fields[name] = value
                    if "data" in fields:
                        self.messages.append(fields)
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()


@contextlib.asynccontextmanager
async def sse(base_url: str, **options: object) -> AsyncIterator[Stream]:
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(5, read=None)) as client,
        client.stream("GET", "/events", **options) as response,  # type: ignore[arg-type]
    ):
        stream = Stream(response)
        reader = asyncio.create_task(stream.read())
        try:
            yield stream
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def test_sse_replays_missed_events_then_streams_live_ones_with_pings(broker: Broker, hub: Hub) -> None:
    events = [make_event(number=i) for i in range(3)]
    positions = [(await broker.publish(e))[ADMIN_CHANNEL] for e in events]
    async with serve(make_app(hub, ping_interval=0.2)) as (url, _):
        # Last-Event-ID (what EventSource sends on reconnect) wins over the URL's last_event_id.
        headers = {"Last-Event-ID": str(positions[0])}
        params = {"token": "admin", "last_event_id": "garbage"}
        async with sse(url, params=params, headers=headers) as stream:
            assert stream.response.status_code == 200
            assert stream.response.headers["content-type"] == "text/event-stream"
            assert stream.response.headers["cache-control"] == "no-store"
            assert stream.response.headers["x-accel-buffering"] == "no"
            await wait_for(lambda: len(stream.messages) == 2, message="the replay")
            live = make_event(number=3)
            await broker.publish(live)
            await wait_for(lambda: len(stream.messages) == 3, message="the live event")
            await wait_for(lambda: "ping" in stream.comments, message="a ping")
    assert stream.text.startswith("retry: 2000\n\n")
    assert [m["id"] for m in stream.messages] == [str(p) for p in positions[1:]] + [
        str(Position(positions[0].epoch, 4))
    ]
    assert {m["event"] for m in stream.messages} == {"order.created"}
    assert [orjson.loads(m["data"]) for m in stream.messages] == [e.envelope() for e in [*events[1:], live]]


async def test_sse_with_a_malformed_id_in_the_query_opens_with_a_reset(broker: Broker, hub: Hub) -> None:
    current = (await broker.publish(make_event()))[ADMIN_CHANNEL]
    async with (
        serve(make_app(hub)) as (url, _),
        sse(url, params={"token": "admin", "last_event_id": "garbage"}) as stream,
    ):
        await wait_for(lambda: stream.messages, message="the reset")
    [reset] = stream.messages
    assert reset["event"] == "reset"
    assert reset["id"] == str(current)
    assert orjson.loads(reset["data"]) == {"reason": "invalid", "position": str(current)}


async def test_sse_without_credentials_is_refused_with_the_errors_status(hub: Hub) -> None:
    async with serve(make_app(hub)) as (url, _), httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/events")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthenticated"
        assert (await client.post("/events", params={"token": "admin"})).status_code == 405


async def test_a_stream_that_cannot_keep_up_is_ended() -> None:
    broker = MemoryBroker(history_size=100, history_ttl=60)
    async with Hub(broker, queue_size=2) as hub:
        probe = SendProbe(make_app(hub, send_timeout=0.5))
        async with serve(probe) as (url, _):
            async with client_that_does_not_read(url):
                await wait_for(lambda: hub.connections == 1, message="the stream to open")
                await back_up(broker, probe)
                for _ in range(3):  # behind the waiting write: more than the connection's queue of two
                    await broker.publish(make_event())
                await wait_for(lambda: hub.connections == 0, message="the overflowing stream to end")
            assert hub.overflows == 1
            async with sse(url, params={"token": "admin"}) as other:
                await wait_for(lambda: other.text, message="a new stream to open")
                for _ in range(5):  # a client that reads keeps up, however fast they come
                    await broker.publish(make_event())
                await wait_for(lambda: len(other.messages) == 5, message="live events on a new connection")
            assert hub.overflows == 1


async def test_closing_the_hub_ends_every_stream_promptly_so_the_server_stops_fast(broker: Broker) -> None:
    hub = Hub(broker)
    await hub.start()
    async with serve(make_app(hub, ping_interval=30)) as (url, server):
        async with sse(url, params={"token": "admin"}) as first, sse(url, params={"token": "admin"}) as second:
            await wait_for(lambda: first.text and second.text and hub.connections == 2, message="two streams")
            started = time.monotonic()
            await hub.close()
            await asyncio.wait_for(asyncio.gather(first.ended.wait(), second.ended.wait()), 2)
        server.should_exit = True
    assert time.monotonic() - started < 2


class SendProbe:
    """Middleware counting the ASGI sends in progress: one that stays in progress is waiting for the client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.in_flight = 0
        self.sent = 0  # body bytes handed to the server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def probed(message: Message) -> None:
            self.in_flight += 1
            try:
                await send(message)
            finally:
                self.in_flight -= 1
                self.sent += len(message.get("body", b""))

        await self.app(scope, receive, probed)


@contextlib.asynccontextmanager
async def client_that_does_not_read(url: str) -> AsyncIterator[None]:
    """An SSE request on a raw socket that is never read: the server's writes back up."""
    host, port = url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /events?token=admin HTTP/1.1\r\nHost: test\r\n\r\n")
    await writer.drain()
    try:
        yield
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def back_up(broker: Broker, probe: SendProbe, *, then_write: bool = True) -> None:
    """Fill the connection: one write of more than the socket buffers hold (the server's transport keeps
    the rest and takes no more), then (`then_write`) a write that waits."""
    await broker.publish(make_event(blob="x" * 20_000_000))
    await wait_for(lambda: probe.sent > 20_000_000 and probe.in_flight == 0, message="the big write")
    if then_write:
        await broker.publish(make_event())
        await wait_for(lambda: probe.in_flight == 1, message="a write waiting for the client")


async def test_a_write_the_client_does_not_take_is_cut_after_the_send_timeout() -> None:
    broker = MemoryBroker(history_size=100, history_ttl=60)
    async with Hub(broker) as hub:
        probe = SendProbe(make_app(hub, send_timeout=0.5))
        async with serve(probe) as (url, _), client_that_does_not_read(url):
            await wait_for(lambda: hub.connections == 1, message="the stream to open")
            await back_up(broker, probe)
            await wait_for(lambda: hub.connections == 0, message="the stuck stream to be cut")
            assert probe.in_flight == 0
            assert hub.overflows == 0


@pytest.mark.parametrize("writing", [True, False], ids=["while-writing", "idle"])
async def test_closing_the_hub_ends_a_stream_the_client_does_not_read_promptly(writing: bool) -> None:
    broker = MemoryBroker(history_size=100, history_ttl=60)
    async with Hub(broker) as hub:
        probe = SendProbe(make_app(hub, send_timeout=60))
        async with serve(probe) as (url, _), client_that_does_not_read(url):
            await wait_for(lambda: hub.connections == 1, message="the stream to open")
            await back_up(broker, probe, then_write=writing)
            started = time.monotonic()
            await hub.close()
            await wait_for(lambda: hub.connections == 0, timeout=3, message="the stuck stream to end")
            assert time.monotonic() - started < 3
