"""The Web Push channel: each delivery is one encrypted push (RFC 8291, by pywebpush) to one
subscription, signed with VAPID (RFC 8292), sent through the outbound client every user-given
address goes through (the address rule, no redirects; `notify/outbound.py`).

What push services answer decides what happens to the delivery: 2xx sent; 404/410 the subscription
is gone (deleted, its queued pushes skipped); 429 wait for `Retry-After` before pushing to that
service again; 5xx and timeouts retry with backoff; a forbidden address, a redirect, 400/403/413 and
other 4xx fail for good. What is recorded is a category (`http_403`, `timeout`), never the answer's body.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import urlsplit

import orjson
from pywebpush import WebPusher
from tortoise import connections

from ordercast.models.sql import Statement
from ordercast.notify.dispatch import RecipientGone, RetryLater, Undeliverable
from ordercast.notify.outbound import Outbound, OutboundError
from ordercast.notify.planning import PUSH
from ordercast.notify.queue import Claimed
from ordercast.notify.templates.admin import push_message
from ordercast.notify.vapid import Token, VapidKey
from ordercast.running import Running

logger = logging.getLogger("ordercast.notify")

SENT: Final = frozenset({200, 201, 202})
GONE: Final = frozenset({404, 410})
# What a refusal means, for the alert it raises (`delivery:push:<reason>`).
REFUSALS: Final = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 413: "payload_too_large"}
MAX_RETRY_AFTER: Final = 86_400.0
# A subscription's last success is written at most this often (not once per push), unless it had failed.
_SUCCESS_NOTED_EVERY: Final = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    endpoint: str
    p256dh: str
    auth: str
    origin: str
    # Its push service answered 429: nothing goes to it before then.
    paused_until: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None


_SUBSCRIPTIONS = """
SELECT s.id, s.endpoint, s.p256dh, s.auth, s.origin, s.last_success_at, s.last_error, p.paused_until
FROM push_subscriptions AS s LEFT JOIN push_services AS p ON p.origin = s.origin
WHERE s.id IN ({ids})
"""


def _as_time(value: datetime | str | None) -> datetime | None:
    # asyncpg gives datetimes, SQLite the text Tortoise stored.
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


class Subscriptions:
    """Subscriptions by id: the sends that ask at the same moment (one claim's) share one query."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[asyncio.Future[Subscription | None]]] = {}
        self._loading: asyncio.Task[None] | None = None

    async def get(self, subscription_id: str) -> Subscription | None:
        future: asyncio.Future[Subscription | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(subscription_id, []).append(future)
        if self._loading is None:
            self._loading = asyncio.create_task(self._load(), name="ordercast.notify.push.subscriptions")
        return await future

    async def _load(self) -> None:
        await asyncio.sleep(0)  # the other sends of this claim start now and join this query
        waiting, self._waiting, self._loading = self._waiting, {}, None
        try:
            statement = Statement(connections.get("default"))
            rows = await statement.run(_SUBSCRIPTIONS.replace("{ids}", statement.each(waiting)))
        except Exception as error:  # noqa: BLE001 — handed to every waiting send, which retries
            for futures in waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
            return
        found = {
            row["id"]: Subscription(
                **{
                    **row,
                    "paused_until": _as_time(row["paused_until"]),
                    "last_success_at": _as_time(row["last_success_at"]),
                }
            )
            for row in rows
        }
        for subscription_id, futures in waiting.items():
            for future in futures:
                if not future.done():
                    future.set_result(found.get(subscription_id))


class CurrentKey:
    """The VAPID key from its source, read again every `ttl` seconds (so a rotation reaches every process)."""

    def __init__(self, load: Callable[[], Awaitable[VapidKey]], ttl: float) -> None:
        self._load = load
        self._ttl = ttl
        self._key: VapidKey | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> VapidKey:
        if self._key is not None and time.monotonic() - self._read_at < self._ttl:
            return self._key
        async with self._lock:
            if self._key is None or time.monotonic() - self._read_at >= self._ttl:
                self._key = await self._load()
                self._read_at = time.monotonic()
            return self._key


# (push service host, HTTP status or an error's category) for metrics.
ObserveResponse = Callable[[str, str], None]
# (subscription id, None for a success or the failure's category): what the device list shows.
RecordResult = Callable[[str, str | None], Awaitable[None]]


class PushChannel(Running):
    """Sends the push of each delivery to its subscription."""

    name = PUSH

    def __init__(
        self,
        key: CurrentKey,
        *,
        subject: str,
        base_url: str,
        ttl: int,
        timeout: float,
        forget: Callable[[str], Awaitable[None]],
        pause: Callable[[str, datetime], Awaitable[None]],
        record: RecordResult | None = None,
        connections: int = 100,
        allow_private: bool = False,
        observe: ObserveResponse | None = None,
    ) -> None:
        self._key = key
        self._subject = subject
        self._base_url = base_url
        self._ttl = ttl
        self._forget = forget
        self._pause = pause
        self._record = record
        self._observe = observe
        self._subscriptions = Subscriptions()
        self._outbound = Outbound(allow_private=allow_private, timeout=timeout, connections=connections)
        # A VAPID token per (push service, key): signed once, reused until it nears its expiry.
        self._tokens: dict[tuple[str, str], Token] = {}

    async def start(self) -> None:
        await self._outbound.start()

    async def close(self) -> None:
        await self._outbound.close()

    async def send(self, delivery: Claimed) -> None:
        message = push_message(delivery.event_type, delivery.event_data)
        if message is None:
            raise Undeliverable(f"no push for a {delivery.event_type or 'missing'} event")
        subscription = await self._subscriptions.get(delivery.recipient)
        if subscription is None:
            raise RecipientGone("the subscription was deleted")
        origin = subscription.origin
        if subscription.paused_until is not None:
            paused_for = (subscription.paused_until - datetime.now(UTC)).total_seconds()
            if paused_for > 0:
                raise RetryLater(f"{origin} asked us to wait (429)", after=paused_for)
        if not self._outbound.started:
            raise RetryLater("the push channel is not running")
        host = urlsplit(origin).netloc
        try:
            self._outbound.check(subscription.endpoint)
        except OutboundError as error:
            await self._failed(subscription, host, error.category)
            raise Undeliverable(error.category, code=error.category) from None
        headers = {
            "Authorization": self._token(await self._key.get(), origin),
            "Urgency": message.urgency,
            "TTL": str(self._ttl),
            "Content-Encoding": "aes128gcm",
        }
        if message.topic:
            headers["Topic"] = message.topic
        keys = {"p256dh": subscription.p256dh, "auth": subscription.auth}
        body = WebPusher({"endpoint": subscription.endpoint, "keys": keys}).encode(
            orjson.dumps(message.payload(self._base_url)), "aes128gcm"
        )["body"]
        delivery.handed_over = True
        try:
            answer = await self._outbound.post(subscription.endpoint, data=body, headers=headers)
        except OutboundError as error:
            await self._failed(subscription, host, error.category)
            if error.permanent:
                raise Undeliverable(error.category, code=error.category) from None
            raise RetryLater(error.category) from None
        status = answer.status
        if status in SENT:
            self._count(host, str(status))
            await self._succeeded(subscription)
            return
        # The status only: the body is whatever that server chose to say (API.md, Deliveries).
        reason = f"http_{status}"
        if status in GONE:
            self._count(host, str(status))
            raise RecipientGone(reason)
        await self._failed(subscription, host, reason, str(status))
        if status == 429:
            after = retry_after(answer.headers.get("Retry-After"))
            if after is not None:
                # Shared through the database: every process holds its pushes to this service back.
                await self._pause(origin, datetime.now(UTC) + timedelta(seconds=after))
            raise RetryLater(reason, after=after)
        if status >= 500:
            raise RetryLater(reason)
        if 300 <= status < 400:
            raise Undeliverable(reason, code="redirect")  # never followed: it could point anywhere
        raise Undeliverable(reason, code=REFUSALS.get(status, reason))

    async def _succeeded(self, subscription: Subscription) -> None:
        last = subscription.last_success_at
        if subscription.last_error is None and last is not None and datetime.now(UTC) - last < _SUCCESS_NOTED_EVERY:
            return
        await self._note(subscription.id, None)

    async def _failed(self, subscription: Subscription, host: str, category: str, metric: str | None = None) -> None:
        self._count(host, metric or category)
        if category != subscription.last_error:
            await self._note(subscription.id, category)

    async def _note(self, subscription_id: str, error: str | None) -> None:
        if self._record is None:
            return
        try:
            await self._record(subscription_id, error)
        except Exception:  # only the device list's "last success" is late: the push itself stands
            logger.warning("recording push subscription %s's last result failed", subscription_id, exc_info=True)

    async def recipient_gone(self, recipient: str, reason: str) -> None:
        await self._forget(recipient)

    def _token(self, key: VapidKey, origin: str) -> str:
        now = time.time()
        token = self._tokens.get((origin, key.public_key))
        if token is None or not token.fresh(now):
            token = key.authorization(origin, self._subject, now)
            if len(self._tokens) > 1000:
                self._tokens = {k: t for k, t in self._tokens.items() if t.fresh(now)}
            self._tokens[(origin, key.public_key)] = token
        return token.header

    def _count(self, host: str, result: str) -> None:
        if self._observe is not None:
            self._observe(host, result)


def retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds (it may be a number or an HTTP date), or None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return min(max(0.0, (moment - datetime.now(UTC)).total_seconds()), MAX_RETRY_AFTER)
