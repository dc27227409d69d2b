"""Peer: sse-starlette with one shared Redis subscription per process.

One task reads the Redis channel and puts each message on every connection's `asyncio.Queue`; each
connection is an `EventSourceResponse` over a generator reading its queue. The usual "broadcast"
design: one subscription, an unbounded queue and a task group of sse-starlette's per connection.

    FANOUT_PORT=8001 FANOUT_REDIS_URL=redis://127.0.0.1:6379/0 python bench/fanout_peers/sse_shared.py
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import redis.asyncio as redis
from common import PeerSettings, run
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

settings = PeerSettings.from_env()
queues: set[asyncio.Queue[str]] = set()
subscribed = asyncio.Event()


async def relay() -> None:
    client = redis.Redis.from_url(settings.redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(settings.channel)
    subscribed.set()
    async for message in pubsub.listen():
        if message["type"] == "message":
            data = message["data"].decode()
            for queue in queues:
                queue.put_nowait(data)


async def events(request: Request) -> Response:
    queue: asyncio.Queue[str] = asyncio.Queue()

    async def stream() -> AsyncIterator[dict[str, str]]:
        queues.add(queue)
        try:
            while True:
                data = await queue.get()
                yield {"event": "order.status_changed", "data": data}
        finally:
            queues.discard(queue)

    return EventSourceResponse(stream(), ping=settings.ping_interval)


async def healthz(request: Request) -> Response:
    return PlainTextResponse(
        "ok" if subscribed.is_set() else "starting", status_code=200 if subscribed.is_set() else 503
    )


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    task = asyncio.create_task(relay())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


app = Starlette(routes=[Route("/events", events), Route("/healthz", healthz)], lifespan=lifespan)

if __name__ == "__main__":
    run(app, settings)
