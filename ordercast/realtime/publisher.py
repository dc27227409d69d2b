"""Publishing committed events: right after the commit, and a sweeper for whatever that missed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from ordercast.events import Event, Position
from ordercast.realtime.broker import Broker
from ordercast.running import Periodic, Running

logger = logging.getLogger("ordercast.realtime.publisher")


class Outbox(Protocol):
    """The committed events (the outbox rows), as the publisher needs them."""

    async def unpublished(self, limit: int, older_than: float) -> list[Event]:
        """Unpublished events committed at least `older_than` seconds ago, oldest first."""
        ...

    async def earlier_unpublished(self, event: Event) -> list[Event]:
        """Unpublished events with `event`'s ordering key that happened before it, oldest first."""
        ...

    async def mark_published(self, events: Sequence[Event]) -> None: ...


class Publisher(Running):
    """Places committed events in the broker, each after any earlier unpublished one of its ordering key."""

    def __init__(
        self,
        broker: Broker,
        outbox: Outbox,
        *,
        publish_delay: float = 0.0,
        max_pending: int = 1000,
        close_timeout: float = 5.0,
    ) -> None:
        self.broker = broker
        self.outbox = outbox
        # Test knob: hold the after-commit publish back, so a test can stop the process in between.
        self.publish_delay = publish_delay
        self._max_pending = max_pending
        self._close_timeout = close_timeout
        self._pending: set[asyncio.Task[bool]] = set()

    async def place(self, events: Sequence[Event]) -> dict[str, dict[str, Position]]:
        """Place `events` (earlier unpublished events of their ordering keys first, the events each caused
        right after it), then mark them published.

        Raises when the broker or the outbox fails; placing again is harmless.
        """
        placed: dict[str, dict[str, Position]] = {}
        published: list[Event] = []
        for event in [each for given in events for each in given.with_caused()]:
            if event.id in placed:
                continue
            if event.ordering_key is not None:
                for earlier in await self.outbox.earlier_unpublished(event):
                    if earlier.id not in placed:
                        placed[earlier.id] = await self.broker.publish(earlier)
                        published.append(earlier)
            placed[event.id] = await self.broker.publish(event)
            published.append(event)
        if published:
            await self.outbox.mark_published(published)
        return placed

    async def publish(self, events: Sequence[Event]) -> bool:
        """Publish events just committed; on failure log it and return False (the sweeper retries)."""
        if self.publish_delay > 0:
            await asyncio.sleep(self.publish_delay)
        try:
            await self.place(events)
        except Exception:
            logger.warning("publishing %d event(s) failed; the sweeper will retry", len(events), exc_info=True)
            return False
        return True

    def publish_soon(self, events: Sequence[Event]) -> None:
        """`publish` in a task this publisher owns, so the caller (a request) doesn't wait for the broker."""
        if not events:
            return
        if len(self._pending) >= self._max_pending:
            # The broker is slow or down: don't pile up tasks; the sweeper publishes these.
            logger.warning(
                "%d publishes in flight; leaving %d event(s) to the sweeper", len(self._pending), len(events)
            )
            return
        task = asyncio.create_task(self.publish(list(events)), name="ordercast.realtime.publish")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def close(self) -> None:
        """Let in-flight publishes finish (up to the close timeout), then cancel the rest."""
        pending = set(self._pending)
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=self._close_timeout)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)


class Sweeper(Periodic):
    """Publishes events left unpublished (a crash or a failed publish after commit), every `interval`,
    or at once when woken (e.g. on a database notification)."""

    name = "ordercast.realtime.sweeper"

    def __init__(
        self,
        publisher: Publisher,
        outbox: Outbox,
        *,
        interval: float,
        grace: float,
        batch_size: int = 100,
        max_batches: int = 100,
        max_backoff: float = 30.0,
    ) -> None:
        super().__init__(interval)
        self.restart_base = interval
        self.restart_cap = max(max_backoff, interval)
        self._publisher = publisher
        self._outbox = outbox
        # Younger events are probably still being published by the request that committed them.
        self._grace = grace
        self._batch_size = batch_size
        self._max_batches = max_batches

    async def sweep(self) -> int:
        """One pass: publish unpublished events older than the grace period; returns how many."""
        total = 0
        for _ in range(self._max_batches):
            events = await self._outbox.unpublished(self._batch_size, self._grace)
            if not events:
                break
            await self._publisher.place(events)
            total += len(events)
            if len(events) < self._batch_size:
                break
        return total

    async def tick(self) -> None:
        published = await self.sweep()
        if published:
            logger.info("swept %d unpublished event(s)", published)
