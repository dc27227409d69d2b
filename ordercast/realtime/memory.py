"""The in-process broker: one process, history in memory, a fresh epoch per start (and per dropped channel)."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Callable
from itertools import islice

from ordercast.events import Event, Position
from ordercast.realtime.broker import FeedBuffer, FeedItem, Placed, Replay, Reset, Resumed, new_epoch
from ordercast.running import Running


class _Channel:
    __slots__ = ("epoch", "history", "offset")

    def __init__(self, epoch: str, history_size: int) -> None:
        self.epoch = epoch
        self.offset = 0
        # (offset, placed at, event); offsets are contiguous and end at `self.offset`.
        self.history: deque[tuple[int, float, Event]] = deque(maxlen=history_size)


class MemoryBroker(Running):
    """`Broker` for a single process: ring buffers per channel, trimmed by count and age; `prune()` drops
    the channels with no event for `history_ttl`, so memory follows the active channels, not every customer.

    A dropped channel starts again at offset 1, so it must not reuse its epoch: a channel's epoch is this
    start's plus the number of prune passes that dropped something before the channel was created.
    """

    def __init__(
        self,
        *,
        history_size: int,
        history_ttl: float,
        feed_size: int = 10_000,
        seen_size: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._history_size = history_size
        self._history_ttl = history_ttl
        self._feed_size = feed_size
        self._seen_size = seen_size
        self._clock = clock
        self._start = new_epoch()
        self._drops = 0
        self._channels: dict[str, _Channel] = {}
        # event id → (placed at, positions), oldest first, for idempotent publishing.
        self._seen: OrderedDict[str, tuple[float, dict[str, Position]]] = OrderedDict()
        self._listeners: set[FeedBuffer] = set()
        self._closed = False

    async def start(self) -> None:
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        for listener in self._listeners:
            listener.close()

    async def ping(self) -> None:
        return None

    async def publish(self, event: Event) -> dict[str, Position]:
        now = self._clock()
        self._forget(now)
        seen = self._seen.get(event.id)
        if seen is not None:
            return dict(seen[1])
        positions: dict[str, Position] = {}
        for name in dict.fromkeys(event.channels):
            channel = self._channel(name)
            channel.offset += 1
            channel.history.append((channel.offset, now, event))
            self._trim(channel, now)
            positions[name] = Position(channel.epoch, channel.offset)
        self._seen[event.id] = (now, positions)
        for name, position in positions.items():
            placed = Placed(name, position, event)
            for listener in self._listeners:
                listener.put(placed)
        return dict(positions)

    async def current(self, channel: str) -> Position:
        state = self._channels.get(channel)
        return Position(state.epoch, state.offset) if state is not None else Position(self._epoch(), 0)

    async def replay(self, channel: str, after: Position) -> Replay | Reset:
        state = self._channels.get(channel)
        current = await self.current(channel)
        if after.epoch != current.epoch:
            # An earlier epoch of this start: the channel was dropped for being quiet, its history with it.
            mine = after.epoch.startswith(f"{self._start}.")
            return Reset("expired" if mine else "epoch", current)
        if after.offset > current.offset:
            return Reset("invalid", current)
        missed = current.offset - after.offset
        if missed == 0 or state is None:
            return []
        self._trim(state, self._clock())
        kept = len(state.history)
        if missed > kept:
            return Reset("expired", current)
        return [
            (Position(state.epoch, offset), event) for offset, _, event in islice(state.history, kept - missed, kept)
        ]

    async def prune(self) -> int:
        """Drop every channel with no event for `history_ttl` (its history expired); how many were dropped."""
        now = self._clock()
        quiet: list[str] = []
        for name, channel in self._channels.items():
            self._trim(channel, now)
            if not channel.history:
                quiet.append(name)
        for name in quiet:
            del self._channels[name]
        if quiet:
            # Channels created from now on (a dropped one again, too) get a new epoch.
            self._drops += 1
        self._forget(now)
        return len(quiet)

    async def feed(self) -> AsyncGenerator[FeedItem, None]:
        listener = FeedBuffer(self._feed_size)
        self._listeners.add(listener)
        try:
            yield Resumed()
            while not self._closed and (item := await listener.get()) is not None:
                yield item
        finally:
            self._listeners.discard(listener)

    def _channel(self, name: str) -> _Channel:
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(self._epoch(), self._history_size)
        return channel

    def _epoch(self) -> str:
        """The epoch of a channel created now."""
        return f"{self._start}.{self._drops}"

    def _trim(self, channel: _Channel, now: float) -> None:
        oldest = now - self._history_ttl
        history = channel.history
        while history and history[0][1] < oldest:
            history.popleft()

    def _forget(self, now: float) -> None:
        oldest = now - self._history_ttl
        seen = self._seen
        while seen:
            placed_at, _ = next(iter(seen.values()))
            if placed_at >= oldest and len(seen) < self._seen_size:
                break
            seen.popitem(last=False)
