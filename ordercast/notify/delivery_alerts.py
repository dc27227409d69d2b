"""The admins' alerts about deliveries that fail."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine

from tortoise.transactions import in_transaction

from ordercast.notify import planning
from ordercast.notify.queue import Claimed, DeliveryQueue
from ordercast.running import Running
from ordercast.services.alerts import SeverityName, raise_alert, resolve_key
from ordercast.services.outbox import Publish

logger = logging.getLogger("ordercast.notify")


class DeliveryAlerts(Running):
    """The admins' alerts about deliveries (the dispatcher's `Troubles`).

    A delivery that fails for good raises `delivery:<channel>:<code>` in the transaction that records
    the failure. A channel whose sends fail `after_failures` times in a row in this process (timeouts,
    5xx: retried with backoff) raises `delivery:<channel>:failing`, resolved by its next success. A
    channel whose provider refuses our credentials raises `channel:<channel>:down`, resolved when a
    probe passes.
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
            title = f"{name} sends keep failing"
            self._spawn(key, lambda: self._raise(key=key, severity="warning", title=title, message=message))

    def sent(self, channel: str) -> None:
        if self._streaks.pop(channel, 0) >= self._after_failures:
            key = f"delivery:{channel}:failing"
            self._spawn(key, lambda: self._resolve(key, note="sends go through again"))

    def down(self, channel: str, reason: str) -> None:
        name = _NAMES.get(channel, channel)
        key = f"channel:{channel}:down"
        message = f"{name} refuses our credentials: {reason}. Its deliveries wait, and go once it takes them again."
        self._spawn(key, lambda: self._raise(key=key, severity="error", title=f"{name} is down", message=message))

    def up(self, channel: str) -> None:
        key = f"channel:{channel}:down"
        self._spawn(key, lambda: self._resolve(key, note="the channel takes our credentials again"))

    async def _raise(self, *, key: str, severity: SeverityName, title: str, message: str) -> None:
        async with in_transaction() as conn:
            events = await raise_alert(conn, key=key, severity=severity, title=title, message=message)
        self._publish(events)

    async def _resolve(self, key: str, *, note: str) -> None:
        async with in_transaction() as conn:
            events = await resolve_key(conn, key, note=note)
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
