"""The per-process hub: one broker feed, fanned out to bounded per-connection queues."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ordercast.errors import Unavailable
from ordercast.events import Position
from ordercast.realtime.broker import Broker, Placed, Replay, Reset
from ordercast.realtime.holders import Grant, Guard, Holders, Recheck
from ordercast.realtime.message import Message
from ordercast.realtime.subscription import CloseReason, Subscription
from ordercast.running import Loop

__all__ = ["CloseReason", "Grant", "Hub", "Message", "Subscription"]

logger = logging.getLogger("ordercast.realtime.hub")

# A Last-Event-ID longer than any position we hand out is malformed; don't ship it to the broker.
_MAX_ID_LENGTH = 128


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

    def __init__(
        self,
        broker: Broker,
        queue_size: int = 1000,
        *,
        start_timeout: float = 10.0,
        recheck: Recheck | None = None,
        recheck_interval: float = 15.0,
        on_close: Callable[[CloseReason], None] | None = None,
    ) -> None:
        """`recheck` (if given) is asked every `recheck_interval` which revocable credentials are over;
        `on_close` is told why each opened subscription ended."""
        self.queue_size = queue_size
        self.overflows = 0
        self.recoveries = 0
        self._broker = broker
        self._holders = Holders()
        self._guard = Guard(self._holders, recheck, recheck_interval) if recheck is not None else None
        self._on_close = on_close
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
        if self._guard is not None:
            await self._guard.start()

    async def close(self) -> None:
        """End every subscription (their streams finish promptly) and stop listening."""
        self._closed = True
        self._ready.clear()
        if self._guard is not None:
            await self._guard.close()
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

    def subscribe(self, grant: Grant | str, last_event_id: str | None = None) -> Subscription:
        """A subscription to the granted channel (use `async with`): missed events after `last_event_id`, then
        live ones, until the grant's credential expires or is revoked.

        No id: live events from now. An id history can't answer (or a malformed one): a reset first.
        Opening one more than the grant's limit of streams raises `RateLimited`.
        """
        if isinstance(grant, str):
            grant = Grant(grant)
        return Subscription(self, grant, last_event_id, self.queue_size)

    async def _open(self, subscription: Subscription) -> None:
        if self._closed:
            raise Unavailable("the event stream is not available (shutting down)")
        if not self._ready.is_set():
            try:
                async with asyncio.timeout(self._start_timeout):
                    await self._ready.wait()
            except TimeoutError:
                raise Unavailable("the broker's feed is not established") from None
        # Counted (or refused) and registered with no await in between, so parallel opens can't exceed the cap.
        self._holders.admit(subscription)
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
        subscription.opened = True

    def _release(self, subscription: Subscription) -> None:
        self._holders.release(subscription)
        if subscription.opened and self._on_close is not None:
            self._on_close(subscription.close_reason or "done")
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
