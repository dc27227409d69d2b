"""Realtime fixtures: every broker behaviour runs against the memory broker and Redis (127.0.0.1:6379).

Each Redis test gets its own key prefix (and feed channel), deleted afterwards, so runs don't collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import uvicorn
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp

from ordercast.errors import OrdercastError, Unauthenticated
from ordercast.events import ADMIN_CHANNEL, Event, customer_channel
from ordercast.ids import new_id
from ordercast.realtime.broker import Broker
from ordercast.realtime.holders import Grant
from ordercast.realtime.hub import Hub
from ordercast.realtime.memory import MemoryBroker
from ordercast.realtime.redisbroker import RedisBroker
from ordercast.realtime.sse import sse_endpoint
from ordercast.realtime.transport import Authorize
from ordercast.realtime.ws import ws_endpoint
from tests.conftest import wait_for

REDIS = os.environ.get("ORDERCAST_TEST_REDIS", "redis://127.0.0.1:6379/0")
BROKERS = ["memory", "redis"]


def make_event(customer_id: str | None = None, ordering_key: str | None = None, **data: Any) -> Event:
    channels = (ADMIN_CHANNEL, customer_channel(customer_id)) if customer_id else (ADMIN_CHANNEL,)
    return Event(
        id=new_id("evt"),
        type="order.created",
        occurred_at=datetime.now(UTC),
        data=data,
        ordering_key=ordering_key,
        channels=channels,
    )


@dataclass
class Brokers:
    """Makes started brokers of one kind (closed at teardown) and does to them what a test needs."""

    kind: str
    prefix: str
    admin: Redis | None
    started: list[Broker] = field(default_factory=list)

    async def make(self, *, history_size: int = 1000, history_ttl: float = 60, small_feed: bool = False) -> Broker:
        broker: Broker
        if self.kind == "memory":
            broker = MemoryBroker(
                history_size=history_size, history_ttl=history_ttl, feed_size=4 if small_feed else 10_000
            )
        else:
            # A slow first reconnect keeps the feed down long enough for a test to publish into the gap.
            broker = RedisBroker(
                REDIS,
                history_size=history_size,
                history_ttl=history_ttl,
                prefix=self.prefix,
                timeout=2,
                health_interval=1,
                reconnect_base=1.0 if small_feed else 0.1,
            )
        await broker.start()
        self.started.append(broker)
        return broker

    async def lose_data(self) -> None:
        """What a restart of the memory broker, or a Redis that lost its data, leaves: no history."""
        if self.admin is not None:
            await delete_prefix(self.admin, self.prefix)

    async def interrupt_feed(self) -> None:
        """Cut the feed: Redis drops the feed's connection; the memory feed (bounded at 4) is cut by a burst."""
        if self.admin is None:
            return
        clients = await self.admin.client_list(_type="pubsub")
        ids = [client["id"] for client in clients if client.get("name") == f"{self.prefix}feed"]
        assert ids, "the feed's connection is not in CLIENT LIST"
        for client_id in ids:
            await self.admin.client_kill_filter(_id=client_id)

    async def feed_subscribers(self) -> int:
        if self.admin is None:
            return 0
        counts = await self.admin.pubsub_numsub(f"{self.prefix}feed")
        return int(counts[0][1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PrivateRedis:
    url: str
    restart: Callable[[], Awaitable[None]]  # stop and start again: everything in it is lost


@contextlib.asynccontextmanager
async def private_redis() -> AsyncIterator[PrivateRedis]:
    """A `redis-server` of the test's own, without persistence, on a free port."""
    port = free_port()
    process: asyncio.subprocess.Process | None = None

    async def start() -> None:
        nonlocal process
        arguments = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        process = await asyncio.create_subprocess_exec("redis-server", *arguments, stdout=asyncio.subprocess.DEVNULL)
        client = Redis(port=port, socket_timeout=1)
        try:
            await wait_for(lambda: _pings(client), message="redis-server to start")
        finally:
            await client.aclose()

    async def stop() -> None:
        if process is not None and process.returncode is None:
            process.terminate()
            await process.wait()

    async def restart() -> None:
        await stop()
        await start()

    await start()
    try:
        yield PrivateRedis(f"redis://127.0.0.1:{port}", restart)
    finally:
        await stop()


async def _pings(client: Redis) -> bool:
    try:
        return bool(await client.ping())
    except (OSError, RedisError):
        return False


async def delete_prefix(admin: Redis, prefix: str) -> None:
    keys = [key async for key in admin.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await admin.delete(*keys)


@pytest.fixture(params=BROKERS)
async def brokers(request: pytest.FixtureRequest) -> AsyncIterator[Brokers]:
    prefix = f"octest-rt:{secrets.token_hex(4)}:"
    admin = Redis.from_url(REDIS, socket_timeout=5) if request.param == "redis" else None
    kit = Brokers(request.param, prefix, admin)
    try:
        yield kit
    finally:
        for broker in kit.started:
            await broker.close()
        if admin is not None:
            await delete_prefix(admin, prefix)
            await admin.aclose()


@pytest.fixture
async def broker(brokers: Brokers) -> Broker:
    return await brokers.make()


@pytest.fixture
async def hub(broker: Broker) -> AsyncIterator[Hub]:
    async with Hub(broker, queue_size=100) as hub:
        yield hub


@contextlib.asynccontextmanager
async def serve(app: ASGIApp, **options: Any) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    """A real uvicorn server in this event loop on a free port; yields its base URL and the server."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_config=None, timeout_graceful_shutdown=5, **options
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started or task.done(), message="uvicorn to start")
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def collect(stream: AsyncIterator[Any], count: int, timeout: float = 5) -> list[Any]:
    """The next `count` items of `stream`, within `timeout` seconds."""
    items: list[Any] = []

    async def take() -> None:
        async for item in stream:
            items.append(item)
            if len(items) == count:
                return

    await asyncio.wait_for(take(), timeout)
    return items


Publish = Callable[[Event], Awaitable[Any]]


async def authorize(connection: HTTPConnection) -> Grant:
    """A trivial authorisation: `?token=admin` reads `admin`, `?token=customer-<id>` that customer's channel."""
    token = connection.query_params.get("token", "")
    if token == "admin":
        return Grant(ADMIN_CHANNEL)
    if token.startswith("customer-"):
        return Grant(customer_channel(token.removeprefix("customer-")))
    raise Unauthenticated()


async def render_error(request: HTTPConnection, error: Exception) -> Response:
    assert isinstance(error, OrdercastError)
    return JSONResponse(error.to_json(), status_code=error.status, headers=error.headers)


def make_app(
    hub: Hub, ping_interval: float = 0.2, send_timeout: float = 10, authorize: Authorize = authorize
) -> Starlette:
    """A tiny app with the two endpoints, as the server mounts them."""
    return Starlette(
        routes=[
            Route("/events", sse_endpoint(hub, authorize, ping_interval, send_timeout=send_timeout), methods=["GET"]),
            WebSocketRoute("/ws", ws_endpoint(hub, authorize, send_timeout=send_timeout)),
        ],
        exception_handlers={OrdercastError: render_error},
    )
