"""The lifespan's named steps. Each builds one part of the server into the exit stack and returns it;
`create_app`'s lifespan calls them in order, so the order of start-up (and, reversed, of shutdown)
reads in one short function, as in uvicorn's `Server.startup`."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import LockError
from starlette.applications import Starlette
from tortoise.contrib.starlette import RegisterTortoise

from ordercast.bot.app import BotOptions, TelegramBot
from ordercast.config import Settings
from ordercast.events import Event
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
from ordercast.realtime.broker import Broker
from ordercast.realtime.hub import Hub
from ordercast.realtime.publisher import Publisher, Sweeper
from ordercast.server.auth import Authenticator, CustomerTokens, Sessions
from ordercast.server.clients import ClientAddresses
from ordercast.server.metrics import Metrics
from ordercast.server.runtime import Runtime
from ordercast.server.signatures import StandardWebhooks, StripeSignatures
from ordercast.services import push as push_service
from ordercast.services.accounts import KeyRing, ensure_admin, service_admin
from ordercast.services.logins import Logins, Passwords
from ordercast.services.orders import Orders
from ordercast.services.outbox import DatabaseOutbox
from ordercast.services.payments import Payments
from ordercast.services.retention import Policy, Retention
from ordercast.services.reviews import Reviews
from ordercast.services.secrets import SecretBox, secret_box, shared_secret
from ordercast.services.telegram import forget_chat

log = logging.getLogger("ordercast.server")


async def database(app: Starlette, stack: AsyncExitStack, settings: Settings) -> None:
    """Connect; bring SQLite up to date, and refuse a PostgreSQL database with migrations pending."""
    if settings.is_sqlite:
        await upgrade(settings.database_url)
    config = tortoise_config(
        settings.database_url,
        pool_size=settings.db_pool_size,
        statement_timeout=settings.db_statement_timeout,
        connect_timeout=settings.db_connect_timeout,
    )
    await stack.enter_async_context(RegisterTortoise(app, config=config))
    if not settings.is_sqlite and (pending := await pending_migrations(settings.database_url)):
        # Several processes share the database: they don't migrate it on start, the operator does.
        raise SchemaBehind(
            f"the database schema is not up to date ({len(pending)} migration(s) pending: "
            f"{', '.join(pending)}): run `ordercast migrate` first"
        )


@dataclass(frozen=True, slots=True)
class Credentials:
    box: SecretBox | None
    tokens: CustomerTokens
    sessions: Sessions
    keys: KeyRing


async def credentials(settings: Settings) -> Credentials:
    """The signing key (configured, or generated once and shared through the database) and the admins."""
    # Generated secrets are stored sealed under the configured key (in clear when it is generated too).
    box = secret_box(secret_value(settings.secret_key))
    secret_key = secret_value(settings.secret_key) or await shared_secret(
        "secret_key", lambda: secrets.token_urlsafe(48)
    )
    if settings.admin_email and settings.admin_password:
        await ensure_admin(settings.admin_email.lower(), settings.admin_password.get_secret_value())
    service = await service_admin()
    return Credentials(
        box=box,
        tokens=CustomerTokens(secret_key),
        sessions=Sessions(secret_key, settings.session_max_age, cache_ttl=settings.auth_cache_ttl),
        keys=KeyRing(settings.api_key_list, service.id, cache_ttl=settings.auth_cache_ttl),
    )


async def realtime(stack: AsyncExitStack, settings: Settings, broker: Broker, hub: Hub) -> Publisher:
    """The broker, this process's hub, the publisher and its safety net, the sweeper."""
    await stack.enter_async_context(broker)
    await stack.enter_async_context(hub)
    outbox = DatabaseOutbox()
    publisher = await stack.enter_async_context(Publisher(broker, outbox, publish_delay=settings.publish_delay))
    await stack.enter_async_context(
        Sweeper(publisher, outbox, interval=settings.sweep_interval, grace=settings.sweep_grace)
    )
    return publisher


def shared_redis(stack: AsyncExitStack, settings: Settings) -> Redis | None:
    """The senders' rate limits and the polling lock (the broker keeps its own connections)."""
    if not settings.redis_url:
        return None
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    stack.push_async_callback(redis.aclose)
    return redis


class Senders:
    """The delivery queue's dispatcher with its channels, and `publish`: committed events to the
    publisher, waking the senders when they queued deliveries."""

    def __init__(self, publisher: Publisher, dispatcher: Dispatcher) -> None:
        self._publisher = publisher
        self.dispatcher = dispatcher

    def publish(self, events: Sequence[Event]) -> None:
        self._publisher.publish_soon(events)
        if any(event.queued for event in events):
            self.dispatcher.wake()


async def senders(stack: AsyncExitStack, settings: Settings, metrics: Metrics, publisher: Publisher) -> Senders:
    """The dispatcher, not started yet: its channels are added first, and it is entered after the bot
    (whose review use case publishes), so it stops sending before the bot stops."""
    queue = DeliveryQueue(postgres=not settings.is_sqlite, lease=settings.delivery_lease)
    built: list[Senders] = []
    # Entered before the dispatcher, so the alerts it is raising finish after the last send.
    alerts = await stack.enter_async_context(
        DeliveryAlerts(queue, lambda events: built[0].publish(events), after_failures=settings.alert_after_failures)
    )
    dispatcher = Dispatcher(
        queue,
        concurrency=settings.delivery_concurrency,
        claim_interval=settings.delivery_claim_interval,
        retry_base=settings.delivery_retry_base,
        retry_cap=settings.delivery_retry_cap,
        max_attempts=settings.delivery_max_attempts,
        probe_interval=settings.channel_probe_interval,
        observe=metrics.observe_delivery,
        troubles=alerts,
    )
    built.append(Senders(publisher, dispatcher))
    return built[0]


async def push(
    stack: AsyncExitStack, settings: Settings, metrics: Metrics, senders: Senders, box: SecretBox | None
) -> CurrentKey:
    """The VAPID key (generated and stored on the first start; a bad configured one stops here) and the
    push channel, entered before the dispatcher so its session closes after the last send."""
    vapid = CurrentKey(
        lambda: push_service.vapid_key(secret_value(settings.vapid_private_key), box),
        ttl=settings.vapid_reload_interval,
    )
    await vapid.get()
    channel = PushChannel(
        vapid,
        subject=settings.vapid_subject,
        base_url=settings.base_url,
        ttl=settings.push_ttl,
        timeout=settings.push_send_timeout,
        connections=settings.push_connections,
        allow_private=settings.outbound_allow_private,
        forget=push_service.forget,
        pause=push_service.pause,
        record=push_service.record_result,
        observe=metrics.observe_push,
    )
    senders.dispatcher.add(await stack.enter_async_context(channel))
    return vapid


async def housekeeping(
    stack: AsyncExitStack, settings: Settings, redis: Redis | None, broker: Broker, senders: Senders
) -> None:
    """Retention, pruned by one process at a time: the one holding the lock in Redis (the only process
    there is without Redis); and the in-process broker's quiet channels, which only this process has."""

    @asynccontextmanager
    async def turn() -> AsyncIterator[bool]:
        if redis is None:
            yield True
            return
        # Expires by itself if its holder dies mid-pass; a pass takes seconds.
        lock = redis.lock(f"{settings.redis_prefix}:retention:lock", timeout=600, blocking=False)
        if not await lock.acquire():
            yield False
            return
        try:
            yield True
        finally:
            with contextlib.suppress(LockError):
                await lock.release()

    await stack.enter_async_context(
        Retention(
            Policy.of(settings),
            publish=senders.publish,
            interval=settings.retention_interval,
            turn=turn,
            extra=broker.prune,
        )
    )


async def telegram(
    stack: AsyncExitStack, settings: Settings, redis: Redis | None, senders: Senders, box: SecretBox | None
) -> TelegramBot | None:
    """The bot (when configured) and its delivery channel."""
    if not settings.telegram_enabled or settings.telegram_token is None or settings.telegram_mode == "off":
        return None
    limiter = telegram_limiter(settings, redis)
    options = BotOptions(
        token=settings.telegram_token.get_secret_value(),
        mode=settings.telegram_mode,
        api_url=settings.telegram_api_url,
        base_url=settings.base_url,
        send_timeout=settings.telegram_send_timeout,
        poll_timeout=settings.telegram_poll_timeout,
        poll_lock_key=f"{settings.redis_prefix}:telegram:poller",
        poll_lock_ttl=settings.telegram_poll_lock_ttl,
        start_retry_cap=settings.telegram_start_retry_cap,
    )
    bot = await stack.enter_async_context(
        TelegramBot(
            options,
            webhook_secret=await telegram_webhook_secret(settings, box),
            redis=redis,
            reviews=Reviews(publish=senders.publish),
            limiter=limiter,
        )
    )
    senders.dispatcher.add(
        TelegramChannel(
            bot.bot,
            limiter,
            Shop(packing_hours=settings.packing_hours, delivery_days=settings.delivery_days),
            forget_chat=forget_chat,
            probe=bot.probe,
            timeout=settings.telegram_send_timeout,
        )
    )
    return bot


async def dispatch(stack: AsyncExitStack, hub: Hub, senders: Senders) -> None:
    """Start sending, with every channel added."""
    await stack.enter_async_context(senders.dispatcher)
    if planning.TELEGRAM in senders.dispatcher.channels:
        # Woken by the Telegram messages other processes queue (pushes are claimed by the process
        # that queues them, which every process can send).
        await stack.enter_async_context(EventWakeups(hub, senders.dispatcher.wake))


def runtime(
    settings: Settings,
    metrics: Metrics,
    credentials: Credentials,
    hub: Hub,
    broker: Broker,
    senders: Senders,
    vapid: CurrentKey,
    bot: TelegramBot | None,
) -> Runtime:
    """What every request reaches: the running parts and the use cases."""
    publish = senders.publish
    return Runtime(
        settings=settings,
        metrics=metrics,
        auth=Authenticator(
            keys=credentials.keys,
            tokens=credentials.tokens,
            sessions=credentials.sessions,
            base_url=settings.base_url,
        ),
        tokens=credentials.tokens,
        sessions=credentials.sessions,
        keys=credentials.keys,
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
        dispatcher=senders.dispatcher,
        publish=publish,
        vapid=vapid,
        payments=Payments(publish, receipt_ttl=settings.webhook_receipt_ttl),
        payment_signatures=(StandardWebhooks(settings.payment_secret_list) if settings.payment_secret_list else None),
        stripe_signatures=(
            StripeSignatures([settings.stripe_webhook_secret.get_secret_value()])
            if settings.stripe_webhook_secret
            else None
        ),
        telegram=bot,
    )


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
