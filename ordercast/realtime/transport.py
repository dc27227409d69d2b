"""What the SSE and WebSocket endpoints share: authorisation, watched writes, the disconnect watch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import Message, Receive, Send

from ordercast.realtime.holders import Grant
from ordercast.realtime.subscription import Subscription

logger = logging.getLogger("ordercast.realtime.transport")

# How long the last write of a stream (its end, a close frame) may take once the server shuts down.
_SHUTDOWN_GRACE = 1.0

Authorize = Callable[[HTTPConnection], Awaitable[Grant]]
"""Returns what the connection's credential grants (the one channel it may read), or raises an `OrdercastError`."""


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
        # It was cut for taking longer than `send_timeout` (not at shutdown): the client is too slow.
        self.stalled = False
        # A direct write (`write_now`) that had to wait for the client, finishing in its own task.
        self._finishing: asyncio.Future[None] | None = None
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
        if not await self.settle():
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
        self._written()
        return True

    def write_now(self, message: Message) -> bool:
        """Start writing `message` without waiting for this connection's task; False if it can't now.

        The send runs right here: when the transport takes the bytes at once (a client that keeps
        up), it is done before this returns. When it has to wait (the client reads slowly), the
        rest of it runs in a task, and `settle()` waits for that before the stream writes again.
        """
        if self.broken or self._finishing is not None or self._sending_since is not None:
            return False
        self._sending_since = self._loop.time()
        send = self._send(message)
        if not asyncio.iscoroutine(send):  # not a coroutine we can step: let a task await it
            self._finishing = asyncio.ensure_future(send)
            self._finishing.add_done_callback(self._finished)
            return True
        try:
            blocked_on = send.send(None)
        except StopIteration:
            self._written()
            return True
        except Exception as error:
            # The stream's task sees `broken` and ends; the client resumes from its last id. A client
            # gone (OSError, on ASGI 2.4) is normal; anything else is a bug worth its traceback.
            if not isinstance(error, OSError):
                logger.exception("writing to a stream failed")
            self._sending_since = None
            self.broken = True
            self._subscription.wake()
            return True
        self._finishing = self._loop.create_task(_finish(send, blocked_on), name="ordercast.realtime.write")
        self._finishing.add_done_callback(self._finished)
        return True

    async def settle(self) -> bool:
        """Wait for a direct write still in flight; False when it failed (the client is gone)."""
        finishing = self._finishing
        if finishing is not None:
            await asyncio.wait({finishing})
        return not self.broken

    def abandon(self) -> None:
        """Cancel a direct write still in flight (the stream is ending)."""
        if self._finishing is not None:
            self._finishing.cancel()

    def _finished(self, task: asyncio.Future[None]) -> None:
        self._finishing = None
        error = None if task.cancelled() else task.exception()
        if error is not None and not isinstance(error, OSError):
            logger.error("writing to a stream failed", exc_info=error)
        if task.cancelled() or error is not None:
            self._sending_since = None
            self.broken = True
            self._subscription.wake()
            return
        self._written()

    def _written(self) -> None:
        self._sending_since = None
        self._last_write = self._loop.time()
        self.ping_due = False

    def ended(self) -> None:
        """The stream is over: say why on the subscription, if the client's end of it did it."""
        self.abandon()
        if self.broken:
            self._subscription.close("stalled" if self.stalled else "disconnected")

    def _cut(self) -> None:
        if self.broken or self._sending_since is None or self._deadline is None:
            return
        self.broken = True
        self.stalled = self._subscription.close_reason is None
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


async def _finish(send: Coroutine[Any, Any, None], blocked_on: Any) -> None:
    """Run the rest of a send `write_now` started, which is waiting on the future `blocked_on` (or
    yielded None: a bare yield to the loop), as the task that started it would have."""
    try:
        while True:
            if asyncio.isfuture(blocked_on):
                await asyncio.wait({blocked_on})
            else:
                await asyncio.sleep(0)
            # The send reads its future's result (or exception) itself when it resumes.
            blocked_on = send.send(None)
    except StopIteration:
        return
    finally:
        send.close()


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
