"""The per-process hub: one broker feed, fanned out to bounded per-connection queues."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Literal, Self

from ordercast.errors import Unavailable
from ordercast.events import Position
from ordercast.realtime.broker import Broker, Placed, Replay, Reset
from ordercast.realtime.message import Message
from ordercast.running import Loop

logger = logging.getLogger("ordercast.realtime.hub")

CloseReason = Literal["overflow", "shutdown", "unavailable", "disconnected", "done"]

# A Last-Event-ID longer than any position we hand out is malformed; don't ship it to the broker.
_MAX_ID_LENGTH = 128


class Subscription:
    """One connection's view of a channel: the replay (or a reset), then live messages, bounded."""

    def __init__(self, hub: Hub, channel: str, last_event_id: str | None, maxsize: int) -> None:
        self.channel = channel
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


class _Channel:
    __slots__ = ("last", "subscribers")

    def __init__(self) -> None:
        self.subscribers: dict[Subscription, None] = {}
        # The last position forwarded to this channel's subscribers.
        self.last: Position | None = None

    def reference(self) -> Position | None:
        """Where the feed should continue: the last forwarded position, else the subscribers' earliest."""
        if self.last is not None:
            return self.last
        known = [sub._last for sub in self.subscribers if sub._ready and sub._last is not None]
        return min(known, default=None, key=lambda position: (position.epoch, position.offset))


class Hub(Loop):
    """One broker feed per process, fanned out to every local subscription, each with a bounded queue.

    The feed is read by the hub's loop, which listens again (after a backoff) when the feed fails or ends.
    """

    name = "ordercast.realtime.hub"
    # The feed ending (its broker closed) is no bug; a traceback is logged for anything else.
    expected_failures = (Unavailable,)

    def __init__(self, broker: Broker, queue_size: int = 1000, *, start_timeout: float = 10.0) -> None:
        self.queue_size = queue_size
        self.overflows = 0
        self.recoveries = 0
        self._broker = broker
        self._start_timeout = start_timeout
        self._channels: dict[str, _Channel] = {}
        self._ready = asyncio.Event()
        # Until started, and from close(): no subscriptions.
        self._closed = True
        # Counts feed interruptions, so a subscription whose seam spanned one reads history again.
        self._interruptions = 0

    async def start(self) -> None:
        """Start listening to the broker's feed; returns once the feed is established."""
        self._closed = False
        await super().start()
        try:
            async with asyncio.timeout(self._start_timeout):
                await self._ready.wait()
        except TimeoutError:
            await self.close()
            raise Unavailable("the broker's feed did not start") from None

    async def close(self) -> None:
        """End every subscription (their streams finish promptly) and stop listening."""
        self._closed = True
        self._ready.clear()
        await super().close()
        for channel in list(self._channels.values()):
            for subscription in list(channel.subscribers):
                subscription.close("shutdown")

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and not self._closed

    @property
    def connections(self) -> int:
        return sum(len(channel.subscribers) for channel in self._channels.values())

    def subscribe(self, channel: str, last_event_id: str | None = None) -> Subscription:
        """A subscription to `channel` (use `async with`): missed events after `last_event_id`, then live ones.

        No id: live events from now. An id history can't answer (or a malformed one): a reset first.
        """
        return Subscription(self, channel, last_event_id, self.queue_size)

    async def _open(self, subscription: Subscription) -> None:
        if self._closed:
            raise Unavailable("the event stream is not available (shutting down)")
        if not self._ready.is_set():
            try:
                async with asyncio.timeout(self._start_timeout):
                    await self._ready.wait()
            except TimeoutError:
                raise Unavailable("the broker's feed is not established") from None
        name = subscription.channel
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel()
        # Registered before history is read: whatever is placed from now on is queued, and the seam
        # drops what the history read already covered.
        channel.subscribers[subscription] = None
        try:
            seen = self._interruptions
            initial: list[Message] = []
            last_id = subscription.last_event_id
            after = Position.parse(last_id) if last_id is not None and len(last_id) <= _MAX_ID_LENGTH else None
            if after is None:
                boundary = await self._broker.current(name)
                if last_id is not None:
                    initial.append(Message(boundary, reason="invalid"))
            else:
                boundary = _extend(initial, await self._broker.replay(name, after), after)
            while seen != self._interruptions:
                # The feed was interrupted while history was read: what it lost may lie after the read.
                seen = self._interruptions
                boundary = _extend(initial, await self._broker.replay(name, boundary), boundary)
            subscription._begin(initial, boundary)
        except BaseException:
            self._release(subscription)
            raise

    def _release(self, subscription: Subscription) -> None:
        channel = self._channels.get(subscription.channel)
        if channel is None:
            return
        channel.subscribers.pop(subscription, None)
        if not channel.subscribers:
            del self._channels[subscription.channel]

    async def run(self) -> None:
        feed = self._broker.feed()
        try:
            async for item in feed:
                if isinstance(item, Placed):
                    await self._deliver(item)
                else:
                    self.succeeded()
                    if self._ready.is_set():
                        await self._recover()
                    else:
                        self._ready.set()
        finally:
            await feed.aclose()
        raise Unavailable("the broker's feed ended")

    async def _deliver(self, placed: Placed) -> None:
        channel = self._channels.get(placed.channel)
        if channel is None:
            return
        position = placed.position
        reference = channel.reference()
        if reference is not None:
            if position.epoch != reference.epoch or position.offset > reference.offset + 1:
                # A gap (a lost feed message) or another epoch: history has this event and those before it.
                await self._fill(placed.channel, channel, reference)
                return
            if channel.last is not None and position.offset <= channel.last.offset:
                return
        self._forward(channel, Message(position, placed.event))

    async def _recover(self) -> None:
        """The feed was interrupted: fill every channel's gap from history (or reset where it's gone)."""
        self.recoveries += 1
        self._interruptions += 1
        for name, channel in list(self._channels.items()):
            reference = channel.reference()
            if reference is not None:
                await self._fill(name, channel, reference)

    async def _fill(self, name: str, channel: _Channel, after: Position) -> None:
        try:
            result = await self._broker.replay(name, after)
        except Exception:
            # Without history the gap can't be filled: cut the channel's connections, they resume
            # from their last id once the broker answers again.
            logger.warning("can't fill the gap in %r after %s; closing its connections", name, after, exc_info=True)
            for subscription in list(channel.subscribers):
                subscription.close("unavailable")
            return
        if isinstance(result, Reset):
            self._forward(channel, Message(result.position, reason=result.reason))
            return
        for position, event in result:
            last = channel.last
            if last is None or last.epoch != position.epoch or position.offset > last.offset:
                self._forward(channel, Message(position, event))

    def _forward(self, channel: _Channel, message: Message) -> None:
        channel.last = message.position
        # Offering never unsubscribes (a full queue only marks its subscription closed), so the
        # subscribers can be iterated without a copy.
        for subscription in channel.subscribers:
            subscription._offer(message)


def _extend(initial: list[Message], result: Replay | Reset, boundary: Position) -> Position:
    if isinstance(result, Reset):
        initial.append(Message(result.position, reason=result.reason))
        return result.position
    initial.extend(Message(position, event) for position, event in result)
    return result[-1][0] if result else boundary
