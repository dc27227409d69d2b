"""Wakes this process's senders for events committed by other processes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ordercast.events import ADMIN_CHANNEL
from ordercast.notify import planning
from ordercast.realtime.backoff import backoff
from ordercast.realtime.hub import Hub
from ordercast.running import Loop

logger = logging.getLogger("ordercast.notify")


def needs_other_senders(event_type: str, data: dict[str, object]) -> bool:
    """Whether another process's senders should look too: a Telegram message may have been queued by a
    process whose bot is off. Every process sends pushes, the committing one first of all."""
    return planning.wants_customer_chat(event_type, data)


class EventWakeups(Loop):
    """Wakes the senders of this process for every event that may have queued deliveries only some
    processes send (Telegram's), whichever process committed it: the hub's `admin` channel carries
    every event."""

    name = "ordercast.notify.wakeups"

    def __init__(self, hub: Hub, wake: Callable[[], None]) -> None:
        self._hub = hub
        self._wake = wake

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                async with self._hub.subscribe(ADMIN_CHANNEL) as subscription:
                    failures = 0
                    while not subscription.closed:
                        batch = await subscription.next_batch()
                        if any(
                            message.event is not None and needs_other_senders(message.event.type, message.event.data)
                            for message in batch
                        ):
                            self._wake()
                    # Closed (too slow, broker gone, shutting down): we may have missed events, so
                    # look once; the claim timer covers the rest.
                    self._wake()
            except Exception:
                logger.debug("the senders' event subscription failed; subscribing again", exc_info=True)
            failures += 1
            await asyncio.sleep(backoff(failures, base=0.1, cap=5.0))
