"""The Starlette app factory: routes and middleware from lists, one lifespan that owns every resource."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import orjson
from pydantic import SecretStr
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from tortoise.contrib.starlette import RegisterTortoise

from ordercast.bot.app import TelegramBot
from ordercast.config import Settings
from ordercast.errors import MethodNotAllowed, NotFound, OrdercastError
from ordercast.events import ADMIN_CHANNEL, Event, customer_channel
from ordercast.models.db import SchemaBehind, pending_migrations, tortoise_config, upgrade
from ordercast.notify import planning
from ordercast.notify.delivery_alerts import DeliveryAlerts
from ordercast.notify.dispatch import Dispatcher
from ordercast.notify.limits import Limiter, MemoryLimiter, RedisLimiter
from ordercast.notify.push import CurrentKey, PushChannel
from ordercast.notify.queue import DeliveryQueue
from ordercast.notify.telegram import TelegramChannel
from ordercast.notify.templates import Shop
from ordercast.notify.wakeups import EventWakeups
from ordercast.realtime.broker import create_broker
from ordercast.realtime.hub import Hub
from ordercast.realtime.publisher import Publisher, Sweeper
from ordercast.realtime.sse import sse_endpoint
from ordercast.realtime.ws import ws_endpoint
from ordercast.server.auth import Authenticator, CustomerTokens, Sessions
from ordercast.server.clients import ClientAddresses
from ordercast.server.headers import SecurityHeaders
from ordercast.server.limits import BodyLimit
from ordercast.server.logs import redact_server_logs
from ordercast.server.metrics import Metrics, RequestMetrics
from ordercast.server.routes import ROUTES, pages
from ordercast.server.runtime import Runtime, runtime
from ordercast.server.signatures import StandardWebhooks, StripeSignatures
from ordercast.services import push as push_service
from ordercast.services.accounts import KeyRing, ensure_admin, service_admin
from ordercast.services.logins import Logins, Passwords
from ordercast.services.notifications import NotificationExpiry
from ordercast.services.orders import Orders
from ordercast.services.outbox import DatabaseOutbox
from ordercast.services.payments import Payments
from ordercast.services.reviews import Reviews
from ordercast.services.secrets import SecretBox, secret_box, shared_secret
from ordercast.services.telegram import forget_chat

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


async def stream_channel(conn: HTTPConnection) -> str:
    """The one channel a stream connection reads, chosen by its credentials."""
    principal = await runtime(conn).auth.principal(conn)
    return ADMIN_CHANNEL if principal.customer_id is None else customer_channel(principal.customer_id)


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
    hub = Hub(broker, queue_size=settings.connection_queue)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Runtime]]:
        async with AsyncExitStack() as stack:
            if settings.is_sqlite:
                await upgrade(settings.database_url)
            config = tortoise_config(settings.database_url, pool_size=settings.db_pool_size)
            await stack.enter_async_context(RegisterTortoise(app, config=config))
            if not settings.is_sqlite and (pending := await pending_migrations(settings.database_url)):
                # Several processes share the database: they don't migrate it on start, the operator does.
                raise SchemaBehind(
                    f"the database schema is not up to date ({len(pending)} migration(s) pending: "
                    f"{', '.join(pending)}): run `ordercast migrate` first"
                )
            # Generated secrets are stored sealed under the configured key (in clear when it is generated too).
            box = secret_box(secret_value(settings.secret_key))
            secret_key = secret_value(settings.secret_key) or await shared_secret(
                "secret_key", lambda: secrets.token_urlsafe(48)
            )
            if settings.admin_email and settings.admin_password:
                await ensure_admin(settings.admin_email.lower(), settings.admin_password.get_secret_value())
            service = await service_admin()
            tokens = CustomerTokens(secret_key)
            sessions = Sessions(secret_key, settings.session_max_age, cache_ttl=settings.auth_cache_ttl)
            keys = KeyRing(settings.api_key_list, service.id, cache_ttl=settings.auth_cache_ttl)

            await stack.enter_async_context(broker)
            await stack.enter_async_context(hub)
            outbox = DatabaseOutbox()
            publisher = await stack.enter_async_context(Publisher(broker, outbox, publish_delay=settings.publish_delay))
            await stack.enter_async_context(
                Sweeper(publisher, outbox, interval=settings.sweep_interval, grace=settings.sweep_grace)
            )
            redis = None
            if settings.redis_url:
                # The senders' rate limits and the polling lock; the broker keeps its own connections.
                redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
                stack.push_async_callback(redis.aclose)
            # Built before the bot (whose review use case publishes) but entered after it, so it
            # stops sending before the bot stops.
            queue = DeliveryQueue(postgres=not settings.is_sqlite, lease=settings.delivery_lease)
            # Entered before the dispatcher, so the alerts it is raising finish after the last send.
            alerts = await stack.enter_async_context(
                DeliveryAlerts(queue, lambda events: publish(events), after_failures=settings.alert_after_failures)
            )
            dispatcher = Dispatcher(
                queue,
                concurrency=settings.delivery_concurrency,
                claim_interval=settings.delivery_claim_interval,
                retry_base=settings.delivery_retry_base,
                retry_cap=settings.delivery_retry_cap,
                max_attempts=settings.delivery_max_attempts,
                observe=metrics.observe_delivery,
                troubles=alerts,
            )

            def publish(events: Sequence[Event]) -> None:
                publisher.publish_soon(events)
                if any(event.queued for event in events):
                    dispatcher.wake()

            vapid = CurrentKey(
                lambda: push_service.vapid_key(secret_value(settings.vapid_private_key), box),
                ttl=settings.vapid_reload_interval,
            )
            await vapid.get()  # generated and stored now if this is the first start; a bad configured key stops it
            # Entered before the dispatcher, so its session closes after the last send.
            push = await stack.enter_async_context(
                PushChannel(
                    vapid,
                    subject=settings.vapid_subject,
                    base_url=settings.base_url,
                    ttl=settings.push_ttl,
                    timeout=settings.push_send_timeout,
                    connections=settings.push_connections,
                    forget=push_service.forget,
                    pause=push_service.pause,
                    observe=metrics.observe_push,
                )
            )
            dispatcher.add(push)
            await stack.enter_async_context(
                NotificationExpiry(
                    publish,
                    retention=settings.notification_retention,
                    interval=settings.notification_cleanup_interval,
                )
            )

            telegram = None
            if settings.telegram_enabled:
                limiter = telegram_limiter(settings, redis)
                telegram = await stack.enter_async_context(
                    TelegramBot(
                        settings,
                        webhook_secret=await telegram_webhook_secret(settings, box),
                        redis=redis,
                        reviews=Reviews(publish=publish),
                        limiter=limiter,
                    )
                )
                dispatcher.add(
                    TelegramChannel(
                        telegram.bot,
                        limiter,
                        Shop(packing_hours=settings.packing_hours, delivery_days=settings.delivery_days),
                        forget_chat=forget_chat,
                        timeout=settings.telegram_send_timeout,
                    )
                )
            await stack.enter_async_context(dispatcher)
            if planning.TELEGRAM in dispatcher.channels:
                # Woken by the Telegram messages other processes queue (pushes are claimed by the
                # process that queues them, which every process can send).
                await stack.enter_async_context(EventWakeups(hub, dispatcher.wake))
            state = Runtime(
                settings=settings,
                metrics=metrics,
                auth=Authenticator(keys=keys, tokens=tokens, sessions=sessions, base_url=settings.base_url),
                tokens=tokens,
                sessions=sessions,
                keys=keys,
                logins=Logins(
                    Passwords(settings.password_hash_concurrency),
                    per_pair=settings.login_max_failures,
                    per_ip=settings.login_max_failures_per_ip,
                    window=settings.login_window,
                ),
                clients=ClientAddresses(settings.trusted_proxy_networks),
                orders=Orders(publish=publish),
                broker=broker,
                hub=hub,
                dispatcher=dispatcher,
                publish=publish,
                vapid=vapid,
                payments=Payments(publish, receipt_ttl=settings.webhook_receipt_ttl),
                payment_signatures=(
                    StandardWebhooks(settings.payment_secret_list) if settings.payment_secret_list else None
                ),
                stripe_signatures=(
                    StripeSignatures([settings.stripe_webhook_secret.get_secret_value()])
                    if settings.stripe_webhook_secret
                    else None
                ),
                telegram=telegram,
            )
            log.info("ordercast ready at %s", settings.base_url)
            yield {"runtime": state}

    routes = [
        *ROUTES,
        Route(
            "/api/v1/events",
            sse_endpoint(hub, stream_channel, settings.ping_interval, send_timeout=settings.send_timeout),
            methods=["GET"],
        ),
        WebSocketRoute("/api/v1/ws", ws_endpoint(hub, stream_channel, send_timeout=settings.send_timeout)),
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
        exception_handlers={OrdercastError: error_response, HTTPException: error_response},
    )
    app.state.hub = hub
    return app


async def telegram_webhook_secret(settings: Settings, box: SecretBox | None) -> str:
    """The configured secret, else one generated once and shared by every process through the database."""
    if settings.telegram_webhook_secret is not None:
        return settings.telegram_webhook_secret.get_secret_value()
    return await shared_secret("telegram_webhook_secret", lambda: secrets.token_urlsafe(32), box)


def telegram_limiter(settings: Settings, redis: Redis | None) -> Limiter:
    """Telegram's limits: shared by every process through Redis, else within this (only) process."""
    if redis is None:
        return MemoryLimiter(
            per_second=settings.telegram_rate_global, per_recipient_per_second=settings.telegram_rate_chat
        )
    return RedisLimiter(
        redis,
        prefix=f"{settings.redis_prefix}:telegram:rate:",
        per_second=settings.telegram_rate_global,
        per_recipient_per_second=settings.telegram_rate_chat,
    )


def secret_value(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def signal_shutdown(app: Starlette) -> None:
    """Called on SIGTERM/SIGINT: end the event streams now, so the server doesn't wait on them to drain."""
    hub: Hub = app.state.hub
    app.state.closing = asyncio.get_running_loop().create_task(hub.close())
