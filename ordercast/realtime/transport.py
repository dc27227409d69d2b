"""What the SSE and WebSocket endpoints share: authorisation, watched writes, the disconnect watch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import HTTPConnection
from starlette.types import Message, Receive, Send

from ordercast.realtime.hub import Subscription

logger = logging.getLogger("ordercast.realtime.transport")

# How long the last write of a stream (its end, a close frame) may take once the server shuts down.
_SHUTDOWN_GRACE = 1.0

Authorize = Callable[[HTTPConnection], Awaitable[str]]
"""Returns the one channel the connection may read, or raises an `OrdercastError`."""


class Outlet:
    """One client's ASGI `send`, watched: a write stuck past `send_timeout` (or in flight at shutdown) is cut.

    One timer per connection does the watching (and says when a ping is due), re-armed about once per
    interval rather than per write: with thousands of connections, a timer per write was the largest
    cost of delivering an event.
    """

    def __init__(
        self,
        send: Send,
        subscription: Subscription,
        *,
        send_timeout: float,
        ping_interval: float | None = None,
    ) -> None:
        self._send = send
        self._subscription = subscription
        self._send_timeout = send_timeout
        self._ping_interval = ping_interval
        self._loop = asyncio.get_running_loop()
        self._deadline: asyncio.Timeout | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._sending_since: float | None = None
        self._last_write = self._loop.time()
        # A ping is due: nothing was written for a whole ping interval.
        self.ping_due = False
        # A write was cut short: the client isn't reading, the response can't be finished properly.
        self.broken = False
        subscription.on_close(self._closed)

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Writes happen inside this block; a cut write ends the block early (with `broken` set)."""
        self._timer = self._loop.call_later(self._next_check(), self._check)
        try:
            async with asyncio.timeout(None) as deadline:
                self._deadline = deadline
                yield
        except TimeoutError:
            if not self.broken:
                raise
        finally:
            self._deadline = None
            self._timer.cancel()

    async def write(self, message: Message) -> bool:
        """Send `message`; False when the client is gone or was cut off."""
        if self.broken:
            return False
        self._sending_since = self._loop.time()
        try:
            await self._send(message)
        except OSError:
            # A server on ASGI 2.4 reports a vanished client this way.
            self.broken = True
            return False
        finally:
            self._sending_since = None
        self._last_write = self._loop.time()
        self.ping_due = False
        return True

    def _cut(self) -> None:
        if self.broken or self._sending_since is None or self._deadline is None:
            return
        self.broken = True
        self._deadline.reschedule(self._loop.time())

    def _closed(self) -> None:
        # Shutdown must not wait for a client that doesn't read: a write in flight is cut now, and the
        # closing write gets a short deadline. An overflowed connection is not cut: its queue is
        # already dropped, and finishing the current write (within the send timeout) lets it end
        # properly (a finished stream, a close code).
        if self._subscription.close_reason != "shutdown":
            return
        self._cut()
        self._send_timeout = min(self._send_timeout, _SHUTDOWN_GRACE)
        if self._timer is not None and self._deadline is not None:
            self._timer.cancel()
            self._timer = self._loop.call_later(self._next_check(), self._check)

    def _check(self) -> None:
        now = self._loop.time()
        if self._sending_since is not None and now - self._sending_since >= self._send_timeout:
            self._cut()
            return
        idle = now - self._last_write
        if self._ping_interval is not None and self._sending_since is None and idle >= self._ping_interval:
            self.ping_due = True
            self._subscription.wake()
        self._timer = self._loop.call_later(self._next_check(), self._check)

    def _next_check(self) -> float:
        now = self._loop.time()
        delay = self._send_timeout
        if self._sending_since is not None:
            delay = self._sending_since + self._send_timeout - now
        if self._ping_interval is not None:
            due = self._last_write + self._ping_interval - now
            delay = min(delay, due if due > 0 else self._ping_interval)
        return max(delay, 0.001)


def watch_disconnect(receive: Receive, subscription: Subscription, disconnect: str) -> asyncio.Task[None]:
    """A task that closes `subscription` when the client goes away (ASGI message type `disconnect`)."""

    async def watch() -> None:
        try:
            while (await receive())["type"] != disconnect:
                pass  # a client has nothing to say on these streams
        except Exception:
            logger.debug("receiving from a stream's client failed", exc_info=True)
        subscription.close("disconnected")

    return asyncio.get_running_loop().create_task(watch(), name="ordercast.realtime.disconnect")
