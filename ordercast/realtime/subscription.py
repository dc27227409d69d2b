"""One connection's view of a channel: the replay (or a reset), then live messages, in a bounded queue."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

from ordercast.events import Position
from ordercast.realtime.holders import Grant
from ordercast.realtime.message import Message

if TYPE_CHECKING:
    from ordercast.realtime.hub import Hub

# Why a subscription ended: its queue overflowed or a write stalled (a slow client), the server shut
# down, the broker's history couldn't fill a gap, the client left, its credential expired or was
# revoked, or the stream simply finished.
CloseReason = Literal["overflow", "stalled", "shutdown", "unavailable", "disconnected", "expired", "revoked", "done"]


class Subscription:
    """One connection's view of a channel: the replay (or a reset), then live messages, bounded."""

    def __init__(self, hub: Hub, grant: Grant, last_event_id: str | None, maxsize: int) -> None:
        self.grant = grant
        self.channel = grant.channel
        self.last_event_id = last_event_id
        self.close_reason: CloseReason | None = None
        self._hub = hub
        self._maxsize = maxsize
        self._ready = False
        self._initial: deque[Message] = deque()
        self._queue: deque[Message] = deque()
        self._last: Position | None = None
        self._waiter: asyncio.Future[None] | None = None
        # Set by a consumer waiting with nothing queued: takes a message at once (True) or leaves it
        # to be queued (False). It saves a task wake-up per message, the largest cost of fan-out.
        self._sink: Callable[[Message], bool] | None = None
        self._on_close: list[Callable[[], None]] = []
        # Set once the hub has opened it (a refused one never was): only opened ones count as disconnects.
        self.opened = False

    async def __aenter__(self) -> Self:
        await self._hub._open(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close("done")
        self._hub._release(self)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Message:
        while self.close_reason is None:
            if self._initial:
                return self._initial.popleft()
            if self._queue:
                return self._queue.popleft()
            await self._wait(None)
        raise StopAsyncIteration

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    async def next_batch(
        self, max_wait: float | None = None, limit: int = 256, *, sink: Callable[[Message], bool] | None = None
    ) -> list[Message]:
        """Up to `limit` queued messages, waiting up to `max_wait` seconds for one; `[]` if none came or once closed.

        While it waits, `sink` (if given) is offered each new message first, in order: what it takes
        (returns True for) is not queued. Once it declines one, that and every later message queue
        as usual until the next wait.
        """
        if not self._initial and not self._queue and self.close_reason is None:
            self._sink = sink if self._ready else None
            try:
                await self._wait(max_wait)
            finally:
                self._sink = None
        if self.close_reason is not None:
            return []
        batch: list[Message] = []
        for source in (self._initial, self._queue):
            while source and len(batch) < limit:
                batch.append(source.popleft())
        return batch

    def close(self, reason: CloseReason) -> None:
        """End the subscription: the consumer sees `closed` (queued messages are dropped)."""
        if self.close_reason is not None:
            return
        self.close_reason = reason
        self._initial.clear()
        self._queue.clear()
        self._wake()
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            callback()

    def wake(self) -> None:
        """Make a waiting `next_batch` return now (with `[]` if nothing is queued)."""
        self._wake()

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call `callback` (synchronously, once) when the subscription is closed."""
        if self.close_reason is not None:
            callback()
        else:
            self._on_close.append(callback)

    def _begin(self, initial: list[Message], boundary: Position) -> None:
        """The seam: the replay first, then live messages after `boundary` (none twice)."""
        if self.close_reason is not None:
            return
        early, self._queue = self._queue, deque()
        self._initial.extend(initial)
        self._last = boundary
        self._ready = True
        for message in early:
            self._offer(message)
        self._wake()

    def _offer(self, message: Message) -> None:
        if self.close_reason is not None:
            return
        if self._ready:
            last = self._last
            position = message.position
            if (
                message.event is not None
                and last is not None
                and position.epoch == last.epoch
                and position.offset <= last.offset
            ):
                return
            self._last = position
        sink = self._sink
        if sink is not None:
            if sink(message):
                return
            self._sink = None
        if len(self._queue) >= self._maxsize:
            self._hub.overflows += 1
            self.close("overflow")
            return
        self._queue.append(message)
        if self._ready:
            self._wake()

    async def _wait(self, max_wait: float | None) -> None:
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        # A plain timer rather than asyncio.timeout: an idle connection's ping interval passing is the
        # normal case here, not an error worth an exception.
        timer = loop.call_later(max_wait, _wake, waiter) if max_wait is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        # The consumer is about to run: from here on, messages queue behind whatever it will do.
        self._sink = None
        if self._waiter is not None:
            _wake(self._waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
