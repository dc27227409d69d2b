"""Wakes this process's senders for events committed by other processes."""

from __future__ import annotations

from collections.abc import Callable

from ordercast.errors import Unavailable
from ordercast.events import ADMIN_CHANNEL
from ordercast.notify import planning
from ordercast.realtime.hub import Hub
from ordercast.running import Loop


def needs_other_senders(event_type: str, data: dict[str, object]) -> bool:
    """Whether another process's senders should look too: a Telegram message may have been queued by a
    process whose bot is off. Every process sends pushes, the committing one first of all."""
    return planning.wants_customer_chat(event_type, data)


class EventWakeups(Loop):
    """Wakes the senders of this process for every event that may have queued deliveries only some
    processes send (Telegram's), whichever process committed it: the hub's `admin` channel carries
    every event."""

    name = "ordercast.notify.wakeups"
    restart_cap = 5.0
    # The hub without a feed (the broker is down) refuses subscriptions: an outage /readyz reports, not a bug.
    expected_failures = (Unavailable,)

    def __init__(self, hub: Hub, wake: Callable[[], None]) -> None:
        self._hub = hub
        self._wake = wake

    async def run(self) -> None:
        async with self._hub.subscribe(ADMIN_CHANNEL) as subscription:
            self.succeeded()
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
        if subscription.close_reason == "shutdown":
            return  # the hub is closing: nothing more will come
        raise Unavailable(f"the event subscription was closed ({subscription.close_reason})")
