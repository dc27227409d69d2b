"""Deliveries over HTTP (`/api/v1/deliveries`, `/stats`), the wiring that wakes the senders on events,
and the alerts that failing deliveries raise."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tortoise.transactions import in_transaction

from ordercast.errors import Malformed
from ordercast.events import ADMIN_CHANNEL
from ordercast.models import DeliveryStatus
from ordercast.notify import planning
from ordercast.notify.queue import Claimed, DeliveryQueue
from ordercast.realtime.backoff import backoff
from ordercast.realtime.hub import Hub
from ordercast.running import Loop, Running
from ordercast.server.http import JSON
from ordercast.server.pagination import decode_cursor, encode_cursor, parse_limit
from ordercast.server.runtime import runtime
from ordercast.services import deliveries
from ordercast.services.alerts import raise_alert, resolve_key
from ordercast.services.outbox import Publish

logger = logging.getLogger("ordercast.notify")


async def list_deliveries(request: Request) -> Response:
    await runtime(request).auth.admin(request)
    query = request.query_params
    status_text = query.get("status")
    if status_text is not None and status_text not in DeliveryStatus._value2member_map_:
        raise Malformed(f"unknown status {status_text!r}", details={"parameter": "status"})
    channel = query.get("channel")
    order_id = query.get("order_id")
    limit = parse_limit(query)
    filters = {"order_id": order_id, "channel": channel, "status": status_text}
    cursor = query.get("cursor")
    before = int(decode_cursor(cursor, filters, prefix="seq")) if cursor else None
    rows = await deliveries.page(
        order_id=order_id,
        channel=channel,
        status=DeliveryStatus(status_text) if status_text else None,
        limit=limit,
        before_seq=before,
    )
    page, more = rows[:limit], len(rows) > limit
    return JSON(
        {
            "items": [row.as_json() for row in page],
            "next_cursor": encode_cursor(str(page[-1].seq), filters) if more else None,
        }
    )


async def delivery_stats(request: Request) -> Response:
    await runtime(request).auth.admin(request)
    stats = await deliveries.stats()
    return JSON({channel: figures.as_json() for channel, figures in stats.items()})


routes = [
    Route("/api/v1/deliveries", list_deliveries, methods=["GET"]),
    Route("/api/v1/deliveries/stats", delivery_stats, methods=["GET"]),
]


def needs_other_senders(event_type: str, data: dict[str, object]) -> bool:
    """Whether another process's senders should look too: a Telegram message may have been queued by a
    process whose bot is off. Every process sends pushes, the committing one first of all."""
    return planning.wants_customer_chat(event_type, data)


class EventWakeups(Loop):
    """Wakes the senders of this process for every event that may have queued deliveries only some
    processes send (Telegram's), whichever process committed it: the hub's `admin` channel carries
    every event."""

    name = "ordercast.notify.wakeups"

    def __init__(self, hub: Hub, wake: Callable[[], None]) -> None:
        self._hub = hub
        self._wake = wake

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                async with self._hub.subscribe(ADMIN_CHANNEL) as subscription:
                    failures = 0
                    while not subscription.closed:
                        batch = await subscription.next_batch()
                        if any(
                            message.event is not None and needs_other_senders(message.event.type, message.event.data)
                            for message in batch
                        ):
                            self._wake()
                    # Closed (too slow, broker gone, shutting down): we may have missed events, so
                    # look once; the claim timer covers the rest.
                    self._wake()
            except Exception:
                logger.debug("the senders' event subscription failed; subscribing again", exc_info=True)
            failures += 1
            await asyncio.sleep(backoff(failures, base=0.1, cap=5.0))


class DeliveryAlerts(Running):
    """The admins' alerts about deliveries (the dispatcher's `Troubles`).

    A delivery that fails for good raises `delivery:<channel>:<code>` in the transaction that records
    the failure. A channel whose sends fail `after_failures` times in a row in this process (timeouts,
    5xx: retried with backoff) raises `delivery:<channel>:failing`, resolved by its next success.
    """

    def __init__(self, queue: DeliveryQueue, publish: Publish, *, after_failures: int) -> None:
        self._queue = queue
        self._publish = publish
        self._after_failures = after_failures
        self._streaks: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last: dict[str, asyncio.Task[None]] = {}

    async def failed(self, delivery: Claimed, reason: str, code: str) -> bool:
        async with in_transaction() as conn:
            if not await self._queue.fail(delivery, reason, using=conn):
                return False
            events = await raise_alert(
                conn,
                key=f"delivery:{delivery.channel}:{code}",
                severity="error",
                title=f"{_NAMES.get(delivery.channel, delivery.channel)} deliveries fail: {code.replace('_', ' ')}",
                message=f"A {delivery.channel} delivery failed for good: {reason} "
                f"(delivery {delivery.id}, event {delivery.event_id}).",
            )
        self._publish(events)
        return True

    def retrying(self, channel: str, reason: str) -> None:
        streak = self._streaks[channel] = self._streaks.get(channel, 0) + 1
        if streak == self._after_failures:
            name = _NAMES.get(channel, channel)
            key = f"delivery:{channel}:failing"
            message = f"{streak} {channel} sends in a row failed and are being retried. The last: {reason}"
            self._spawn(key, lambda: self._raise(key=key, title=f"{name} sends keep failing", message=message))

    def sent(self, channel: str) -> None:
        if self._streaks.pop(channel, 0) >= self._after_failures:
            key = f"delivery:{channel}:failing"
            self._spawn(key, lambda: self._resolve(key))

    async def _raise(self, *, key: str, title: str, message: str) -> None:
        async with in_transaction() as conn:
            events = await raise_alert(conn, key=key, severity="warning", title=title, message=message)
        self._publish(events)

    async def _resolve(self, key: str) -> None:
        async with in_transaction() as conn:
            events = await resolve_key(conn, key, note="sends go through again")
        self._publish(events)

    def _spawn(self, key: str, work: Callable[[], Coroutine[None, None, None]]) -> None:
        # In order per key: a resolve that ran before its raise committed would find nothing to resolve.
        previous = self._last.get(key)

        async def in_turn() -> None:
            if previous is not None:
                await asyncio.wait({previous})
            await work()

        task = asyncio.create_task(in_turn(), name="ordercast.notify.alert")
        self._last[key] = task
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._last = {key: last for key, last in self._last.items() if last is not task}
        if not task.cancelled() and task.exception() is not None:
            logger.error("raising a delivery alert failed", exc_info=task.exception())

    async def close(self) -> None:
        """Let alerts being raised or resolved finish (a few seconds at most), then cancel them."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=3)
        for task in set(self._tasks):
            task.cancel()


_NAMES = {planning.TELEGRAM: "Telegram", planning.PUSH: "Push"}
