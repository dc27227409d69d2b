"""Streams and the credentials that opened them: how many one credential holds, and ending them with it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ordercast.errors import RateLimited
from ordercast.running import Periodic

if TYPE_CHECKING:
    from ordercast.realtime.subscription import Subscription

logger = logging.getLogger("ordercast.realtime.holders")

# A client refused for holding too many streams may try again after this many seconds.
_RETRY_AFTER = 5


@dataclass(frozen=True, slots=True)
class Grant:
    """What a stream's credential grants: the one channel it reads, and what limits and ends the stream."""

    channel: str
    # The credential, as an opaque key: its streams are counted together and end together.
    holder: Hashable | None = None
    # At most this many streams of the holder open at once (None: no cap).
    limit: int | None = None
    # When the credential expires, as a UNIX time: its streams end then.
    expires_at: float | None = None
    # Whether the credential can end before it expires (a session, an API key): re-checked every tick.
    revocable: bool = False


Recheck = Callable[[list[Hashable]], Awaitable[Iterable[Hashable]]]
"""Given the revocable holders that have streams open, returns those whose credential is over."""


class Holders:
    """The open streams of each credential in this process: capped, ended when it expires or is revoked.

    The cap is per process: behind a load balancer a credential may hold that many streams in each.
    Counting across processes would need a shared counter that a crashed process leaves wrong.
    """

    def __init__(self) -> None:
        self._streams: dict[Hashable, dict[Subscription, None]] = {}
        self._expiries: dict[Subscription, asyncio.TimerHandle] = {}

    def admit(self, subscription: Subscription) -> None:
        """Count the subscription against its credential (429 `rate_limited` beyond its limit); end it at expiry."""
        grant = subscription.grant
        if grant.holder is not None:
            streams = self._streams.get(grant.holder)
            if streams is None:
                streams = self._streams[grant.holder] = {}
            if grant.limit is not None and len(streams) >= grant.limit:
                raise RateLimited(_RETRY_AFTER, f"at most {grant.limit} event streams may be open per credential")
            streams[subscription] = None
        if grant.expires_at is not None:
            delay = max(grant.expires_at - time.time(), 0)
            loop = asyncio.get_running_loop()
            self._expiries[subscription] = loop.call_later(delay, subscription.close, "expired")

    def release(self, subscription: Subscription) -> None:
        expiry = self._expiries.pop(subscription, None)
        if expiry is not None:
            expiry.cancel()
        holder = subscription.grant.holder
        if holder is not None and (streams := self._streams.get(holder)) is not None:
            streams.pop(subscription, None)
            if not streams:
                del self._streams[holder]

    def revocable(self) -> list[Hashable]:
        """The holders with streams open whose credential may be revoked."""
        return [holder for holder, streams in self._streams.items() if next(iter(streams)).grant.revocable]

    def end(self, holders: Iterable[Hashable], reason: Literal["expired", "revoked"]) -> int:
        """End every stream of `holders`; how many."""
        ended = 0
        for holder in holders:
            for subscription in list(self._streams.get(holder, ())):
                subscription.close(reason)
                ended += 1
        return ended


class Guard(Periodic):
    """Re-checks the revocable credentials that hold streams every `interval`; ends the streams of those over.

    One check per process per tick, for each credential with streams open rather than for each stream:
    a browser's twenty tabs on one session cost one lookup.
    """

    name = "ordercast.realtime.guard"

    def __init__(self, holders: Holders, recheck: Recheck, interval: float) -> None:
        super().__init__(interval)
        self._holders = holders
        self._recheck = recheck

    async def tick(self) -> None:
        holders = self._holders.revocable()
        if not holders:
            return
        # A failed check ends nothing: it raises, and the loop runs it again after a backoff.
        over = list(await self._recheck(holders))
        if over:
            ended = self._holders.end(over, "revoked")
            logger.info("ended %d event stream(s) of %d revoked credential(s)", ended, len(over))
