"""The broker: places events in channels (positions, history) and feeds placed events to every process."""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol, Self

from ordercast.events import Event, Position

ResetReason = Literal["expired", "epoch", "invalid"]


@dataclass(frozen=True, slots=True)
class Reset:
    """History can't answer a replay: `reason`, and where the channel is now."""

    reason: ResetReason
    position: Position


@dataclass(frozen=True, slots=True)
class Placed:
    """An event placed in a channel, as the feed delivers it."""

    channel: str
    position: Position
    event: Event


@dataclass(frozen=True, slots=True)
class Resumed:
    """The feed is (again) complete from here on; before it, placed events may have been missed."""


FeedItem = Placed | Resumed
Replay = list[tuple[Position, Event]]


class FeedBuffer:
    """One feed's bounded buffer between the broker and the feed's reader. When it overflows it is
    emptied and the reader gets `Resumed`: it is behind, and reads what it missed from history."""

    __slots__ = ("_items", "_lost", "_size", "_waiter", "closed")

    def __init__(self, size: int) -> None:
        self._items: deque[FeedItem] = deque()
        self._size = size
        self._lost = False
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def put(self, item: FeedItem) -> None:
        if len(self._items) >= self._size:
            # The reader is behind: drop what it hasn't read; it recovers from history.
            self._items.clear()
            self._lost = True
        else:
            self._items.append(item)
        self._wake()

    def close(self) -> None:
        """No more items: a waiting `get` returns None."""
        self.closed = True
        self._wake()

    async def get(self) -> FeedItem | None:
        """The next item, once there is one; None once closed."""
        while not self.closed:
            if self._lost:
                self._lost = False
                return Resumed()
            if self._items:
                return self._items.popleft()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Broker(Protocol):
    """Positions and history per channel, and a live feed of everything placed."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    async def publish(self, event: Event) -> dict[str, Position]:
        """Place `event` in each of its channels, once per event id; returns its position per channel."""
        ...

    async def current(self, channel: str) -> Position:
        """The position of the last event placed in `channel` (offset 0 when none)."""
        ...

    async def replay(self, channel: str, after: Position) -> Replay | Reset:
        """Every event of `channel` after `after`, oldest first, or why history can't say."""
        ...

    def feed(self) -> AsyncGenerator[FeedItem, None]:
        """Every event placed from now on, in each of its channels; starts with `Resumed` once listening.

        After an interruption (a lost connection) the feed yields `Resumed` again: events placed
        meanwhile were not delivered and must be read from history.
        """
        ...

    async def ping(self) -> None:
        """Raise `ordercast.errors.Unavailable` when the broker can't be reached."""
        ...

    async def prune(self) -> int:
        """Drop the history of channels with no event for the history TTL (a retention pass calls it); how many."""
        ...


def new_epoch() -> str:
    return secrets.token_hex(6)


def create_broker(
    url: str | None,
    *,
    history_size: int,
    history_ttl: float,
    prefix: str = "ordercast:",
) -> Broker:
    """The broker for `url`: none or `memory://` → in-process; `redis://`, `rediss://`, `unix://` → Redis."""
    scheme = "memory" if url is None else url.partition("://")[0].lower()
    if scheme == "memory":
        from ordercast.realtime.memory import MemoryBroker

        return MemoryBroker(history_size=history_size, history_ttl=history_ttl)
    if scheme in ("redis", "rediss", "unix"):
        from ordercast.realtime.redisbroker import RedisBroker

        assert url is not None
        return RedisBroker(url, history_size=history_size, history_ttl=history_ttl, prefix=prefix)
    raise ValueError(f"unsupported broker URL scheme {scheme!r} (memory://, redis://, rediss:// or unix://)")
