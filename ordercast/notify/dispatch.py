"""The senders' loop: claim due deliveries, send each through its channel, record the outcome.

Runs in every process. Woken by each event (and by its own sends finishing, since that makes the
next message to the same recipient due), and by a timer for retries and leases that ran out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from ordercast.notify.queue import Claimed, DeliveryQueue
from ordercast.running import Periodic, backoff

logger = logging.getLogger("ordercast.notify")
# Writes of an outcome tried before giving up: about 10 s at most with the backoff, inside any sane lease.
RECORD_TRIES = 6


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


class ChannelDown(SendError):
    """The provider refuses our credentials (Telegram 401/404 on the token): no message's fault. The
    delivery is given back, its attempt not counted, and the channel's deliveries wait until its
    `probe()` passes."""


class Postponed(SendError):
    """Not sent: the channel may not send before `after` seconds (its rate limit), later than the claim's
    lease lasts. The delivery is given back until then, its attempt not counted."""

    def __init__(self, reason: str, after: float) -> None:
        super().__init__(reason)
        self.after = after


class Channel(Protocol):
    name: str

    async def send(self, delivery: Claimed) -> None:
        """Send one message; set `delivery.handed_over` just before the request goes out; raise `SendError`."""
        ...

    async def recipient_gone(self, recipient: str, reason: str) -> None:
        """Remember that `recipient` can't be reached, so planning skips it from now on."""
        ...


@runtime_checkable
class Probed(Channel, Protocol):
    """A channel that can be down for its credentials (it raises `ChannelDown`)."""

    async def probe(self) -> None:
        """Ask the provider whether it takes our credentials now; raise `ChannelDown` while it refuses them."""
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

    def down(self, channel: str, reason: str) -> None:
        """The channel's provider refuses our credentials: its deliveries wait until a probe passes."""
        ...

    def up(self, channel: str) -> None:
        """A probe passed: the channel's deliveries go again."""
        ...


@dataclass(eq=False)
class _Slots:
    """One channel's send slots: its sends in flight, and why it is down (its deliveries wait) if it is."""

    channel: Channel
    sending: set[asyncio.Task[None]] = field(default_factory=set)
    down: str | None = None
    probe_at: float = 0.0  # loop time of the next probe while down
    probing: asyncio.Task[None] | None = None


class Dispatcher(Periodic):
    """Claims due deliveries for its channels, every `claim_interval` or when woken (an event was
    committed, a send finished), and sends up to `concurrency` of each channel's at a time: each
    channel has its own send slots, so one that hangs or is down never holds another's messages back.
    A channel down for its credentials is probed every `probe_interval` and its deliveries wait."""

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
        probe_interval: float = 60.0,
        observe: Observe | None = None,
        troubles: Troubles | None = None,
        close_timeout: float = 3.0,
    ) -> None:
        super().__init__(claim_interval)
        self.restart_base = claim_interval
        self.restart_cap = max(30.0, claim_interval)
        self._queue = queue
        self._slots = {channel.name: _Slots(channel) for channel in channels}
        self._concurrency = concurrency
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._max_attempts = max_attempts
        self._probe_interval = probe_interval
        self._observe = observe
        self._troubles = troubles
        self._close_timeout = close_timeout
        # When a retry this process scheduled falls due (loop time), to wake for it on time.
        self._next_retry: float | None = None

    @property
    def channels(self) -> list[str]:
        return list(self._slots)

    def add(self, channel: Channel) -> None:
        """Send `channel`'s deliveries too (before `start`)."""
        self._slots[channel.name] = _Slots(channel)

    async def start(self) -> None:
        if self._slots:
            await super().start()

    async def close(self) -> None:
        """Stop claiming; give in-flight sends a moment, then cancel them (unsent claims are given back)."""
        await super().close()
        probes = {slots.probing for slots in self._slots.values() if slots.probing is not None}
        for probe in probes:
            probe.cancel()
        sending = self._sending()
        if sending:
            _, late = await asyncio.wait(sending, timeout=self._close_timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        if probes:
            await asyncio.wait(probes)
        await self._queue.drain()

    async def tick(self) -> None:
        free = {
            name: self._concurrency - len(slots.sending) for name, slots in self._slots.items() if slots.down is None
        }
        for delivery in await self._queue.claim(free):
            slots = self._slots[delivery.channel]
            task = asyncio.create_task(self._deliver(slots, delivery), name=f"ordercast.notify.send.{delivery.id}")
            slots.sending.add(task)
            task.add_done_callback(functools.partial(self._sent, slots))
        now = asyncio.get_running_loop().time()
        for slots in self._slots.values():
            if slots.down is not None and slots.probing is None and slots.probe_at <= now:
                slots.probing = asyncio.create_task(
                    self._probe(slots), name=f"ordercast.notify.probe.{slots.channel.name}"
                )

    async def rest(self, delay: float) -> None:
        """Wait as `Periodic` does, but no later than the earliest retry this process scheduled or probe due."""
        now = asyncio.get_running_loop().time()
        if self._next_retry is not None and self._next_retry <= now:
            self._next_retry = None  # the tick that just ran claimed it
        timers = [slots.probe_at for slots in self._slots.values() if slots.down is not None and slots.probing is None]
        if self._next_retry is not None:
            timers.append(self._next_retry)
        if timers:
            delay = max(0.0, min(delay, min(timers) - now))
        await super().rest(delay)
        if any(slots.sending for slots in self._slots.values()):
            # Sends are finishing one by one: let a few more free their slots and claim for them
            # all at once, rather than a claim (three queries) per finished send.
            await asyncio.sleep(_CLAIM_GATHER)

    def _sending(self) -> set[asyncio.Task[None]]:
        return {task for slots in self._slots.values() for task in slots.sending}

    def _sent(self, slots: _Slots, task: asyncio.Task[None]) -> None:
        slots.sending.discard(task)
        self.wake()

    def _retry_at(self, delay: float) -> None:
        due = asyncio.get_running_loop().time() + delay
        if self._next_retry is None or due < self._next_retry:
            self._next_retry = due

    def _down(self, slots: _Slots, reason: str) -> None:
        if slots.down is not None:
            return
        name = slots.channel.name
        logger.error("%s is down (%s): its deliveries wait, probed every %g s", name, reason, self._probe_interval)
        slots.down = reason
        slots.probe_at = asyncio.get_running_loop().time() + self._probe_interval
        if self._troubles is not None:
            self._troubles.down(name, reason)
        self.wake()  # for `rest` to take the probe's time

    async def _probe(self, slots: _Slots) -> None:
        name = slots.channel.name
        try:
            if isinstance(slots.channel, Probed):  # else its deliveries just try again
                await slots.channel.probe()
        except Exception as error:  # noqa: BLE001 — ChannelDown: still refused; anything else is no better news
            logger.info("%s is still down: %s", name, error)
            slots.probe_at = asyncio.get_running_loop().time() + self._probe_interval
        else:
            logger.warning("%s is up again: its deliveries resume", name)
            slots.down = None
            if self._troubles is not None:
                self._troubles.up(name)
        finally:
            slots.probing = None
            self.wake()

    async def _deliver(self, slots: _Slots, delivery: Claimed) -> None:
        channel = slots.channel
        if slots.down is not None:  # it went down since this was claimed
            await self._record(
                functools.partial(self._queue.release, delivery, error=slots.down), delivery, "released", counted=False
            )
            return
        try:
            await channel.send(delivery)
        except asyncio.CancelledError:
            if not delivery.handed_over:
                with contextlib.suppress(Exception):
                    await self._queue.release(delivery)
            raise
        except ChannelDown as error:
            self._down(slots, error.reason)
            await self._record(
                functools.partial(self._queue.release, delivery, error=error.reason),
                delivery,
                "released",
                counted=False,
            )
        except Postponed as error:
            await self._record(
                functools.partial(self._queue.release, delivery, after=error.after), delivery, "released", counted=False
            )
            self._retry_at(error.after)
        except RetryLater as error:
            await self._retry(delivery, error.reason, error.after)
        except Undeliverable as error:
            logger.warning("delivery %s failed permanently: %s", delivery.id, error.reason)
            await self._record(functools.partial(self._fail, delivery, error.reason, error.code), delivery, "failed")
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
            await self._record(
                functools.partial(self._queue.skip_recipient, delivery, error.reason), delivery, "skipped"
            )
        except Exception as error:
            # A bug in a channel must not lose the message: retry it (capped by max_attempts).
            logger.exception("sending delivery %s raised", delivery.id)
            await self._retry(delivery, f"{type(error).__name__}: {error}", None)
        else:
            if self._troubles is not None:
                self._troubles.sent(delivery.channel)
            now = datetime.now(UTC)
            latency = max(0.0, (now - delivery.occurred_at).total_seconds())
            await self._record(functools.partial(self._queue.sent, delivery, now), delivery, "sent", latency)

    async def _retry(self, delivery: Claimed, reason: str, after: float | None) -> None:
        if after is None and self._troubles is not None:
            self._troubles.retrying(delivery.channel, reason)
        if after is None and delivery.attempts >= self._max_attempts:
            logger.warning("delivery %s failed after %d attempts: %s", delivery.id, delivery.attempts, reason)
            await self._record(functools.partial(self._fail, delivery, reason, "gave_up"), delivery, "failed")
            return
        delay = after if after is not None else backoff(delivery.attempts, base=self._retry_base, cap=self._retry_cap)
        await self._record(
            functools.partial(self._queue.retry, delivery, reason, delay, counted=after is None), delivery, "retrying"
        )
        self._retry_at(delay)

    def _fail(self, delivery: Claimed, reason: str, code: str) -> Awaitable[bool]:
        if self._troubles is None:
            return self._queue.fail(delivery, reason)
        return self._troubles.failed(delivery, reason, code)

    async def _record(
        self,
        outcome: Callable[[], Awaitable[bool | int]],
        delivery: Claimed,
        result: str,
        latency: float | None = None,
        *,
        counted: bool = True,
    ) -> None:
        # The provider has answered: losing the outcome now means sending the message again once the
        # lease runs out. So a write that fails (the database restarting, a dropped connection) is
        # tried again for a few seconds, well inside the lease, before giving up.
        for attempt in range(1, RECORD_TRIES + 1):
            try:
                recorded = await outcome()
                break
            except Exception:
                if attempt == RECORD_TRIES:
                    # The lease runs out and another process (or this one) sends it again: at least once.
                    logger.exception("recording delivery %s as %s failed", delivery.id, result)
                    return
                logger.warning("recording delivery %s as %s failed; trying again", delivery.id, result)
                await asyncio.sleep(backoff(attempt, base=0.2, cap=3.0))
        if not recorded:
            logger.warning("delivery %s was taken over before it was recorded as %s", delivery.id, result)
        if self._observe is not None and counted:  # a claim given back was no attempt
            self._observe(delivery.channel, result, latency if result == "sent" else None)
