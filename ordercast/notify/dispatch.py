"""The senders' loop: claim due deliveries, send each through its channel, record the outcome.

Runs in every process. Woken by each event (and by its own sends finishing, since that makes the
next message to the same recipient due), and by a timer for retries and leases that ran out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from ordercast.notify.queue import Claimed, DeliveryQueue
from ordercast.running import Periodic, backoff

logger = logging.getLogger("ordercast.notify")


class SendError(Exception):
    """A send that did not succeed; the subclass says what happens to the delivery.

    `code` names the kind of failure in a few words (`forbidden`, `payload_too_large`): the alert a
    permanent failure raises is keyed by it. Without one, it is made from the reason.
    """

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason[:1000]
        self.code = code or failure_code(reason)


def failure_code(reason: str) -> str:
    """`Bad Request: message is too long` → `bad_request`; `Message is too long` → `message_is_too_long`."""
    words = re.sub(r"[^a-z0-9]+", "_", reason.split(":", 1)[0].lower()).strip("_")
    return words[:60] or "unknown"


class RetryLater(SendError):
    """Transient (timeout, 5xx, rate limit): try again after `after` seconds, or after a backoff."""

    def __init__(self, reason: str, after: float | None = None, *, code: str | None = None) -> None:
        super().__init__(reason, code=code)
        self.after = after


class Undeliverable(SendError):
    """Permanent for this message (the provider refused it): recorded as failed, the queue moves on."""


class RecipientGone(SendError):
    """The recipient can't be reached any more (blocked the bot, chat deleted): skip what's queued for it."""


class Channel(Protocol):
    name: str

    async def send(self, delivery: Claimed) -> None:
        """Send one message; set `delivery.handed_over` just before the request goes out; raise `SendError`."""
        ...

    async def recipient_gone(self, recipient: str, reason: str) -> None:
        """Remember that `recipient` can't be reached, so planning skips it from now on."""
        ...


# How long the claim loop, woken while sends are in flight, waits for more of them to finish.
_CLAIM_GATHER = 0.01

# (channel, result, seconds from the event to sent or None) for metrics.
Observe = Callable[[str, str, float | None], None]


class Troubles(Protocol):
    """Who hears of failures (the admins' alerts): the dispatcher reports, this decides what to raise."""

    async def failed(self, delivery: Claimed, reason: str, code: str) -> bool:
        """Record `delivery` as failed for good (and raise what that causes, in the same transaction);
        False if another process had taken it over."""
        ...

    def retrying(self, channel: str, reason: str) -> None:
        """A send failed in a way that is retried with backoff (timeout, 5xx)."""
        ...

    def sent(self, channel: str) -> None:
        """A send succeeded."""
        ...


class Dispatcher(Periodic):
    """Claims due deliveries for its channels, every `claim_interval` or when woken (an event was
    committed, a send finished), and sends up to `concurrency` of them at a time."""

    name = "ordercast.notify.dispatcher"

    def __init__(
        self,
        queue: DeliveryQueue,
        channels: Sequence[Channel] = (),
        *,
        concurrency: int,
        claim_interval: float,
        retry_base: float,
        retry_cap: float,
        max_attempts: int,
        observe: Observe | None = None,
        troubles: Troubles | None = None,
        close_timeout: float = 3.0,
    ) -> None:
        super().__init__(claim_interval)
        self.restart_base = claim_interval
        self.restart_cap = max(30.0, claim_interval)
        self._queue = queue
        self._channels = {channel.name: channel for channel in channels}
        self._concurrency = concurrency
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._max_attempts = max_attempts
        self._observe = observe
        self._troubles = troubles
        self._close_timeout = close_timeout
        self._sending: set[asyncio.Task[None]] = set()
        # When a retry this process scheduled falls due (monotonic clock), to wake for it on time.
        self._next_retry: float | None = None

    @property
    def channels(self) -> list[str]:
        return list(self._channels)

    def add(self, channel: Channel) -> None:
        """Send `channel`'s deliveries too (before `start`)."""
        self._channels[channel.name] = channel

    async def start(self) -> None:
        if self._channels:
            await super().start()

    async def close(self) -> None:
        """Stop claiming; give in-flight sends a moment, then cancel them (unsent claims are given back)."""
        await super().close()
        if self._sending:
            _, late = await asyncio.wait(set(self._sending), timeout=self._close_timeout)
            for sending in late:
                sending.cancel()
            if late:
                await asyncio.wait(late)
        await self._queue.drain()

    async def tick(self) -> None:
        free = self._concurrency - len(self._sending)
        if free > 0:
            for delivery in await self._queue.claim(list(self._channels), free):
                task = asyncio.create_task(self._deliver(delivery), name=f"ordercast.notify.send.{delivery.id}")
                self._sending.add(task)
                task.add_done_callback(self._sent)

    async def rest(self, delay: float) -> None:
        """Wait as `Periodic` does, but no later than the earliest retry this process scheduled."""
        if self._next_retry is not None:
            delay = max(0.0, min(delay, self._next_retry - asyncio.get_running_loop().time()))
            if delay == 0.0:
                self._next_retry = None
        await super().rest(delay)
        if self._sending:
            # Sends are finishing one by one: let a few more free their slots and claim for them
            # all at once, rather than a claim (three queries) per finished send.
            await asyncio.sleep(_CLAIM_GATHER)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self.wake()

    def _retry_at(self, delay: float) -> None:
        due = asyncio.get_running_loop().time() + delay
        if self._next_retry is None or due < self._next_retry:
            self._next_retry = due

    async def _deliver(self, delivery: Claimed) -> None:
        channel = self._channels[delivery.channel]
        try:
            await channel.send(delivery)
        except asyncio.CancelledError:
            if not delivery.handed_over:
                with contextlib.suppress(Exception):
                    await self._queue.release(delivery)
            raise
        except RetryLater as error:
            await self._retry(delivery, error.reason, error.after)
        except Undeliverable as error:
            logger.warning("delivery %s failed permanently: %s", delivery.id, error.reason)
            await self._record(self._fail(delivery, error.reason, error.code), delivery, "failed")
        except RecipientGone as error:
            logger.info("%s recipient %s is gone: %s", delivery.channel, delivery.recipient, error.reason)
            # First remembered (so nothing more is planned for it), then what is queued is skipped:
            # the other way round, a delivery planned in between would still be sent.
            try:
                await channel.recipient_gone(delivery.recipient, error.reason)
            except Exception:
                logger.exception(
                    "remembering that %s recipient %s is gone failed", delivery.channel, delivery.recipient
                )
            await self._record(self._queue.skip_recipient(delivery, error.reason), delivery, "skipped")
        except Exception as error:
            # A bug in a channel must not lose the message: retry it (capped by max_attempts).
            logger.exception("sending delivery %s raised", delivery.id)
            await self._retry(delivery, f"{type(error).__name__}: {error}", None)
        else:
            if self._troubles is not None:
                self._troubles.sent(delivery.channel)
            now = datetime.now(UTC)
            latency = max(0.0, (now - delivery.occurred_at).total_seconds())
            await self._record(self._queue.sent(delivery, now), delivery, "sent", latency)

    async def _retry(self, delivery: Claimed, reason: str, after: float | None) -> None:
        if after is None and self._troubles is not None:
            self._troubles.retrying(delivery.channel, reason)
        if after is None and delivery.attempts >= self._max_attempts:
            logger.warning("delivery %s failed after %d attempts: %s", delivery.id, delivery.attempts, reason)
            await self._record(self._fail(delivery, reason, "gave_up"), delivery, "failed")
            return
        delay = after if after is not None else backoff(delivery.attempts, base=self._retry_base, cap=self._retry_cap)
        await self._record(self._queue.retry(delivery, reason, delay, counted=after is None), delivery, "retrying")
        self._retry_at(delay)

    def _fail(self, delivery: Claimed, reason: str, code: str) -> Awaitable[bool]:
        if self._troubles is None:
            return self._queue.fail(delivery, reason)
        return self._troubles.failed(delivery, reason, code)

    async def _record(
        self, outcome: Awaitable[bool | int], delivery: Claimed, result: str, latency: float | None = None
    ) -> None:
        try:
            recorded = await outcome
        except Exception:
            # The lease runs out and another process (or this one) sends it again: at least once.
            logger.exception("recording delivery %s as %s failed", delivery.id, result)
            return
        if not recorded:
            logger.warning("delivery %s was taken over before it was recorded as %s", delivery.id, result)
        if self._observe is not None:
            self._observe(delivery.channel, result, latency if result == "sent" else None)
