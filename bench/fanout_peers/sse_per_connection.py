"""Peer: the tutorial design, one Redis subscription per SSE connection (sse-starlette).

Each request opens its own `PubSub` on a shared `redis.asyncio.Redis` (so its own Redis connection),
subscribes, and relays `pubsub.listen()` through an `EventSourceResponse`: Redis does the fan-out,
once per connection. (The variant that polls `get_message` and `request.is_disconnected()` in a
loop costs more; this one lets sse-starlette watch the disconnect.)

    FANOUT_PORT=8002 FANOUT_REDIS_URL=redis://127.0.0.1:6379/0 python bench/fanout_peers/sse_per_connection.py
"""

from __future__ import annotations

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
# redis-py's pool stops at 100 connections by default; each subscription holds one.
client = redis.Redis.from_url(settings.redis_url, max_connections=20_000)


async def events(request: Request) -> Response:
    async def stream() -> AsyncIterator[dict[str, str]]:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(settings.channel)
        try:
            async for message in pubsub.listen():
                if message["type"] == "message":
                    yield {"event": "order.status_changed", "data": message["data"].decode()}
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    return EventSourceResponse(stream(), ping=settings.ping_interval)


async def healthz(request: Request) -> Response:
    await client.ping()
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/events", events), Route("/healthz", healthz)])

if __name__ == "__main__":
    run(app, settings)
