"""The Starlette app factory: routes and middleware from lists, one lifespan that owns every resource."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

import asyncpg
import orjson
import redis.exceptions
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from tortoise.exceptions import DBConnectionError

from ordercast.config import Settings
from ordercast.errors import MethodNotAllowed, NotFound, OrdercastError, Unavailable
from ordercast.events import ADMIN_CHANNEL, customer_channel
from ordercast.realtime.broker import create_broker
from ordercast.realtime.holders import Grant
from ordercast.realtime.hub import Hub
from ordercast.realtime.sse import sse_endpoint
from ordercast.realtime.ws import ws_endpoint
from ordercast.server import startup
from ordercast.server.auth import ended_credentials, stream_grant
from ordercast.server.headers import SecurityHeaders
from ordercast.server.limits import BodyLimit
from ordercast.server.logs import redact_server_logs
from ordercast.server.metrics import Metrics, RequestMetrics
from ordercast.server.openapi import EVENT_SOCKET, EVENT_STREAM, ApiRoute, ApiWebSocketRoute
from ordercast.server.routes import ROUTES, pages
from ordercast.server.runtime import Runtime, runtime

log = logging.getLogger("ordercast.server")


async def error_response(request: Request, exc: Exception) -> Response:
    """The one place errors become responses: `{"error": {"code", "message", "details"}}`."""
    if isinstance(exc, HTTPException):
        if exc.status_code == 405:
            allow = exc.headers.get("Allow", "") if exc.headers else ""
            exc = MethodNotAllowed(headers={"Allow": allow} if allow else None)
        else:
            exc = NotFound(f"no route {request.url.path}")
    assert isinstance(exc, OrdercastError)
    return Response(
        orjson.dumps(exc.to_json()),
        status_code=exc.status,
        headers=exc.headers,
        media_type="application/json",
    )


# A database or broker that is down, restarting or too slow: the request may well succeed in a moment.
# Only what such a dependency raises: a bug (a bad query, a programming error) stays a 500.
DEPENDENCY_DOWN: tuple[type[Exception], ...] = (
    ConnectionError,  # refused or reset: PostgreSQL or Redis restarting
    TimeoutError,  # asyncpg's command timeout, a pool or socket timeout
    asyncpg.exceptions.OperatorInterventionError,  # statement timeout, pg_terminate_backend, shutdown
    asyncpg.exceptions.ConnectionDoesNotExistError,  # the connection was closed under the query
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    DBConnectionError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


# What asyncpg raises when a connection was taken from under a transaction (its rollback then fails on
# the closed connection, hiding the original error), and on a pooled connection left broken by it. Also
# a programming error's classes: only an outage in the chain, or a closed connection, makes them a 503.
SECONDARY: tuple[type[Exception], ...] = (
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


# asyncpg's words for a connection the server closed under it: "… the underlying connection is closed",
# and, on the next use of a pooled connection PostgreSQL terminated, its protocol's "cannot switch to
# state 15; another operation (2) is in progress" (seen in bench/soak.py's PostgreSQL window).
BROKEN_CONNECTION = ("connection is closed", "cannot switch to state")


def caused_by_outage(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, DEPENDENCY_DOWN) or any(sign in str(seen) for sign in BROKEN_CONNECTION):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def dependency_down(request: Request, exc: Exception) -> Response:
    """503 `unavailable` with `Retry-After` (never a 500) while the database or broker can't answer."""
    if isinstance(exc, SECONDARY) and not caused_by_outage(exc):
        raise exc  # a bug: the server error handler logs it and answers 500
    log.warning("%s %s: a dependency is unavailable (%s)", request.method, request.url.path, type(exc).__name__)
    return await error_response(
        request, Unavailable("the database or broker is unavailable; try again shortly", headers={"Retry-After": "1"})
    )


async def stream_channel(conn: HTTPConnection) -> Grant:
    """The one channel a stream connection reads, chosen by its credentials, and what limits and ends it."""
    rt = runtime(conn)
    principal = await rt.auth.principal(conn)
    channel = ADMIN_CHANNEL if principal.customer_id is None else customer_channel(principal.customer_id)
    return stream_grant(
        principal,
        channel,
        per_credential=rt.settings.max_streams_per_credential,
        per_api_key=rt.settings.max_streams_per_api_key,
    )


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the ordercast ASGI app; with no settings, read them from the environment now."""
    settings = settings or Settings()
    redact_server_logs()
    metrics = Metrics()
    # Built here (not connected until the lifespan starts them) so the stream routes can hold the hub.
    broker = create_broker(
        settings.redis_url,
        history_size=settings.history_size,
        history_ttl=settings.history_ttl,
        prefix=f"{settings.redis_prefix}:",
    )
    # Streams re-check sessions every ping interval, and API keys within the auth cache's TTL of a revocation.
    recheck_interval = min(settings.ping_interval, settings.auth_cache_ttl or settings.ping_interval)
    hub = Hub(
        broker,
        queue_size=settings.connection_queue,
        recheck=partial(ended_credentials, session_max_age=settings.session_max_age),
        recheck_interval=recheck_interval,
        on_close=metrics.stream_closed,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Runtime]]:
        async with AsyncExitStack() as stack:
            await startup.database(app, stack, settings)
            credentials = await startup.credentials(settings)
            publisher = await startup.realtime(stack, settings, broker, hub)
            redis = startup.shared_redis(stack, settings)
            senders = await startup.senders(stack, settings, metrics, publisher)
            vapid = await startup.push(stack, settings, metrics, senders, credentials.box)
            await startup.housekeeping(stack, settings, redis, broker, senders)
            bot = await startup.telegram(stack, settings, redis, senders, credentials.box)
            await startup.dispatch(stack, hub, senders)
            state = startup.runtime(settings, metrics, credentials, hub, broker, senders, vapid, bot)
            log.info("ordercast ready at %s", settings.base_url)
            yield {"runtime": state}

    stream = sse_endpoint(hub, stream_channel, settings.ping_interval, send_timeout=settings.send_timeout)
    socket = ws_endpoint(hub, stream_channel, send_timeout=settings.send_timeout)
    routes = [
        *ROUTES,
        ApiRoute("GET", "/api/v1/events", stream, EVENT_STREAM),
        ApiWebSocketRoute("/api/v1/ws", socket, EVENT_SOCKET),
        Mount("/static", app=StaticFiles(directory=pages.WEB / "static"), name="static"),
    ]
    middleware = [
        Middleware(RequestMetrics, metrics=metrics),
        Middleware(SecurityHeaders, https=settings.secure_cookies),
        Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            OrdercastError: error_response,
            HTTPException: error_response,
            **dict.fromkeys(DEPENDENCY_DOWN + SECONDARY, dependency_down),
        },
    )
    app.state.hub = hub
    return app


def signal_shutdown(app: Starlette) -> None:
    """Called on SIGTERM/SIGINT: end the event streams now, so the server doesn't wait on them to drain."""
    hub: Hub = app.state.hub
    app.state.closing = asyncio.get_running_loop().create_task(hub.close())
